//! Starting the real server on an ephemeral loopback port.

pub mod db;
pub mod mysql;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod wire;

use std::net::SocketAddr;

use std::sync::Arc;

use sessiond_core::{Engine, ManualClock};
use sessiond_server::{Config, Doors, Server, Storage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A listener on a free loopback port, and its address.
async fn ephemeral() -> (tokio::net::TcpListener, SocketAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

/// A running server; stops when dropped or by `stop()`.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The memcached door.
    pub memcache: SocketAddr,
    /// The HTTP_SessionServer line-protocol door.
    pub line: SocketAddr,
    /// The HTTP door.
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with volatile storage.
    pub async fn start() -> Self {
        Self::start_with(Config {
            storage: Storage::Memory,
            ..Config::default()
        })
        .await
    }

    pub async fn start_with(config: Config) -> Self {
        Self::start_on(config, None).await
    }

    /// Like [`TestServer::start_with`], on a manual clock at `now_ms`: the
    /// test moves time with `clock.advance` instead of sleeping.
    pub async fn start_with_clock(config: Config, clock: Arc<ManualClock>) -> Self {
        let engine = Arc::new(Engine::new(config.engine(), clock));
        Self::start_on(config, Some(engine)).await
    }

    async fn start_on(config: Config, engine: Option<Arc<Engine>>) -> Self {
        let config = on_test_backend(config);
        let engine = engine.unwrap_or_else(|| {
            Arc::new(Engine::new(
                config.engine(),
                Arc::new(sessiond_core::SystemClock),
            ))
        });
        let server = Server::start_with_engine(config, engine)
            .await
            .expect("open");
        let (listener, addr) = ephemeral().await;
        let (memcache_listener, memcache) = ephemeral().await;
        let (line_listener, line) = ephemeral().await;
        let (http_listener, http) = ephemeral().await;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let doors = Doors {
                resp: listener,
                line: Some(line_listener),
                memcache: Some(memcache_listener),
                http: Some(http_listener),
            };
            server
                .run_doors(doors, async {
                    let _ = rx.await;
                })
                .await
                .expect("server run");
        });
        Self {
            addr,
            memcache,
            line,
            http,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> sessiond_client::Client {
        sessiond_client::Client::connect(self.addr)
            .await
            .expect("connect")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One command on a client: its reply, or its error as `Error("CODE
/// message")` (panics if the connection fails).
pub async fn call(c: &mut sessiond_client::Client, args: &[&str]) -> sessiond_client::RespValue {
    match c.call(args).await {
        Ok(v) => v,
        Err(sessiond_client::Error::Server { code, message }) => {
            sessiond_client::RespValue::Error(format!("{code} {message}"))
        }
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// A bulk reply of `s`.
pub fn bulk(s: &str) -> sessiond_client::RespValue {
    sessiond_client::RespValue::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

/// Whether this run is a conformance pass on a cluster backend
/// (PostgreSQL or MySQL); a test that is about the embedded store only
/// says why it does not run there.
pub fn on_cluster_pass(test: &str, why: &str) -> bool {
    let backend = std::env::var("SESSIOND_TEST_BACKEND").unwrap_or_default();
    let on = matches!(backend.as_str(), "postgres" | "mysql");
    if on {
        eprintln!("not in the {backend} pass: {test}: {why}");
    }
    on
}

/// The backend the tests' servers run on: `SESSIOND_TEST_BACKEND=postgres`
/// (or `mysql`) puts every server a test starts with volatile storage on a
/// database of its own in the private PostgreSQL cluster (MariaDB server)
/// — the conformance runs; else the embedded store, as configured.
fn on_test_backend(mut config: Config) -> Config {
    if config.storage == Storage::Memory {
        match std::env::var("SESSIOND_TEST_BACKEND").as_deref() {
            Ok("postgres") => {
                let pg =
                    postgres::shared().expect("PostgreSQL, for SESSIOND_TEST_BACKEND=postgres");
                config.storage = Storage::Postgres;
                config.database_url = pg.database();
            }
            Ok("mysql") => {
                let my = mysql::shared().expect("MariaDB, for SESSIOND_TEST_BACKEND=mysql");
                config.storage = Storage::MySql;
                config.database_url = my.database();
            }
            _ => {}
        }
    }
    if config.storage.is_cluster() && config.node_name.is_empty() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NODE: AtomicU64 = AtomicU64::new(0);
        config.node_name = format!("test-node-{}", NODE.fetch_add(1, Ordering::Relaxed));
    }
    config
}

/// A `[[users]]` entry with `password` hashed as `sessiond passwd` would.
pub fn user(
    name: &str,
    password: &str,
    tenant: &str,
    role: sessiond_server::Role,
) -> sessiond_server::UserConfig {
    sessiond_server::UserConfig {
        name: name.into(),
        password_hash: sessiond_server::hash_password(password.as_bytes()).expect("hash"),
        tenant: tenant.into(),
        role,
    }
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "sessiond-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A durable configuration in `dir`.
pub fn durable(dir: &std::path::Path, fsync: sessiond_server::Fsync) -> Config {
    Config {
        storage: Storage::Log,
        data_dir: dir.to_path_buf(),
        fsync,
        ..Config::default()
    }
}

/// Runs a client script, `script(redis_port, memcached_port)`, against a
/// sessiond on the default configuration and against private real
/// redis-server and memcached: the sessiond, for a look at what the script
/// left, and what it printed on each (ours, real); None (skipped) when a
/// peer is not installed.
pub async fn ours_and_real(
    script: impl Fn(u16, u16) -> std::process::Command,
) -> Option<(TestServer, Vec<u8>, Vec<u8>)> {
    use process::{run_script, start_peer, Peer};
    let (_redis, redis_port) = start_peer(Peer::Redis)?;
    let (_memcached, memcached_port) = start_peer(Peer::Memcached)?;
    let s = TestServer::start().await;
    let ours = run_script(script(s.addr.port(), s.memcache.port())).await;
    let real = run_script(script(redis_port, memcached_port)).await;
    Some((s, ours, real))
}
