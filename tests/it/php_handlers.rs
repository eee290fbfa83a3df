//! Real PHP against a real sessiond: PHP's own session machinery with the
//! save handlers PHP already ships — phpredis (`session.save_handler =
//! redis`) and php-memcached (`session.save_handler = memcached`, over its
//! default binary protocol and over text) — and with our pure-PHP
//! `Sessiond\SessionHandler` (clients/php), run as separate `php` processes
//! the way web requests are.
//!
//! Needs `php` with the redis and memcached extensions (Debian: php-cli
//! php-redis php-memcached); CI installs them and requires them, elsewhere
//! the tests skip when absent.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;

use common::process::{start_peer, Peer};
use common::TestServer;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/session_cli.php");
const REGISTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clients/php/tests/register_handler.php"
);

/// A save handler and how it reaches the server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handler {
    Redis(SocketAddr),
    Memcached {
        addr: SocketAddr,
        binary: bool,
    },
    /// `Sessiond\SessionHandler` over the native door.
    Native(SocketAddr),
}

impl Handler {
    pub(crate) fn redis(s: &TestServer) -> Self {
        Handler::Redis(s.addr)
    }

    pub(crate) fn memcached(s: &TestServer, binary: bool) -> Self {
        Handler::Memcached {
            addr: s.memcache,
            binary,
        }
    }

    pub(crate) fn native(s: &TestServer) -> Self {
        Handler::Native(s.addr)
    }

    /// The PHP extension the handler needs (ours needs none beyond php-cli).
    fn extension(self) -> &'static str {
        match self {
            Handler::Redis(_) => "redis",
            Handler::Memcached { .. } => "memcached",
            Handler::Native(_) => "standard",
        }
    }

    /// The php.ini settings, locking on in both.
    fn ini(self) -> Vec<String> {
        match self {
            Handler::Redis(addr) => vec![
                "session.save_handler=redis".into(),
                format!("session.save_path=tcp://{addr}"),
                "redis.session.locking_enabled=1".into(),
                // Poll every 2 ms and never give up, so contention cannot
                // drop an increment; sessiond answers each try at once.
                "redis.session.lock_retries=-1".into(),
                "redis.session.lock_wait_time=2000".into(),
            ],
            Handler::Memcached { addr, binary } => vec![
                "session.save_handler=memcached".into(),
                format!("session.save_path={addr}"),
                "memcached.sess_locking=1".into(),
                format!("memcached.sess_binary_protocol={}", u8::from(binary)),
                // Poll every 2 ms, long enough that contention cannot make
                // session_start give up.
                "memcached.sess_lock_wait_min=2".into(),
                "memcached.sess_lock_wait_max=2".into(),
                "memcached.sess_lock_retries=100000".into(),
            ],
            // Locking is built in: the server queues the request.
            Handler::Native(_) => vec![format!("auto_prepend_file={REGISTER}")],
        }
    }
}

/// Whether php with the handler's extension is here; in CI it must be.
pub(crate) fn available(handler: Handler) -> bool {
    let ext = handler.extension();
    common::process::tool_available(
        Command::new("php").args(["-r", &format!("exit(extension_loaded('{ext}') ? 0 : 1);")]),
        &match ext {
            "standard" => "php-cli".to_string(),
            ext => format!("php-cli and php-{ext}"),
        },
    )
}

fn php(handler: Handler, args: &[&str]) -> String {
    php_with(handler, 600, args)
}

/// `php` with `session.gc_maxlifetime` set to `lifetime_s`.
fn php_with(handler: Handler, lifetime_s: u32, args: &[&str]) -> String {
    succeeded(handler, args, php_run(handler, lifetime_s, None, &[], args))
}

/// `php` logged in as (user, password).
fn php_as(handler: Handler, login: (&str, &str), args: &[&str]) -> String {
    succeeded(handler, args, php_run(handler, 600, Some(login), &[], args))
}

