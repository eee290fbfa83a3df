//! `storage = "postgres"` and `storage = "mysql"`: stateless nodes over
//! one PostgreSQL (or MySQL/MariaDB) database, through the seam in
//! `db.rs`.
//!
//! The database holds every session; a node keeps nothing between
//! commands. A command on sessions runs the engine's own rules on a
//! *working copy*: the node reads the rows the command touches (one
//! statement), puts them in place in a [`sessiond_core::Engine`] of its
//! own, runs the command there, and writes back what changed — each row
//! only if its revision is still the one read, so a write another node
//! made in between is never overwritten: the command is run again on the
//! new row instead. Commands on the same session within one node take
//! turns; across nodes the revision decides. docs/cluster.md has the
//! whole design.

mod changes;
mod db;
mod exec;
mod hint;
mod kept;
mod listing;
mod locking;
mod locks;
mod my_schema;
mod my_statements;
mod outcome;
mod pool;
mod rename;
mod row;
mod schema;
mod statements;
mod tls;
mod transaction;
mod wake;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sessiond_core::Clock;
use tokio::sync::watch;

use db::{St, P, Q};
pub(crate) use exec::ClusterTenant;
use locks::Party;
pub(crate) use outcome::{ClusterWait, Done};
pub(crate) use pool::PoolStats;
use pool::{DbError, Pool, Target};
use wake::Waits;

/// What the cluster's entry points (a command, a lock's wait and its end,
/// a peek) return: their future on the heap. Beside a round trip to the
/// database one allocation is nothing; held in place, the statement
/// machinery's state (~9–20 KB unoptimised) would sit in every
/// connection's task and in each frame that polls one. `.ci/run` runs a
/// test pass on half the default stack to keep it so.
pub(crate) type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

use crate::config::Config;
use crate::error::ServerError;
use crate::persist::Fsync;

/// What every tenant of a node shares: the connections, the node's name
/// and heartbeat, the scan-order key.
pub(crate) struct Cluster {
    pool: Pool,
    node: String,
    /// This run of the node: its start time in ms, times 2^16, plus a
    /// random number, so a later run of a node has a greater instance.
    instance: i64,
    place_key: Vec<u8>,
    heartbeat_ms: u64,
    clock: Arc<dyn Clock>,
    /// Every node's run and heartbeat deadline, as last read.
    nodes: Mutex<NodesSeen>,
    /// The block of fencing keys this node hands out: next, end.
    keys: Mutex<(u64, u64)>,
    /// Reserving a new block of keys, one at a time.
    reserving: tokio::sync::Mutex<()>,
    /// This node's queued lock requests.
    pub(crate) waits: Waits,
    /// The channel this node listens on for wake-ups.
    channel: String,
    /// Wake-ups sent and heard by the nodes themselves (MySQL).
    hints: Option<hint::Hints>,
}

/// What a node knows of the others' heartbeats.
#[derive(Default)]
struct NodesSeen {
    /// Each node's run and heartbeat deadline, as last read.
    nodes: HashMap<String, (i64, i64)>,
    /// When they were read (ms).
    read_ms: i64,
    /// This node judges no other dead before this (ms): after its own
    /// heartbeat failed — the database was away, or the link to it — the
    /// others get three heartbeats to be heard again, since they were
    /// likely cut off alike.
    judge_from_ms: i64,
    /// Whether this node's last heartbeat failed.
    out: bool,
}

impl NodesSeen {
    /// Whether a node with heartbeat deadline `until` is to be taken as
    /// gone at `now`: its deadline passed, and was seen passed in a read
    /// made while this node was in touch with the database.
    fn lapsed(&self, until: i64, now: i64) -> bool {
        until < now && self.read_ms > until && now >= self.judge_from_ms
    }
}

/// Fencing keys a node reserves at a time.
const KEY_BLOCK: i64 = 1 << 16;

/// How many expired sessions one reaper statement removes at most.
const REAP_BATCH: i64 = 500;

