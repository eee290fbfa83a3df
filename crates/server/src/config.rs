//! `sessiond.toml`: typed configuration with safe defaults.
//!
//! Precedence is file < environment (`SESSIOND_…`) < command-line flag; the
//! binary layers the last two on top of [`Config::load`]. `validate` runs
//! last and refuses anything unsafe or inconsistent with a message that says
//! what to change.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessiond_core::fields::IndexFields;
use sessiond_core::{EngineConfig, IdChars};

/// Every character a generated session id may have.
const GENERATED_ID_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
use sessiond_proto::Limits;

use crate::access::allowlist::Cidr;
use crate::access::auth::UserConfig;
use crate::access::tls::TlsConfig;
use crate::error::ServerError;
use crate::persist::{CompactionPolicy, Fsync, Storage};

/// The longest id (and variable name, and class) MySQL's tables hold:
/// InnoDB's index keys are bounded (`storage = "mysql"`).
pub(crate) const MYSQL_MAX_ID_LEN: usize = 1024;

/// Where a listener binds, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Listen {
    /// Do not listen.
    Off,
    /// Bind this address.
    On(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse()
            .map(Listen::On)
            .map_err(|_| format!("'{s}' is not an address like 127.0.0.1:6390, nor 'off'"))
    }
}

impl TryFrom<String> for Listen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Listen> for String {
    fn from(l: Listen) -> Self {
        l.to_string()
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(a) => write!(f, "{a}"),
        }
    }
}

/// How much the server logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                return Err(format!(
                    "'{s}' is not one of error, warn, info, debug, trace"
                ))
            }
        })
    }
}

