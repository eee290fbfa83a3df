//! The accept loop, the upkeep task, and graceful shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiond_core::{Engine, SystemClock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::access::admission::{Admission, Permit};
use crate::access::allowlist;
use crate::access::auth::Auth;
use crate::backend::cluster::Cluster;
use crate::config::Config;
use crate::conn::stream::Stream;
use crate::door::Door;
use crate::doors::resp;
use crate::error::ServerError;
use crate::persist::Persistence;
use crate::scripts::Scripts;
use crate::shared::Shared;
use crate::shared::{FireOnDrop, StopSignal};
use crate::tenant::{Tenant, Tenants};

/// A configured server, ready to run on a listener.
pub struct Server {
    config: Config,
    tenants: Arc<Tenants>,
    tls: Option<TlsAcceptor>,
    /// The cluster's database, under `postgres` storage.
    cluster: Option<Arc<Cluster>>,
    /// The plugins, when `plugins_dir` is set.
    scripts: Arc<Scripts>,
}

impl Server {
    /// A server with a fresh engine on the system clock; with `log`
    /// storage, the data directory is recovered into it first.
    pub fn open(config: Config) -> Result<Self, ServerError> {
        let engine = Arc::new(Engine::new(config.engine(), Arc::new(SystemClock)));
        Self::open_with_engine(config, engine)
    }

    /// Like [`Server::open`] with `engine` as the default tenant's (a
    /// test's manual clock); other tenants' engines share its clock.
    pub fn open_with_engine(config: Config, engine: Arc<Engine>) -> Result<Self, ServerError> {
        Self::open_on(config, engine, None)
    }

    fn open_on(
        config: Config,
        engine: Arc<Engine>,
        cluster: Option<Arc<Cluster>>,
    ) -> Result<Self, ServerError> {
        // Certificate trouble stops the start, before any data is opened.
        let tls = config.tls.acceptor()?;
        let tenants = Arc::new(Tenants::open(&config, engine, cluster.as_ref())?);
        let dir = config.plugins_dir.as_path();
        let scripts = Scripts::open(
            (!dir.as_os_str().is_empty()).then_some(dir),
            config.scripts.clone(),
            config.redis_keys(),
        );
        // Every tenant's engine (a cluster node's working copies too) runs
        // calls on the same functions and Redis scripts; each sees only
        // its own tenant's sessions.
        for t in tenants.iter() {
            t.engine().install_scripts(scripts.clone());
        }
        Ok(Self {
            config,
            tenants,
            tls,
            cluster,
            scripts,
        })
    }