impl Cluster {
    /// Connects to the database, brings its schema up to date (or checks
    /// it), and registers the node.
    pub(crate) async fn open(
        config: &Config,
        node: String,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ServerError> {
        let db = |m: String| ServerError::Database(m);
        let timeout = Duration::from_millis(config.database_timeout_ms);
        let pool = Pool::new(
            target(config)?,
            config.database_pool,
            timeout,
            session_setup(config),
            &node,
        );
        let in_time = |what: &str| {
            db(format!(
                "the database did not {what} within {} ms",
                timeout.as_millis()
            ))
        };
        // MySQL: where other nodes send this node's wake-ups — the address
        // it reaches the database from.
        let mut wake_at = None;
        match config.storage {
            crate::persist::Storage::MySql => {
                let first = tokio::time::timeout(timeout, pool.connect_mysql())
                    .await
                    .map_err(|_| in_time("accept a connection"))?
                    .map_err(|e| db(format!("{e:?}")))?;
                if config.database_migrate {
                    let m = my_schema::migrate(&first, &node)
                        .await
                        .map_err(|e| db(e.to_string()))?;
                    if m.from != m.to {
                        tracing::info!(from = m.from, to = m.to, "database schema migrated");
                    }
                } else {
                    my_schema::check(&first)
                        .await
                        .map_err(|e| db(e.to_string()))?;
                }
                my_schema::warn_durability(&first, config.fsync).await;
                // Where other nodes send wake-ups: `wake_addr`, its
                // unspecified ip the one this node reaches the database
                // from (over a Unix socket, loopback).
                let wake = config.wake_address().ok_or_else(|| {
                    db(format!(
                        "wake_addr = {:?} is not an ip:port",
                        config.wake_addr
                    ))
                })?;
                let ip = if wake.ip().is_unspecified() {
                    first
                        .local_addr()
                        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |a| {
                            a.ip()
                        })
                } else {
                    wake.ip()
                };
                wake_at = Some(std::net::SocketAddr::new(ip, wake.port()));
            }
            _ => {
                let mut first = tokio::time::timeout(timeout, pool.connect())
                    .await
                    .map_err(|_| in_time("accept a connection"))?
                    .map_err(|e| db(format!("cannot connect to the database: {e:?}")))?;
                if config.database_migrate {
                    let m = schema::migrate(&mut first, &node)
                        .await
                        .map_err(|e| db(e.to_string()))?;
                    if m.from != m.to {
                        tracing::info!(from = m.from, to = m.to, "database schema migrated");
                    }
                } else {
                    schema::check(&first).await.map_err(|e| db(e.to_string()))?;
                }
            }
        }
        let now = row::to_sql(clock.now_ms());
        let instance = (now << 16) | (random_i64()? & 0xffff);
        let alive = now.saturating_add(3 * config.heartbeat_ms as i64);
        let name = node.as_str();
        let (place_key, wake_key, registered) = pool
            .run(|c| async move {
                let meta = c
                    .one(
                        Q::Sql {
                            pg: "SELECT place_key, NULL::bytea FROM sessiond_meta",
                            my: "SELECT place_key, wake_key FROM sessiond_meta",
                        },
                        &[],
                    )
                    .await?;
                let (key, wake_key) = (meta.bytes(0)?, meta.opt_bytes(1)?);
                let registered = c
                    .one(
                        Q::Sql {
                            pg: "WITH r AS (INSERT INTO sessiond_node (node, instance, started_ms, alive_until_ms) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (node) DO UPDATE SET \
                                 instance = EXCLUDED.instance, started_ms = EXCLUDED.started_ms, \
                                 alive_until_ms = EXCLUDED.alive_until_ms \
                                 WHERE sessiond_node.alive_until_ms < EXCLUDED.started_ms RETURNING 1) \
                                 SELECT count(*) FROM r",
                            my: "CALL sessiond_register($1, $2, $3, $4)",
                        },
                        &[P::Text(name), P::I64(instance), P::I64(now), P::I64(alive)],
                    )
                    .await?
                    .i64(0)?;
                Ok((key, wake_key, registered))
            })
            .await
            .map_err(|e| db(format!("{e:?}")))?;
        if registered == 0 {
            return Err(db(format!(
                "node_name '{node}' is taken by a node that is alive: give each node its own name (--node-name)"
            )));
        }
        let hints = match (wake_at, wake_key) {
            (Some(wake), Some(key)) => {
                let h = hint::Hints::bind(wake.ip(), wake.port(), key)
                    .await
                    .map_err(|e| {
                        db(format!(
                            "cannot open the wake-up socket on {wake} (wake_addr): {e}"
                        ))
                    })?;
                let addr = h.advertised.to_string();
                let addr = addr.as_str();
                pool.execute(
                    Q::both(
                        "UPDATE sessiond_node SET wake_addr = $3 WHERE node = $1 AND instance = $2",
                    ),
                    &[P::Text(name), P::I64(instance), P::Text(addr)],
                )
                .await
                .map_err(|e| db(format!("{e:?}")))?;
                Some(h)
            }
            _ => None,
        };
        tracing::info!(node = %node, "joined the cluster");
        if let Err(e) = pool.fill().await {
            tracing::warn!(error = ?e, "could not open every connection of the pool yet");
        }
        Ok(Arc::new(Self {
            pool,
            channel: wake::channel(&node),
            node,
            instance,
            place_key,
            heartbeat_ms: config.heartbeat_ms,
            clock,
            nodes: Mutex::new(NodesSeen::default()),
            keys: Mutex::new((0, 0)),
            reserving: tokio::sync::Mutex::new(()),
            waits: Waits::default(),
            hints,
        }))
    }