/// Hard limits on one request (see [`Limits`]) and on connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest inline (telnet-style) command line, bytes.
    pub max_inline_len: usize,
    /// Largest single argument (a session's data, a variable), bytes.
    pub max_bulk_len: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Largest whole request, bytes.
    pub max_request_len: usize,
    /// Longest session id, bytes.
    pub max_id_len: usize,
    /// The characters a session id may use: characters and `a-z` ranges.
    /// Must include `A-Za-z0-9_-`, the characters of generated ids.
    pub id_chars: String,
    /// Whether ids may also hold non-ASCII UTF-8 characters (never control
    /// or space characters): Django's and pymemcache's keys may.
    pub utf8_ids: bool,
    /// Most variables in one session.
    pub max_vars: usize,
    /// Most sessions one tenant holds; past it, new sessions are refused
    /// (nothing is evicted). 0: no limit.
    pub max_sessions_per_tenant: usize,
    /// Most lock requests queued on one session at once.
    pub max_lock_waiters: usize,
    /// Most lock entries (ids locked or awaited, whether or not a session
    /// exists under them) one tenant holds. 0: no limit.
    pub max_locks_per_tenant: usize,
    /// Longest lock owner secret (phpredis's lock value), bytes.
    pub max_lock_owner_len: usize,
    /// Most bytes (data, variables, classes, and locks with their owner
    /// secrets) one tenant holds; writes that would grow past it, and new
    /// sessions and locks once it is reached, are refused. 0: no limit.
    pub max_bytes_per_tenant: u64,
    /// Most ids (or pairs) one unpaged listing returns (`SESSION.LIST`,
    /// `FIND`, `LISTVAR`, Redis `KEYS`); past it the command is refused
    /// with `LIMIT`, pointing to its cursor form.
    pub max_reply_items: usize,
    /// Replies pending to one connection, bytes: a client that stops
    /// reading with more than this unsent is cut off.
    pub max_output_buffer: usize,
    /// Most connections open at once, over every door.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// Close a connection with no request under way for this long,
    /// seconds; 0 never does (PHP's persistent connections sit idle).
    /// (Formerly `idle_timeout`, still read.)
    #[serde(alias = "idle_timeout")]
    pub idle_timeout_s: u64,
    /// Close a connection whose request is not all there, or whose replies
    /// it does not read, for this long, ms (slow or stuck clients).
    pub request_timeout_ms: u64,
    /// Failed logins one client address may make per
    /// `auth_failure_window_s`; past that, its logins are refused unchecked
    /// until the window ends.
    pub max_auth_failures: u32,
    /// The window of `max_auth_failures`, seconds.
    /// (Formerly `auth_failure_window`, still read.)
    #[serde(alias = "auth_failure_window")]
    pub auth_failure_window_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            max_inline_len: l.max_inline_len,
            max_bulk_len: l.max_bulk_len,
            max_args: l.max_args,
            max_request_len: l.max_request_len,
            max_id_len: EngineConfig::default().max_id_len,
            id_chars: EngineConfig::default().id_chars.as_str().to_string(),
            utf8_ids: EngineConfig::default().id_chars.utf8(),
            max_vars: EngineConfig::default().max_vars,
            max_sessions_per_tenant: EngineConfig::default().max_sessions,
            max_lock_waiters: EngineConfig::default().max_lock_waiters,
            max_locks_per_tenant: EngineConfig::default().max_locks,
            max_lock_owner_len: EngineConfig::default().max_lock_owner_len,
            max_bytes_per_tenant: EngineConfig::default().max_bytes,
            max_reply_items: EngineConfig::default().max_reply_items,
            max_output_buffer: 64 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 2_000,
            idle_timeout_s: 0,
            request_timeout_ms: 30_000,
            max_auth_failures: 10,
            auth_failure_window_s: 60,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The native (RESP) listener.
    pub listen_resp: Listen,
    /// The HTTP_SessionServer line-protocol listener (off by default).
    pub listen_line: Listen,
    /// The memcached (text and binary) listener.
    pub listen_memcache: Listen,
    /// The HTTP listener: health, readiness, Prometheus metrics.
    pub listen_http: Listen,
    /// Client addresses the native listener accepts (CIDR blocks); empty:
    /// any. Anyone else is disconnected at once.
    pub allow_resp: Vec<Cidr>,
    /// The same for the line-protocol listener.
    pub allow_line: Vec<Cidr>,
    /// The same for the memcached listener.
    pub allow_memcache: Vec<Cidr>,
    /// The same for the HTTP listener.
    pub allow_http: Vec<Cidr>,
    /// `log` (durable, the default) or `memory` (volatile).
    pub storage: Storage,
    /// Where `log` storage keeps its files.
    pub data_dir: PathBuf,
    /// `postgres` storage: the database, as a URL
    /// (`postgres://user@host:5432/sessiond?sslmode=require`). The
    /// password may instead come from `SESSIOND_DATABASE_PASSWORD` (or
    /// libpq's `PGPASSWORD`), so it need not be in a file or on a command
    /// line.
    pub database_url: String,
    /// Connections to the database each node keeps; every client's
    /// requests are pipelined over them.
    pub database_pool: usize,
    /// A PEM file of the certificate authorities a database's TLS
    /// certificate must chain to (`sslmode=require`); empty: the
    /// platform's web roots are not used, so set it for TLS.
    pub database_ca_file: PathBuf,
    /// How long a node waits for the database to answer one request
    /// before the client is told to try again, ms.
    pub database_timeout_ms: u64,
    /// Whether a node brings the database's schema up to date itself when
    /// it starts (off: only `sessiond migrate` does, and a node refuses a
    /// schema older than it needs).
    pub database_migrate: bool,
    /// This node's name in the cluster (its heartbeat row, its locks).
    /// Empty: the host name and the RESP port.
    pub node_name: String,
    /// `storage = "mysql"`: where other nodes send this node's lock
    /// wake-ups (UDP), `ip:port`. The node listens on that port on every
    /// interface and registers the address; an unspecified ip (`0.0.0.0`)
    /// means the address this node reaches the database from, port 0 one
    /// the system picks. Empty: both (`0.0.0.0:0`).
    pub wake_addr: String,
    /// How often a node renews its heartbeat, ms; a node silent for three
    /// of these is dead and its locks are free.
    pub heartbeat_ms: u64,
    /// When a write is on disk: `always`, `everysec` or `no`.
    pub fsync: Fsync,
    /// Never compact a log smaller than this many bytes.
    pub compact_min_bytes: u64,
    /// Compact once the log is this many times the last snapshot.
    pub compact_ratio: u64,
    /// Redis-door key prefixes stripped to find the session id (phpredis's
    /// `prefix`); a key matching none is a session whose id is the key.
    pub redis_prefixes: Vec<String>,
    /// memcached-door key prefixes stripped to find the session id
    /// (php-memcached's `memcached.sess_prefix`); after one, `lock.<id>` is
    /// the session's lock.
    pub memcache_prefixes: Vec<String>,
    /// The fields of session data (PHP entries, JSON and msgpack fields by
    /// dotted path) `SESSION.FIND` answers from an index, about 15–20 bytes a
    /// session each; `["*"]` indexes every field. A FIND on another name
    /// reads every session.
    pub index_fields: Vec<String>,
    /// Whether Redis `FLUSHDB`/`FLUSHALL` and memcached `flush_all` may
    /// destroy every session (off: they are refused with an error).
    pub allow_flush: bool,
    /// Refuse to create sessions under ids clients chose (session
    /// fixation): new ones come from `SESSION.UNIQ`. Off by default, as
    /// PHP's handlers write sessions under ids PHP generates.
    pub strict_ids: bool,
    /// Idle timeout of a session created without one, seconds.
    /// (Formerly `default_timeout`, still read.)
    #[serde(alias = "default_timeout")]
    pub default_timeout_s: u64,
    /// The longest idle timeout a client may set, seconds.
    /// (Formerly `max_timeout`, still read.)
    #[serde(alias = "max_timeout")]
    pub max_timeout_s: u64,
    /// Lease of a lock taken without LEASE, ms.
    pub default_lease_ms: u64,
    /// The longest lease a client may ask for, ms.
    pub max_lease_ms: u64,
    /// The longest a lock request may wait, ms.
    pub max_wait_ms: u64,
    /// How long a Redis-door `SET <id>_LOCK … NX` or a memcached
    /// `add lock.<id>` on a held lock waits in the session's queue (and is
    /// answered the moment the lock is its) before it is answered as busy,
    /// ms; 0 answers at once, as Redis and memcached do. At most
    /// `max_wait_ms`.
    pub door_lock_wait_ms: u64,
    /// Store shards (more shards, less contention between cores).
    pub shards: usize,
    /// Worker threads of the async runtime; 0 means one per core.
    pub threads: usize,
    /// How often expiry and lease upkeep runs, ms.
    pub tick_ms: u64,
    /// On shutdown, how long to let connections finish, ms.
    pub shutdown_grace_ms: u64,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Request limits.
    pub limits: LimitsConfig,
    /// TLS on the listeners.
    pub tls: TlsConfig,
    /// The Lua plugins (`*.lua`) loaded at start and on `SIGHUP` or
    /// `sessiond ctl reload`; empty: none (docs/plugins.md).
    pub plugins_dir: PathBuf,
    /// What one call of a plugin function may spend.
    pub scripts: crate::scripts::ScriptLimits,
    /// Who may log in (`[[users]]`). None: no logins, and listeners on
    /// loopback only. Any: every connection must log in first.
    pub users: Vec<UserConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            listen_resp: Listen::On(SocketAddr::from(([127, 0, 0, 1], 6390))),
            listen_line: Listen::Off,
            listen_memcache: Listen::On(SocketAddr::from(([127, 0, 0, 1], 11212))),
            listen_http: Listen::On(SocketAddr::from(([127, 0, 0, 1], 8390))),
            allow_resp: Vec::new(),
            allow_line: Vec::new(),
            allow_memcache: Vec::new(),
            allow_http: Vec::new(),
            storage: Storage::Log,
            data_dir: PathBuf::from("sessiond-data"),
            database_url: String::new(),
            database_pool: 4,
            database_ca_file: PathBuf::new(),
            database_timeout_ms: 5_000,
            database_migrate: true,
            node_name: String::new(),
            wake_addr: String::new(),
            heartbeat_ms: 1_000,
            fsync: Fsync::Everysec,
            compact_min_bytes: 64 * 1024 * 1024,
            compact_ratio: 2,
            redis_prefixes: vec!["PHPREDIS_SESSION:".into()],
            memcache_prefixes: vec!["memc.sess.key.".into()],
            index_fields: IndexFields::DEFAULT.iter().map(|n| n.to_string()).collect(),
            allow_flush: false,
            strict_ids: false,
            default_timeout_s: e.default_timeout_ms / 1000,
            max_timeout_s: e.max_timeout_ms / 1000,
            default_lease_ms: e.default_lease_ms,
            max_lease_ms: e.max_lease_ms,
            max_wait_ms: e.max_wait_ms,
            door_lock_wait_ms: e.door_lock_wait_ms,
            shards: e.shards,
            threads: 0,
            tick_ms: 10,
            shutdown_grace_ms: 5_000,
            log_level: LogLevel::Info,
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
            plugins_dir: PathBuf::new(),
            scripts: crate::scripts::ScriptLimits::default(),
            users: Vec::new(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ServerError::ParseConfig { message, .. } => ServerError::ParseConfig {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ServerError> {
        toml::from_str(text).map_err(|e| ServerError::ParseConfig {
            path: "<text>".into(),
            message: e.to_string(),
        })
    }

    /// The effective configuration as TOML (`--print-config`).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = without_password(&self.database_url);
        toml::to_string(&shown)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }

    /// Refuses unsafe or inconsistent settings.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::InvalidConfig(m));
        for (name, listen) in [
            ("listen_resp", self.listen_resp),
            ("listen_line", self.listen_line),
            ("listen_memcache", self.listen_memcache),
            ("listen_http", self.listen_http),
        ] {
            if let Listen::On(addr) = listen {
                if !addr.ip().is_loopback() && self.users.is_empty() {
                    return bad(format!(
                        "{name} = {addr} is not a loopback address, and no users are configured: \
                         without users anyone who reaches the port reads every session, so sessiond only listens on 127.0.0.1 or [::1]. \
                         Add a [[users]] entry (make its password_hash with `sessiond passwd`; see docs/security.md) to listen elsewhere"
                    ));
                }
            }
        }
        self.validate_users()?;
        self.tls.validate().map_err(ServerError::InvalidConfig)?;
        if self.default_timeout_s == 0 || self.default_timeout_s > self.max_timeout_s {
            return bad(format!(
                "default_timeout_s = {} must be between 1 and max_timeout_s = {}",
                self.default_timeout_s, self.max_timeout_s
            ));
        }
        if self.default_lease_ms == 0 || self.default_lease_ms > self.max_lease_ms {
            return bad(format!(
                "default_lease_ms = {} must be between 1 and max_lease_ms = {}",
                self.default_lease_ms, self.max_lease_ms
            ));
        }
        if self.door_lock_wait_ms > self.max_wait_ms {
            return bad(format!(
                "door_lock_wait_ms = {} must be at most max_wait_ms = {}",
                self.door_lock_wait_ms, self.max_wait_ms
            ));
        }
        if self.storage == Storage::Postgres {
            if self.database_url.is_empty() {
                return bad("storage = \"postgres\" needs database_url (--database-url, SESSIOND_DATABASE_URL), e.g. postgres://sessiond@127.0.0.1:5432/sessiond".into());
            }
            let url: tokio_postgres::Config = match self.database_url.parse() {
                Ok(u) => u,
                Err(e) => return bad(format!("database_url: {e}")),
            };
            if url.get_ssl_mode() == tokio_postgres::config::SslMode::Require
                && self.database_ca_file.as_os_str().is_empty()
            {
                return bad("database_url asks for TLS (sslmode=require): set database_ca_file to the PEM file of the authorities the database's certificate chains to".into());
            }
        }
        if self.storage == Storage::MySql {
            if self.database_url.is_empty() {
                return bad("storage = \"mysql\" needs database_url (--database-url, SESSIOND_DATABASE_URL), e.g. mysql://sessiond@127.0.0.1:3306/sessiond".into());
            }
            // The URL itself is read where the node connects (the backend);
            // here only that it is one of MySQL's.
            if !(self.database_url.starts_with("mysql://")
                || self.database_url.starts_with("mariadb://"))
            {
                return bad(
                    "database_url: storage = \"mysql\" takes a mysql:// (or mariadb://) URL".into(),
                );
            }
            if self.wake_address().is_none() {
                return bad(format!(
                    "wake_addr = {:?} is not an ip:port (such as 10.0.0.5:7390, or 0.0.0.0:7390 for the address this node reaches the database from)",
                    self.wake_addr
                ));
            }
            if self.limits.max_id_len > MYSQL_MAX_ID_LEN {
                return bad(format!(
                    "max_id_len = {} is above the {MYSQL_MAX_ID_LEN} bytes an id may have on MySQL (its index keys are bounded)",
                    self.limits.max_id_len
                ));
            }
        }
        if self.storage.is_cluster() {
            if self.database_pool == 0 || self.database_pool > 256 {
                return bad(format!(
                    "database_pool = {} must be between 1 and 256",
                    self.database_pool
                ));
            }
            if self.database_timeout_ms < 100 || self.heartbeat_ms < 100 {
                return bad("database_timeout_ms and heartbeat_ms must be at least 100".into());
            }
        }
        if self.shards == 0 || self.shards > 65_536 {
            return bad(format!(
                "shards = {} must be between 1 and 65536",
                self.shards
            ));
        }
        if self.threads > 1024 {
            return bad(format!("threads = {} must be at most 1024", self.threads));
        }
        if self.tick_ms == 0 || self.tick_ms > 1000 {
            return bad(format!(
                "tick_ms = {} must be between 1 and 1000",
                self.tick_ms
            ));
        }
        let l = &self.limits;
        if l.max_inline_len < 64 || l.max_bulk_len == 0 || l.max_args < 4 || l.max_id_len == 0 {
            return bad("limits are too small to run any command: max_inline_len >= 64, max_bulk_len >= 1, max_args >= 4, max_id_len >= 1".into());
        }
        if l.max_request_len < l.max_bulk_len {
            return bad(format!(
                "limits.max_request_len = {} must be at least limits.max_bulk_len = {}",
                l.max_request_len, l.max_bulk_len
            ));
        }
        if l.max_connections == 0 || l.max_connections_per_ip == 0 {
            return bad(
                "limits.max_connections and limits.max_connections_per_ip must be at least 1"
                    .into(),
            );
        }
        match IdChars::parse(&l.id_chars) {
            Err(e) => return bad(format!("limits.id_chars: {e}")),
            Ok(chars) if !chars.allows(GENERATED_ID_CHARS.as_bytes()) => {
                return bad(format!(
                    "limits.id_chars = \"{}\" must include A-Za-z0-9_- (the characters of the ids sessiond generates)",
                    l.id_chars
                ))
            }
            Ok(_) => {}
        }
        if l.max_vars == 0 || l.max_lock_waiters == 0 {
            return bad("limits.max_vars and limits.max_lock_waiters must be at least 1".into());
        }
        if l.max_reply_items == 0 || l.max_output_buffer < 64 * 1024 {
            return bad(
                "limits.max_reply_items must be at least 1 and limits.max_output_buffer at least 65536".into(),
            );
        }
        if l.max_auth_failures == 0 || l.auth_failure_window_s == 0 {
            return bad(
                "limits.max_auth_failures and limits.auth_failure_window_s must be at least 1"
                    .into(),
            );
        }
        if l.request_timeout_ms < 100 {
            return bad(format!(
                "limits.request_timeout_ms = {} must be at least 100",
                l.request_timeout_ms
            ));
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::InvalidConfig(m));
        let mut names = std::collections::HashSet::new();
        for u in &self.users {
            if !crate::access::auth::valid_user_name(&u.name) {
                return bad(format!(
                    "user name '{}' must be 1 to 64 letters, digits or _ . @ -",
                    u.name
                ));
            }
            if !names.insert(u.name.as_str()) {
                return bad(format!("user '{}' is configured twice", u.name));
            }
            if !crate::access::auth::valid_tenant_name(&u.tenant) {
                return bad(format!(
                    "tenant '{}' of user '{}' must be 1 to 64 lower-case letters, digits, _ or -",
                    u.tenant, u.name
                ));
            }
            if let Err(e) = crate::access::auth::check_hash(&u.password_hash) {
                return bad(format!(
                    "password_hash of user '{}': {e}; make one with `sessiond passwd`",
                    u.name
                ));
            }
        }
        Ok(())
    }

    /// The tenants users work in, the default one first.
    pub fn tenant_names(&self) -> Vec<String> {
        let mut names = vec![crate::access::auth::DEFAULT_TENANT.to_string()];
        for u in &self.users {
            if !names.contains(&u.tenant) {
                names.push(u.tenant.clone());
            }
        }
        names
    }

    /// `wake_addr` read (None: not an `ip:port`); empty is `0.0.0.0:0`.
    pub fn wake_address(&self) -> Option<std::net::SocketAddr> {
        if self.wake_addr.is_empty() {
            return Some(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        self.wake_addr.parse().ok()
    }

    /// The node's name in the cluster: `node_name`, else the host name and
    /// the RESP port.
    pub fn node_name(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        let port = match self.listen_resp {
            Listen::On(a) => a.port(),
            Listen::Off => 0,
        };
        format!("{}:{port}", host_name())
    }

    /// Where a tenant's files are: the default tenant's in `data_dir`
    /// itself, every other one's in `data_dir/tenants/<name>`.
    pub fn tenant_dir(&self, tenant: &str) -> PathBuf {
        if tenant == crate::access::auth::DEFAULT_TENANT {
            self.data_dir.clone()
        } else {
            self.data_dir.join("tenants").join(tenant)
        }
    }

    /// How long a connection may sit idle, and wait for the rest of a
    /// request or for its client to read.
    pub(crate) fn connection_timeouts(&self) -> Timeouts {
        Timeouts {
            idle: (self.limits.idle_timeout_s > 0)
                .then(|| std::time::Duration::from_secs(self.limits.idle_timeout_s)),
            request: std::time::Duration::from_millis(self.limits.request_timeout_ms),
            max_output: self.limits.max_output_buffer,
        }
    }

    /// When to compact the log.
    pub fn compaction(&self) -> CompactionPolicy {
        CompactionPolicy {
            min_log_bytes: self.compact_min_bytes,
            ratio: self.compact_ratio.max(1),
        }
    }

    /// The engine's part.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            shards: self.shards,
            default_timeout_ms: self.default_timeout_s.saturating_mul(1000),
            max_timeout_ms: self.max_timeout_s.saturating_mul(1000),
            default_lease_ms: self.default_lease_ms,
            max_lease_ms: self.max_lease_ms,
            max_wait_ms: self.max_wait_ms,
            door_lock_wait_ms: self.door_lock_wait_ms,
            max_id_len: self.limits.max_id_len,
            id_chars: IdChars::parse(&self.limits.id_chars)
                .unwrap_or_default()
                .with_utf8(self.limits.utf8_ids),
            max_vars: self.limits.max_vars,
            max_sessions: self.limits.max_sessions_per_tenant,
            max_lock_waiters: self.limits.max_lock_waiters,
            max_locks: self.limits.max_locks_per_tenant,
            max_lock_owner_len: self.limits.max_lock_owner_len,
            max_bytes: self.limits.max_bytes_per_tenant,
            max_scan_count: EngineConfig::default().max_scan_count,
            max_reply_items: self.limits.max_reply_items,
            max_data_len: self.limits.max_bulk_len,
            allow_flush: self.allow_flush,
            strict_ids: self.strict_ids,
            index_fields: if self.index_fields.iter().any(|n| n == "*") {
                IndexFields::All
            } else {
                IndexFields::Only(
                    self.index_fields
                        .iter()
                        .map(|n| bytes::Bytes::copy_from_slice(n.as_bytes()))
                        .collect(),
                )
            },
        }
    }

    /// The Redis door's key mapping.
    pub fn redis_keys(&self) -> sessiond_proto::redis::RedisKeys {
        sessiond_proto::redis::RedisKeys::new(
            self.redis_prefixes
                .iter()
                .map(|p| bytes::Bytes::copy_from_slice(p.as_bytes()))
                .collect(),
        )
    }

    /// The memcached door's key mapping.
    pub fn memcache_keys(&self) -> sessiond_proto::memcache::McKeys {
        sessiond_proto::memcache::McKeys::new(
            self.memcache_prefixes
                .iter()
                .map(|p| bytes::Bytes::copy_from_slice(p.as_bytes()))
                .collect(),
        )
    }

    /// The codecs' part.
    pub fn codec_limits(&self) -> Limits {
        Limits {
            max_inline_len: self.limits.max_inline_len,
            max_bulk_len: self.limits.max_bulk_len,
            max_args: self.limits.max_args,
            max_request_len: self.limits.max_request_len,
        }
    }
}