    /// Like [`Server::open`] for every storage: under `postgres`, connects
    /// to the database first (migrating its schema, registering the node).
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let engine = Arc::new(Engine::new(config.engine(), Arc::new(SystemClock)));
        Self::start_with_engine(config, engine).await
    }

    /// [`Server::start`] with `engine` as the default tenant's (its clock
    /// is the node's; under `postgres` it is the node's working copy).
    pub async fn start_with_engine(
        config: Config,
        engine: Arc<Engine>,
    ) -> Result<Self, ServerError> {
        if !config.storage.is_cluster() {
            return Self::open_on(config, engine, None);
        }
        config.validate()?;
        let cluster = Cluster::open(&config, config.node_name(), engine.clock()).await?;
        Self::open_on(config, engine, Some(cluster))
    }

    /// The default tenant's engine (the only one without users).
    pub fn engine(&self) -> &Arc<Engine> {
        self.tenants.default_tenant().engine()
    }

    /// The default tenant's open data directory, with `log` storage.
    pub fn persistence(&self) -> Option<&Arc<Persistence>> {
        self.tenants.default_tenant().persistence()
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(name)
    }

    /// Serves `listener` until `shutdown` resolves, then stops accepting,
    /// lets open connections finish what they have read (for up to
    /// `shutdown_grace_ms`), and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        self.run_doors(
            Doors {
                resp: listener,
                line: None,
                memcache: None,
                http: None,
            },
            shutdown,
        )
        .await
    }

    /// Like [`Server::run`] with every configured door's listener.
    pub async fn run_doors(
        self,
        doors: Doors,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let Doors {
            resp: listener,
            line,
            memcache,
            http,
        } = doors;
        let local = listener.local_addr()?;
        let auth = Auth::new(
            &self.config.users,
            self.config.limits.max_auth_failures,
            self.config
                .limits
                .auth_failure_window_s
                .saturating_mul(1000),
            self.engine().clock(),
        );
        let shared = Arc::new(Shared {
            tenants: self.tenants.clone(),
            auth,
            limits: self.config.codec_limits(),
            started: Instant::now(),
            port: local.port(),
            connected: AtomicUsize::new(0),
            redis_keys: Arc::new(self.config.redis_keys()),
            stopping: Arc::new(StopSignal::new()),
            memcache_keys: self.config.memcache_keys(),
            timeouts: self.config.connection_timeouts(),
            admission: Arc::new(Admission::new(
                self.config.limits.max_connections,
                self.config.limits.max_connections_per_ip,
            )),
            allow: [
                self.config.allow_resp.clone(),
                self.config.allow_line.clone(),
                self.config.allow_memcache.clone(),
                self.config.allow_http.clone(),
            ],
            denied: AtomicU64::new(0),
            doors: Default::default(),
            cluster: self.cluster.clone(),
            tls: Door::ALL.map(|d| {
                self.config
                    .tls
                    .on_for(d)
                    .then(|| self.tls.clone())
                    .flatten()
            }),
            tls_failures: AtomicU64::new(0),
            scripts: self.scripts.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        // However this future ends, the socket connections stop waiting.
        let _fire = FireOnDrop(shared.stopping.clone());
        let upkeep = tokio::spawn(upkeep(
            self.tenants.clone(),
            self.config.tick_ms,
            stop_rx.clone(),
        ));
        let cluster_upkeep = self.cluster.clone().map(|c| {
            tokio::spawn(c.clone().listen(stop_rx.clone()));
            tokio::spawn(c.upkeep(stop_rx.clone()))
        });
        let reloads = self
            .scripts
            .has_dir()
            .then(|| tokio::spawn(reload_on_hangup(self.scripts.clone(), stop_rx.clone())));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    start(&mut connections, accepted, Door::Resp, &shared, &stop_rx).await;
                }
                accepted = accept_maybe(line.as_ref()) => {
                    start(&mut connections, accepted, Door::Line, &shared, &stop_rx).await;
                }
                accepted = accept_maybe(memcache.as_ref()) => {
                    start(&mut connections, accepted, Door::Memcache, &shared, &stop_rx).await;
                }
                accepted = accept_maybe(http.as_ref()) => {
                    start(&mut connections, accepted, Door::Http, &shared, &stop_rx).await;
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!(
            open = connections.len(),
            "shutting down: no longer accepting"
        );
        drop(listener);
        drop(line);
        drop(memcache);
        drop(http);
        let _ = stop_tx.send(true);
        shared.stopping.fire();
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = connections.len(),
                "grace period over; closing remaining connections"
            );
            connections.shutdown().await;
        }
        let _ = upkeep.await;
        if let Some(r) = reloads {
            let _ = r.await;
        }
        if let Some(c) = cluster_upkeep {
            let _ = c.await;
        }

        for p in self.tenants.iter().filter_map(|t| t.persistence()) {
            // Everything appended is written and fsynced before exit.
            p.shutdown();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Reloads the plugins on every `SIGHUP`, until the server stops.
async fn reload_on_hangup(scripts: Arc<Scripts>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reload the plugins with `sessiond ctl reload`");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP received: reloading the plugins");
                let s = scripts.clone();
                let _ = tokio::task::spawn_blocking(move || s.reload()).await;
            }
        }
    }
}

/// Serves `listener` with `config` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::start(config).await?.run(listener, shutdown).await
}