fn succeeded(handler: Handler, args: &[&str], out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "php {handler:?} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One `php` run; `login` goes where each handler takes it: phpredis's
/// `auth[]` in the save path, php-memcached's SASL settings (binary
/// protocol), our handler's environment. `extra` ini settings go last.
fn php_run(
    handler: Handler,
    lifetime_s: u32,
    login: Option<(&str, &str)>,
    extra: &[&str],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new("php");
    let mut ini = handler.ini();
    ini.push("session.use_strict_mode=1".into());
    ini.push(format!("session.gc_maxlifetime={lifetime_s}"));
    if let Some((user, password)) = login {
        match handler {
            // Quoted: the ini parser stops an unquoted value at `=`.
            Handler::Redis(addr) => ini.push(format!(
                "session.save_path=\"tcp://{addr}?auth[]={user}&auth[]={password}\""
            )),
            Handler::Memcached { .. } => {
                ini.push(format!("memcached.sess_sasl_username={user}"));
                ini.push(format!("memcached.sess_sasl_password={password}"));
            }
            Handler::Native(_) => {
                cmd.env("SESSIOND_USER", user);
                cmd.env("SESSIOND_PASSWORD", password);
            }
        }
    }
    ini.extend(extra.iter().map(|s| s.to_string()));
    for setting in &ini {
        cmd.args(["-d", setting]);
    }
    if let Handler::Native(addr) = handler {
        cmd.env("SESSIOND_ADDRESS", format!("tcp://{addr}"));
    }
    cmd.arg(SCRIPT).args(args).output().expect("run php")
}

/// Persistence across processes, strict mode, the native view of the same
/// session, regenerate, and destroy from both sides.
async fn sessions_survive_across_processes_and_doors(s: &TestServer, h: Handler) {
    // Strict mode: an id the server does not know is replaced by a new one.
    let id = php(h, &["write", "unknownid0000000000000000", "user_id", "42"]);
    assert_ne!(id, "unknownid0000000000000000");
    assert_eq!(php(h, &["read", &id, "user_id"]), "42");

    // The same session through the native door.
    let mut c = s.client().await;
    assert_eq!(
        c.get(&id, "user_id").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(c.find("user_id", "42").await.unwrap(), vec![id.clone()]);

    // Regenerate: the old id is gone, the data moved.
    let new = tokio::task::spawn_blocking({
        let id = id.clone();
        move || php(h, &["regenerate", &id])
    })
    .await
    .unwrap();
    assert_ne!(new, id);
    assert_eq!(php(h, &["read", &new, "user_id"]), "42");
    assert!(!c.exists(&id).await.unwrap());

    // A native destroy logs the user out of PHP.
    c.destroy(&new).await.unwrap();
    assert_ne!(
        php(h, &["start", &new]),
        new,
        "strict mode drops the destroyed id"
    );

    // session_destroy from PHP.
    let id = php(h, &["write", "x", "k", "v"]);
    php(h, &["destroy", &id]);
    assert!(!c.exists(&id).await.unwrap());
}

/// `session.gc_maxlifetime` becomes the session's timeout: past it, the
/// session is gone and strict mode hands out a new id.
async fn sessions_expire_after_gc_maxlifetime(s: &TestServer, h: Handler) {
    let id = php_with(h, 1, &["write", "x", "k", "v"]);
    let mut c = s.client().await;
    assert!(c.exists(&id).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert!(!c.exists(&id).await.unwrap(), "expired after 1 s idle");
    assert_ne!(php_with(h, 1, &["start", &id]), id);
}

/// 8 processes x 50 locked read-modify-writes of one session.
async fn eight_processes_increment_exactly_400_times(s: &TestServer, h: Handler) {
    let id = php(h, &["write", "seed", "n", "0"]);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let id = id.clone();
            std::thread::spawn(move || php(h, &["incr", &id, "50"]))
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), "done");
    }
    assert_eq!(php(h, &["read", &id, "n"]), "400");
    let mut c = s.client().await;
    assert_eq!(c.get(&id, "n").await.unwrap().as_deref(), Some(&b"400"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phpredis_sessions_survive_across_processes_and_doors() {
    let s = TestServer::start().await;
    let h = Handler::redis(&s);
    if available(h) {
        sessions_survive_across_processes_and_doors(&s, h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_after_gc_maxlifetime_with_every_handler() {
    let s = TestServer::start().await;
    for h in [
        Handler::redis(&s),
        Handler::memcached(&s, true),
        Handler::memcached(&s, false),
        Handler::native(&s),
    ] {
        if available(h) {
            sessions_expire_after_gc_maxlifetime(&s, h).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phpredis_eight_processes_increment_exactly_400_times() {
    let s = TestServer::start().await;
    let h = Handler::redis(&s);
    if available(h) {
        eight_processes_increment_exactly_400_times(&s, h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_memcached_sessions_survive_across_processes_and_doors() {
    let s = TestServer::start().await;
    for binary in [true, false] {
        let h = Handler::memcached(&s, binary);
        if available(h) {
            sessions_survive_across_processes_and_doors(&s, h).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_memcached_eight_processes_increment_exactly_400_times() {
    let s = TestServer::start().await;
    let h = Handler::memcached(&s, true);
    if available(h) {
        eight_processes_increment_exactly_400_times(&s, h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_handler_sessions_survive_across_processes_and_doors() {
    let s = TestServer::start().await;
    let h = Handler::native(&s);
    if available(h) {
        sessions_survive_across_processes_and_doors(&s, h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_handler_eight_processes_increment_exactly_400_times() {
    let s = TestServer::start().await;
    let h = Handler::native(&s);
    if available(h) {
        eight_processes_increment_exactly_400_times(&s, h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_through_every_php_handler() {
    let s = TestServer::start().await;
    let (r, m) = (Handler::redis(&s), Handler::memcached(&s, true));
    if !(available(r) && available(m)) {
        return;
    }
    // Each handler names the session by its own key prefix; both strip to
    // the same id.
    let id = php(r, &["write", "x", "from", "redis"]);
    assert_eq!(php(m, &["read", &id, "from"]), "redis");
    php(m, &["write", &id, "from", "memcached"]);
    assert_eq!(php(r, &["read", &id, "from"]), "memcached");
    let n = Handler::native(&s);
    php(n, &["write", &id, "from", "sessiond"]);
    assert_eq!(php(m, &["read", &id, "from"]), "sessiond");
}

/// On a server with users each handler logs in the way it already knows
/// how, and sees only its user's tenant; without the login, or with a wrong
/// password, PHP cannot start the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_handlers_log_in_and_see_only_their_tenant() {
    use sessiond_server::{Config, Role, Storage};
    let user = |name: &str, tenant: &str| {
        common::user(name, &format!("pw-{name}"), tenant, Role::Readwrite)
    };
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        users: vec![user("alice", "alpha"), user("bob", "beta")],
        ..Config::default()
    })
    .await;
    let (alice, bob) = (("alice", "pw-alice"), ("bob", "pw-bob"));
    let mut native_alice = s.client().await;
    native_alice.auth("alice", "pw-alice").await.unwrap();
    let mut native_bob = s.client().await;
    native_bob.auth("bob", "pw-bob").await.unwrap();
    for h in [
        Handler::redis(&s),
        Handler::memcached(&s, true),
        Handler::native(&s),
    ] {
        if !available(h) {
            continue;
        }
        let id = php_as(h, alice, &["write", "x", "user_id", "42"]);
        assert_eq!(php_as(h, alice, &["read", &id, "user_id"]), "42", "{h:?}");
        assert_eq!(php_as(h, bob, &["read", &id, "user_id"]), "NULL", "{h:?}");
        assert!(native_alice.exists(&id).await.unwrap(), "{h:?}");
        assert!(!native_bob.exists(&id).await.unwrap(), "{h:?}");
        for login in [None, Some(("alice", "wrong"))] {
            // Both extensions retry their lock on an error as if it were
            // taken (phpredis for ever, as configured): phpredis reads
            // without locking, php-memcached gives up after a few tries.
            let out = php_run(
                h,
                600,
                login,
                &[
                    "redis.session.locking_enabled=0",
                    "memcached.sess_lock_retries=3",
                ],
                &["write", "x", "k", "v"],
            );
            assert!(
                !out.status.success(),
                "{h:?} {login:?} must not start a session: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

/// php.ini as each extension ships it, locking on (phpredis's is off by
/// default): none of the retry settings the other tests tune.
fn default_lock_ini(h: Handler) -> Vec<String> {
    h.ini()
        .into_iter()
        .filter(|s| !s.starts_with("redis.session.lock_") && !s.starts_with("memcached.sess_lock_"))
        .collect()
}

/// `php session_cli.php args…` through `h` with `ini`: whether it
/// succeeded, and what it printed.
fn php_ini(h: Handler, ini: &[String], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("php");
    for setting in ini
        .iter()
        .map(String::as_str)
        .chain(["session.use_strict_mode=1", "session.gc_maxlifetime=600"])
    {
        cmd.args(["-d", setting]);
    }
    if let Handler::Native(addr) = h {
        cmd.env("SESSIOND_ADDRESS", format!("tcp://{addr}"));
    }
    let out = cmd.arg(SCRIPT).args(args).output().expect("run php");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string()
        + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// 8 processes x 50 locked increments of one session, each holding it
/// 2 ms, on the extension's default lock settings, process `i` through
/// `handlers[i % len]` (the same extension on different nodes): the final
/// count and how many requests failed.
pub(crate) fn contend_with_default_settings(handlers: &[Handler]) -> (u32, usize) {
    let h = handlers[0];
    let (ok, id) = php_ini(h, &default_lock_ini(h), &["write", "seed", "n", "0"]);
    assert!(ok, "{id}");
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let h = handlers[i % handlers.len()];
            let (ini, id) = (default_lock_ini(h), id.clone());
            std::thread::spawn(move || {
                let (ok, out) = php_ini(h, &ini, &["incr", &id, "50", "2"]);
                assert!(ok, "{out}");
                out.split("failed=")
                    .nth(1)
                    .and_then(|n| n.split_whitespace().next())
                    .map_or(0, |n| n.parse().unwrap_or(50))
            })
        })
        .collect();
    let failed = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .sum::<usize>();
    let (ok, n) = php_ini(h, &default_lock_ini(h), &["read", &id, "n"]);
    assert!(ok, "{n}");
    (n.lines().next().unwrap_or("").parse().unwrap_or(0), failed)
}

/// Says a figure on the test run's own stderr (shown by `cargo test`).
pub(crate) fn record(what: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{what}");
}

/// The one every PHP farm hits: with the extensions' default lock
/// settings, concurrent requests lose writes on Redis and memcached (their
/// clients poll a few times and give up). On sessiond the lock request
/// waits in the server's queue (`door_lock_wait_ms`) and is answered the
/// moment the lock is free: exactly 400, nothing failed. The same run
/// against real redis-server and memcached is recorded beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_lock_settings_lose_no_write_on_sessiond() {
    let s = TestServer::start().await;
    for h in [
        Handler::redis(&s),
        Handler::memcached(&s, true),
        Handler::memcached(&s, false),
    ] {
        if !available(h) {
            continue;
        }
        let (n, failed) = contend_with_default_settings(&[h]);
        record(format!(
            "sessiond, {h:?}, default lock settings: n={n} of 400, {failed} failed requests"
        ));
        assert_eq!((n, failed), (400, 0), "{h:?}");
    }
    if let Some((_redis, redis_port)) = start_peer(Peer::Redis) {
        let h = Handler::Redis(SocketAddr::from(([127, 0, 0, 1], redis_port)));
        if available(h) {
            let (n, failed) = contend_with_default_settings(&[h]);
            record(format!(
                "real redis-server, default lock settings: n={n} of 400, {failed} failed requests"
            ));
            assert!(n <= 400);
        }
    }
    if let Some((_memcached, mc_port)) = start_peer(Peer::Memcached) {
        let h = Handler::Memcached {
            addr: SocketAddr::from(([127, 0, 0, 1], mc_port)),
            binary: true,
        };
        if available(h) {
            let (n, failed) = contend_with_default_settings(&[h]);
            record(format!(
                "real memcached, default lock settings: n={n} of 400, {failed} failed requests"
            ));
            assert!(n <= 400);
        }
    }
}