    /// This node's part in a lock: the client `client` of this run.
    pub(crate) fn party(&self, client: u64) -> Party {
        Party {
            node: self.node.clone(),
            instance: self.instance,
            client,
        }
    }

    /// Whether the node of `party` still runs, as far as this node knows:
    /// an earlier run of a node, or a node whose heartbeat lapsed, does not;
    /// a node not heard of yet (it just started) does.
    pub(crate) fn is_alive(&self, party: &Party, now: u64) -> bool {
        if party.node == self.node {
            return party.instance == self.instance;
        }
        let seen = self.nodes.lock();
        match seen.nodes.get(&party.node) {
            None => true,
            Some(&(instance, until)) => {
                party.instance > instance
                    || (party.instance == instance && !seen.lapsed(until, row::to_sql(now)))
            }
        }
    }

    /// Makes sure this node's block holds `needed` keys above `above`,
    /// reserving a new block (a synchronous commit) if not.
    pub(crate) async fn ensure_keys(&self, above: u64, needed: u64) -> Result<(), DbError> {
        let enough = |k: &(u64, u64)| k.0 > above && k.1.saturating_sub(k.0) >= needed;
        if enough(&self.keys.lock()) {
            return Ok(());
        }
        let _one = self.reserving.lock().await;
        while !enough(&self.keys.lock()) {
            let start: i64 = self
                .pool
                .run(|c| async move {
                    c.one(Q::St(St::ReserveKeys), &[P::I64(KEY_BLOCK)])
                        .await?
                        .i64(0)
                })
                .await?;
            let start = row::from_sql(start).max(1);
            *self.keys.lock() = (start, start.saturating_add(KEY_BLOCK as u64));
        }
        Ok(())
    }

    /// The next key of this node's block above `above` (after
    /// [`Cluster::ensure_keys`] made room).
    pub(crate) fn take_key(&self, above: u64) -> u64 {
        let mut k = self.keys.lock();
        let key = k.0.max(above.saturating_add(1));
        k.0 = key.saturating_add(1);
        key
    }