/// The listeners of the doors: the native RESP one, and optionally the
/// HTTP_SessionServer line protocol, memcached's protocols, and HTTP
/// (health, readiness, metrics).
pub struct Doors {
    pub resp: TcpListener,
    pub line: Option<TcpListener>,
    pub memcache: Option<TcpListener>,
    pub http: Option<TcpListener>,
}

/// A new connection with its place under the connection limits, ready to
/// serve. Over a limit, the client is told so and the connection closed;
/// on an accept error (out of file descriptors and the like) says so,
/// backs off and yields nothing.
async fn admit(
    accepted: std::io::Result<(TcpStream, std::net::SocketAddr)>,
    door: Door,
    shared: &Shared,
) -> Option<(TcpStream, Permit)> {
    match accepted {
        Ok((stream, peer)) => {
            if !allowlist::allows(&shared.allow[door as usize], peer.ip()) {
                // Not a word to an address that has no business here.
                shared.denied.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, door = door.name(), "connection from an address not on the allowlist closed");
                return None;
            }
            let permit = match shared.admission.admit(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    // Best effort, never waiting: the socket's buffer is
                    // empty, so a short line goes out whole.
                    let _ = stream.try_write(door.refusal(refusal.message()).as_bytes());
                    tracing::debug!(%peer, door = door.name(), reason = refusal.message(), "connection refused");
                    return None;
                }
            };
            // Small request/response exchanges: don't let Nagle hold replies.
            let _ = stream.set_nodelay(true);
            tracing::debug!(%peer, door = door.name(), "connection accepted");
            shared.doors[door as usize]
                .accepted
                .fetch_add(1, Ordering::Relaxed);
            Some((stream, permit))
        }
        Err(e) => {
            tracing::warn!(error = %e, door = door.name(), "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Admits a new connection and runs it as a task of its own: the TLS
/// handshake (if its door speaks TLS), then its door's loop, keeping its
/// place under the connection limits until it ends.
async fn start(
    connections: &mut JoinSet<()>,
    accepted: std::io::Result<(TcpStream, std::net::SocketAddr)>,
    door: Door,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) {
    let Some((tcp, permit)) = admit(accepted, door, shared).await else {
        return;
    };
    let (shared, stop) = (shared.clone(), stop.clone());
    shared.doors[door as usize]
        .open
        .fetch_add(1, Ordering::Relaxed);
    connections.spawn(async move {
        if let Some(stream) = handshake(tcp, door, &shared).await {
            match door {
                Door::Resp => resp::serve(stream, shared.clone()).await,
                Door::Line => crate::doors::line::serve(stream, shared.clone()).await,
                Door::Memcache => crate::doors::memcache::serve(stream, shared.clone()).await,
                Door::Http => crate::doors::http::serve(stream, shared.clone(), stop).await,
            }
        }
        shared.doors[door as usize]
            .open
            .fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// The connection's stream: TLS once its handshake is done (within the
/// request timeout), or plain TCP on a door without TLS.
async fn handshake(tcp: TcpStream, door: Door, shared: &Shared) -> Option<Stream> {
    let Some(acceptor) = &shared.tls[door as usize] else {
        return Some(Stream::Plain(tcp));
    };
    match tokio::time::timeout(shared.timeouts.request, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            shared.tls_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, door = door.name(), "TLS handshake failed");
            None
        }
        Err(_) => {
            shared.tls_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(door = door.name(), "TLS handshake timed out");
            None
        }
    }
}

/// Accepts on `listener`, or never if there is none.
async fn accept_maybe(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Expires sessions and leases every `tick_ms`; each round is bounded.
async fn upkeep(tenants: Arc<Tenants>, tick_ms: u64, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_millis(tick_ms.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                for t in tenants.iter() {
                    if let Some(c) = t.cluster() {
                        // The database expires sessions (the cluster's
                        // own upkeep); the working copy only tidies up.
                        c.tick().await;
                        continue;
                    }
                    let report = t.engine().tick();
                    if report.expired_sessions > 0 || report.expired_leases > 0 {
                        tracing::debug!(tenant = t.name(), sessions = report.expired_sessions, leases = report.expired_leases, "expired");
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
}