/// How long a connection may wait for its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// With no request under way; `None`: for ever.
    pub(crate) idle: Option<Duration>,
    /// For the rest of a request, or for the client to read its replies.
    pub(crate) request: Duration,
    /// Replies that may wait unsent for a client that is not reading, in
    /// bytes; past it the client is cut off after a short grace (`conn::link`).
    pub(crate) max_output: usize,
}

/// A database URL with its password (if any) replaced by `***`, for
/// printing.
pub(crate) fn without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// This host's name, for a node name nobody chose.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_configuration_hides_the_database_password() {
        assert_eq!(
            without_password("postgres://sd:s3cret@db:5432/sessiond?sslmode=require"),
            "postgres://sd:***@db:5432/sessiond?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://sd@db/sessiond"),
            "postgres://sd@db/sessiond"
        );
        assert_eq!(without_password(""), "");
        let c = Config {
            database_url: "postgres://a:b@h/d".into(),
            ..Config::default()
        };
        assert!(!c.to_toml().contains(":b@"));
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_and_public_addresses_are_refused() {
        assert!(Config::from_toml("listen_rsp = \"off\"").is_err());
        let c = Config::from_toml("listen_resp = \"0.0.0.0:6390\"").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        let c = Config::from_toml("listen_resp = \"off\"\n[limits]\nmax_bulk_len = 10").unwrap();
        assert_eq!(c.listen_resp, Listen::Off);
        assert_eq!(c.limits.max_bulk_len, 10);
    }

    #[test]
    fn users_open_other_addresses_and_are_checked() {
        let hash = crate::access::auth::hash_password(b"pw").unwrap();
        let user = |name: &str, tenant: &str, hash: &str| {
            format!(
                "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\ntenant = \"{tenant}\"\n"
            )
        };
        let text = format!(
            "listen_resp = \"0.0.0.0:6390\"\n{}{}",
            user("shop", "shop", &hash),
            user("ro", "default", &hash)
        );
        let c = Config::from_toml(&text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.users[1].role, crate::access::auth::Role::Readwrite);
        assert_eq!(c.tenant_names(), ["default", "shop"]);
        assert_eq!(
            c.tenant_dir("shop"),
            c.data_dir.join("tenants").join("shop")
        );
        assert_eq!(c.tenant_dir("default"), c.data_dir);
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
        for (bad, says) in [
            (user("a b", "t", &hash), "user name"),
            (user("u", "../etc", &hash), "tenant"),
            (user("u", "t", "plaintext"), "sessiond passwd"),
            (
                format!("{}{}", user("u", "t", &hash), user("u", "x", &hash)),
                "twice",
            ),
        ] {
            let err = Config::from_toml(&bad)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