    /// Listens for wake-ups until `stop`, connecting again whenever the
    /// connection is lost (and then telling every waiter to look again).
    pub(crate) async fn listen(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if let Some(hints) = &self.hints {
            // No NOTIFY on MySQL: the nodes wake each other.
            self.waits.recheck_all();
            loop {
                tokio::select! {
                    got = hints.recv(&self.channel) => match got {
                        Ok(payload) => {
                            self.pool.stats.wakeups_heard.fetch_add(1, Ordering::Relaxed);
                            self.waits.deliver_payload(&payload);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the wake-up socket failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
        }
        loop {
            match self.pool.connect_listening().await {
                Ok((client, mut rx)) => {
                    let listen = format!("LISTEN \"{}\"", self.channel);
                    match client.batch_execute(&listen).await {
                        Ok(()) => {
                            self.waits.recheck_all();
                            loop {
                                tokio::select! {
                                    n = rx.recv() => match n {
                                        Some(n) => {
                                            self.pool.stats.wakeups_heard.fetch_add(1, Ordering::Relaxed);
                                            self.waits.deliver_payload(n.payload());
                                        }
                                        None => break,
                                    },
                                    _ = stop.changed() => return,
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                    }
                }
                Err(e) => tracing::debug!(error = ?e, "cannot open the listening connection"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Sends wake-ups a committed write carries, where the nodes send
    /// them themselves (MySQL; on PostgreSQL the write's NOTIFY did). A
    /// wake-up for a node whose address is not known yet is sent once the
    /// nodes' addresses are read again, off the request's path.
    pub(crate) fn send_wakeups(self: &Arc<Self>, wakeups: &[(String, String)]) {
        let Some(h) = &self.hints else { return };
        if wakeups.is_empty() {
            return;
        }
        let unknown = h.send(wakeups);
        if unknown.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.read_wake_addrs().await {
                tracing::debug!(error = ?e, "cannot read the nodes' wake-up addresses");
            }
            if let Some(h) = &this.hints {
                h.send(&unknown);
            }
        });
    }

    /// Every node's wake-up address, read again (MySQL).
    async fn read_wake_addrs(&self) -> Result<(), DbError> {
        let Some(h) = &self.hints else { return Ok(()) };
        let rows = self
            .pool
            .query(Q::both("SELECT node, wake_addr FROM sessiond_node"), &[])
            .await?;
        let mut addrs = Vec::with_capacity(rows.len());
        for r in rows {
            let addr = r.opt_bytes(1)?.and_then(|a| String::from_utf8(a).ok());
            addrs.push((r.text(0)?, addr));
        }
        h.set_addrs(&addrs);
        Ok(())
    }

    /// The node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The pool's counters.
    pub(crate) fn pool_stats(&self) -> &PoolStats {
        &self.pool.stats
    }

    /// Open connections, and the pool's size.
    pub(crate) fn connections(&self) -> (usize, usize) {
        (self.pool.open_connections(), self.pool.size())
    }

    /// The node's own upkeep until `stop`: the heartbeat, and expired
    /// sessions removed in bounded batches (any node may; `SKIP LOCKED`
    /// keeps two reapers, and a reaper and a request, out of each
    /// other's way). On stop the node says it is gone.
    pub(crate) async fn upkeep(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.heartbeat_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    match self.beat().await {
                        // In touch: open the connections that are not.
                        Ok(()) => {
                            if let Err(e) = self.pool.fill().await {
                                tracing::debug!(error = ?e, "cannot open the pool's connections");
                            }
                        }
                        Err(e) => {
                            self.nodes.lock().out = true;
                            tracing::warn!(error = ?e, "heartbeat failed");
                        }
                    }
                    match self.reap().await {
                        Ok(n) if n > 0 => tracing::debug!(sessions = n, "expired"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = ?e, "expiring sessions failed"),
                    }
                }
                _ = stop.changed() => break,
            }
        }
        let (node, instance) = (self.node.as_str(), self.instance);
        let gone = self
            .pool
            .execute(
                Q::both(
                    "UPDATE sessiond_node SET alive_until_ms = 0 WHERE node = $1 AND instance = $2",
                ),
                &[P::Text(node), P::I64(instance)],
            )
            .await;
        if let Err(e) = gone {
            tracing::warn!(error = ?e, "could not tell the cluster this node stopped");
        }
    }

    async fn beat(&self) -> Result<(), DbError> {
        let started = row::to_sql(self.clock.now_ms());
        let alive = started.saturating_add(3 * self.heartbeat_ms as i64);
        let n = self
            .pool
            .execute(
                Q::both(
                    "UPDATE sessiond_node SET alive_until_ms = $3 WHERE node = $1 AND instance = $2",
                ),
                &[P::Text(&self.node), P::I64(self.instance), P::I64(alive)],
            )
            .await?;
        if n == 0 {
            tracing::error!(node = %self.node, "this node's heartbeat row belongs to another instance now: another node took its name");
        }
        let rows = self
            .pool
            .query(
                Q::Sql {
                    pg: "SELECT node, instance, alive_until_ms, NULL::bytea FROM sessiond_node",
                    my: "SELECT node, instance, alive_until_ms, wake_addr FROM sessiond_node",
                },
                &[],
            )
            .await?;
        let mut nodes = HashMap::with_capacity(rows.len());
        let mut addrs = Vec::new();
        for r in rows {
            let (node, instance, until) = (r.text(0)?, r.i64(1)?, r.i64(2)?);
            if self.hints.is_some() {
                let addr = r.opt_bytes(3)?.and_then(|a| String::from_utf8(a).ok());
                addrs.push((node.clone(), addr));
            }
            nodes.insert(node, (instance, until));
        }
        if let Some(h) = &self.hints {
            h.set_addrs(&addrs);
        }
        let mut seen = self.nodes.lock();
        if seen.out {
            seen.out = false;
            seen.judge_from_ms = alive;
        }
        seen.nodes = nodes;
        seen.read_ms = started;
        Ok(())
    }

    /// How often the node beats, ms.
    pub(crate) fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }

    /// Whether the node is in touch with the database: its last heartbeat
    /// went through (`/readyz`).
    pub(crate) fn in_touch(&self) -> bool {
        !self.nodes.lock().out
    }

    /// Every node registered, by name, and whether its heartbeat is
    /// current, as last read.
    pub(crate) fn nodes(&self) -> Vec<(String, bool)> {
        let now = row::to_sql(self.clock.now_ms());
        let seen = self.nodes.lock();
        let mut all: Vec<_> = seen
            .nodes
            .iter()
            .map(|(name, (_, u))| (name.clone(), !seen.lapsed(*u, now)))
            .collect();
        all.sort();
        all
    }

    /// Removes expired sessions, a batch at a time, until none is left
    /// (at most a few batches a round).
    async fn reap(&self) -> Result<u64, DbError> {
        let now = row::to_sql(self.clock.now_ms());
        let mut total = 0;
        for _ in 0..8 {
            let n = self
                .pool
                .run(|c| async move {
                    c.one(
                        Q::Sql {
                            pg: "WITH gone AS (DELETE FROM sessiond_session WHERE ctid = ANY(ARRAY(\
                                 SELECT s.ctid FROM sessiond_session s WHERE s.expires_ms < $1 \
                                 AND NOT EXISTS (SELECT 1 FROM sessiond_lock l WHERE l.tenant = s.tenant \
                                 AND l.id = s.id AND l.held_until_ms > $1) \
                                 ORDER BY s.expires_ms LIMIT $2 FOR UPDATE OF s SKIP LOCKED)) \
                                 RETURNING tenant, id), \
                                 idle AS (DELETE FROM sessiond_lock l USING gone \
                                 WHERE l.tenant = gone.tenant AND l.id = gone.id \
                                 AND l.holders = '' AND l.waiters = '') \
                                 SELECT count(*) FROM gone",
                            my: "CALL sessiond_reap($1, $2)",
                        },
                        &[P::I64(now), P::I64(REAP_BATCH)],
                    )
                    .await?
                    .i64(0)
                })
                .await?;
            let n = n.max(0) as u64;
            total += n;
            if n < REAP_BATCH as u64 {
                break;
            }
        }
        self.pool_stats().reaped.fetch_add(total, Ordering::Relaxed);
        Ok(total)
    }
}

/// `sessiond migrate`: brings the database named by `config` to this
/// binary's schema; says from which version to which.
pub async fn migrate_database(config: &Config) -> Result<String, ServerError> {
    let db = |m: String| ServerError::Database(m);
    if config.database_url.is_empty() {
        return Err(db(
            "no database: give --database-url (or database_url in the file)".into(),
        ));
    }
    let timeout = Duration::from_millis(config.database_timeout_ms);
    let late = || db("the database did not accept a connection in time".into());
    let pool_target = target(config)?;
    let mysql = matches!(pool_target, Target::MySql { .. });
    let pool = Pool::new(pool_target, 1, timeout, String::new(), "migrate");
    let m = if mysql {
        let client = tokio::time::timeout(timeout, pool.connect_mysql())
            .await
            .map_err(|_| late())?
            .map_err(|e| db(format!("{e:?}")))?;
        my_schema::migrate(&client, "sessiond migrate")
            .await
            .map_err(|e| db(e.to_string()))?
    } else {
        let mut client = tokio::time::timeout(timeout, pool.connect())
            .await
            .map_err(|_| late())?
            .map_err(|e| db(format!("cannot connect to the database: {e:?}")))?;
        schema::migrate(&mut client, "sessiond migrate")
            .await
            .map_err(|e| db(e.to_string()))?
    };
    Ok(if m.from == m.to {
        format!("the schema is at version {} already", m.to)
    } else {
        format!("migrated the schema from version {} to {}", m.from, m.to)
    })
}

/// The database a node's pool connects to, by `storage` (or, for
/// `sessiond migrate`, by the URL's scheme).
fn target(config: &Config) -> Result<Target, ServerError> {
    let mysql = config.storage == crate::persist::Storage::MySql
        || config.database_url.starts_with("mysql:")
        || config.database_url.starts_with("mariadb:");
    if mysql {
        let mut opts = sessiond_mysql::Opts::parse(&config.database_url)
            .map_err(|e| ServerError::Database(format!("database_url: {e}")))?;
        if opts.tls && config.database_ca_file.as_os_str().is_empty() {
            return Err(ServerError::Database("database_url asks for TLS (ssl-mode=REQUIRED): set database_ca_file to the PEM file of the authorities the database's certificate chains to".into()));
        }
        if opts.password.is_none() {
            opts.password = database_password();
        }
        return Ok(Target::MySql {
            opts,
            tls: tls(config)?,
        });
    }
    Ok(Target::Postgres {
        config: pg_config(config)?,
        tls: tls(config)?,
    })
}

/// What each new connection runs first. PostgreSQL: under `always` a
/// reply waits for a synchronous commit; otherwise data writes commit
/// asynchronously (the database may lose the last few hundred ms of them
/// in a crash of its own, as `everysec` promises). MySQL: every statement
/// reads committed rows (no gap locks, which deadlock writers of
/// neighbouring ids), waits at most 5 s for a row lock, and refuses what
/// does not fit a column instead of cutting it; its commits are as durable
/// as `innodb_flush_log_at_trx_commit` says, checked at start
/// (`my_schema::warn_durability`).
fn session_setup(config: &Config) -> String {
    match (config.storage, config.fsync) {
        (crate::persist::Storage::MySql, _) => {
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SET SESSION innodb_lock_wait_timeout = 5, \
             sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
                .to_string()
        }
        (_, Fsync::Always) => String::new(),
        (_, Fsync::Everysec | Fsync::No) => "SET synchronous_commit = off".to_string(),
    }
}

/// The database's connection settings: the URL, with the password from
/// the environment if the URL has none.
fn pg_config(config: &Config) -> Result<tokio_postgres::Config, ServerError> {
    let mut pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .map_err(|e| ServerError::Database(format!("database_url: {e}")))?;
    if pg.get_password().is_none() {
        if let Some(p) = database_password() {
            pg.password(p);
        }
    }
    Ok(pg)
}

/// TLS to the database, when `database_ca_file` names its authorities.
fn tls(config: &Config) -> Result<Option<tls::Rustls>, ServerError> {
    if config.database_ca_file.as_os_str().is_empty() {
        return Ok(None);
    }
    tls::Rustls::from_ca_file(&config.database_ca_file)
        .map(Some)
        .map_err(ServerError::Database)
}

/// The database password from the environment, if the URL has none.
fn database_password() -> Option<String> {
    std::env::var("SESSIOND_DATABASE_PASSWORD")
        .ok()
        .or_else(|| std::env::var("PGPASSWORD").ok())
        .filter(|p| !p.is_empty())
}

fn random_i64() -> Result<i64, ServerError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| ServerError::Database(format!("random: {e}")))?;
    Ok(i64::from_be_bytes(b) & i64::MAX)
}
