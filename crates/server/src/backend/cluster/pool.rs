//! A node's connections to PostgreSQL: a few shared connections, each
//! pipelining every request its clients send (tokio-postgres runs
//! concurrent queries on one connection in the order they are polled), so
//! a node is the connection pool for every client behind it. Requests take
//! the open connections in turn; all of them are opened at start and again
//! after failures by the node's upkeep ([`Pool::fill`], each heartbeat), or
//! by a request that finds none open. A request the database does not
//! answer in `database_timeout_ms` is answered "try again".

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_postgres::NoTls;

pub(crate) use super::db::DbError;
use super::db::{Conn, DbRow, Link, P, Q};
use super::statements::Statements;
use super::tls::Rustls;
use crate::metrics::Histogram;
use sessiond_mysql as my;

/// The node's database counters, for `/metrics`, `INFO` and the
/// dashboard.
#[derive(Default)]
pub(crate) struct PoolStats {
    /// Requests on the database right now (sent, not yet answered).
    pub(crate) in_flight: AtomicI64,
    /// Requests that had to wait before they could be sent: for the
    /// transactions' connection, or for a connection to be opened.
    pub(crate) waits: AtomicU64,
    /// How long each request took, from asking for a connection to the
    /// answer (waits included), failed ones too.
    pub(crate) latency: Histogram,
    /// Connections opened (the first ones and every reconnect).
    pub(crate) connects: AtomicU64,
    /// Attempts to connect that failed.
    pub(crate) connect_failures: AtomicU64,
    /// Requests that failed: the database refused them, the connection
    /// broke, or they timed out.
    pub(crate) errors: AtomicU64,
    /// Requests that timed out.
    pub(crate) timeouts: AtomicU64,
    /// Expired sessions the node's reaper removed.
    pub(crate) reaped: AtomicU64,
    /// Locks this node's writes handed to a waiter on this node.
    pub(crate) handoffs_here: AtomicU64,
    /// Locks this node's writes handed to a waiter on another node (each
    /// a wake-up sent with the commit).
    pub(crate) handoffs_away: AtomicU64,
    /// Wake-ups heard from the database for this node's waiters.
    pub(crate) wakeups_heard: AtomicU64,
}

/// One connection place in the pool.
struct Slot {
    client: Mutex<Option<Arc<Conn>>>,
    /// Serialises reconnecting this slot.
    connecting: tokio::sync::Mutex<()>,
}

/// The database a pool connects to, and how.
pub(crate) enum Target {
    Postgres {
        config: tokio_postgres::Config,
        /// TLS to the database, if `database_ca_file` is set.
        tls: Option<Rustls>,
    },
    MySql {
        opts: my::Opts,
        tls: Option<Rustls>,
    },
}

pub(crate) struct Pool {
    target: Target,
    slots: Vec<Slot>,
    /// The connection for transactions of several statements: a shared
    /// connection would run other clients' statements inside them, so a
    /// transaction has this one to itself while it runs.
    exclusive: Slot,
    next: AtomicUsize,
    timeout: Duration,
    /// `SET` statements each new connection runs first.
    session_setup: String,
    pub(crate) stats: PoolStats,
}

impl Pool {
    /// A pool of `size` connections for `config` (none opened yet).
    pub(crate) fn new(
        mut target: Target,
        size: usize,
        timeout: Duration,
        session_setup: String,
        node: &str,
    ) -> Self {
        if let Target::Postgres { config, .. } = &mut target {
            config.connect_timeout(timeout);
            config.application_name(format!("sessiond {node}"));
        }
        Self {
            target,
            slots: (0..size.max(1))
                .map(|_| Slot {
                    client: Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                })
                .collect(),
            exclusive: Slot {
                client: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            },
            next: AtomicUsize::new(0),
            timeout,
            session_setup,
            stats: PoolStats::default(),
        }
    }

    /// How many of the pool's connections are open.
    pub(crate) fn open_connections(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.client.lock().as_ref().is_some_and(|c| c.usable()))
            .count()
    }

    /// The pool's size.
    pub(crate) fn size(&self) -> usize {
        self.slots.len()
    }

    /// A connection to send a request on: the next open one, round robin;
    /// a closed one is opened again first.
    pub(crate) async fn client(&self) -> Result<Arc<Conn>, DbError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        for i in 0..n {
            let slot = &self.slots[(start + i) % n];
            if let Some(c) = slot.client.lock().as_ref() {
                if c.usable() {
                    return Ok(c.clone());
                }
            }
        }
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        self.reconnect(&self.slots[start % n]).await
    }

    /// Opens every connection of the pool that is not open (the first
    /// ones, and those that broke since): requests are spread over all of
    /// them, so that a commit waiting on one does not hold up the rest.
    /// Stops at the first that cannot be opened.
    pub(crate) async fn fill(&self) -> Result<(), DbError> {
        for slot in &self.slots {
            let closed = slot.client.lock().as_ref().is_none_or(|c| !c.usable());
            if closed {
                self.reconnect(slot).await?;
            }
        }
        Ok(())
    }

    async fn reconnect(&self, slot: &Slot) -> Result<Arc<Conn>, DbError> {
        let _one = slot.connecting.lock().await;
        if let Some(c) = slot.client.lock().as_ref() {
            if c.usable() {
                return Ok(c.clone());
            }
        }
        let conn = self.open().await?;
        *slot.client.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Opens a connection and prepares the statements on it.
    async fn open(&self) -> Result<Arc<Conn>, DbError> {
        match tokio::time::timeout(self.timeout, self.connect_link()).await {
            Ok(Ok(link)) => {
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                Ok(Arc::new(Conn::new(link)))
            }
            Ok(Err(e)) => {
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(_) => {
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                Err(DbError::Failed(format!(
                    "the database did not accept a connection within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }

    /// Opens a connection of the request path: set up, its statements
    /// prepared (PostgreSQL; MySQL's are prepared on first use).
    async fn connect_link(&self) -> Result<Link, DbError> {
        match &self.target {
            Target::Postgres { .. } => {
                let client = self
                    .connect()
                    .await
                    .map_err(|e| DbError::Failed(format!("cannot connect to the database: {e}")))?;
                let st = Statements::prepare(&client).await.map_err(|e| {
                    DbError::Failed(format!(
                        "cannot prepare sessiond's statements (is the schema migrated?): {e}"
                    ))
                })?;
                Ok(Link::Pg { client, st })
            }
            Target::MySql { .. } => {
                let client = self.connect_mysql().await?;
                Ok(Link::My {
                    client,
                    prepared: Mutex::new(std::collections::HashMap::new()),
                })
            }
        }
    }

    /// Opens one connection to PostgreSQL (its driver runs on its own
    /// task) and sets it up.
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let Target::Postgres { config, tls } = &self.target else {
            unreachable!("a PostgreSQL connection asked of a MySQL pool")
        };
        let client = match tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(drive(connection));
                client
            }
        };
        if !self.session_setup.is_empty() {
            client.batch_execute(&self.session_setup).await?;
        }
        Ok(client)
    }

    /// Opens one connection to MySQL (its I/O runs on its own task) and
    /// sets it up.
    pub(crate) async fn connect_mysql(&self) -> Result<my::Client, DbError> {
        let Target::MySql { opts, tls } = &self.target else {
            return Err(DbError::Failed(
                "a MySQL connection asked of a PostgreSQL pool".into(),
            ));
        };
        let (client, io) = my::Client::connect(opts, tls.as_ref().map(Rustls::config))
            .await
            .map_err(|e| DbError::Failed(format!("cannot connect to the database: {e}")))?;
        tokio::spawn(io);
        if !self.session_setup.is_empty() {
            client.query(&self.session_setup).await?;
        }
        Ok(client)
    }

    /// Runs `body` as one transaction on the pool's exclusive connection
    /// (BEGIN, `body`, COMMIT — or ROLLBACK if `body` fails), within the
    /// request timeout. Transactions take turns on it.
    pub(crate) async fn transaction<T, F, Fut>(&self, body: F) -> Result<T, DbError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let slot = &self.exclusive;
        self.run_on(async move {
            // Held for the whole transaction: `connecting` is this slot's
            // turn as well as its reconnect guard.
            let _turn = match slot.connecting.try_lock() {
                Ok(turn) => turn,
                Err(_) => {
                    self.stats.waits.fetch_add(1, Ordering::Relaxed);
                    slot.connecting.lock().await
                }
            };
            let open = slot.client.lock().clone();
            let conn = match open {
                Some(c) if c.usable() && !c.in_transaction.load(Ordering::Relaxed) => c,
                _ => {
                    let c = self.open().await?;
                    *slot.client.lock() = Some(c.clone());
                    c
                }
            };
            conn.in_transaction.store(true, Ordering::Relaxed);
            conn.begin().await?;
            let result = body(conn.clone()).await;
            let ended = conn.end(result.is_ok()).await;
            if ended.is_ok() {
                conn.in_transaction.store(false, Ordering::Relaxed);
            }
            if let Err(e) = ended {
                // A transaction that cannot end leaves the connection
                // unusable: drop it, the next one opens another.
                *slot.client.lock() = None;
                return Err(e);
            }
            result
        })
        .await
    }

    /// Runs `request` (a query on one of the pool's connections) within the
    /// request timeout, counting failures. A connection whose request timed
    /// out is not used again ([`Conn::abandoned`]).
    pub(crate) async fn run<T, F, Fut>(&self, request: F) -> Result<T, DbError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let mut used = None;
        let outcome = self
            .run_on(async {
                let client = self.client().await?;
                used = Some(client.clone());
                request(client).await
            })
            .await;
        if let (Err(DbError::TimedOut(_)), Some(c)) = (&outcome, used) {
            c.abandoned.store(true, Ordering::Relaxed);
        }
        outcome
    }

    /// One query on a connection of the pool ([`Pool::run`]): its rows.
    pub(crate) async fn query(&self, q: Q<'_>, params: &[P<'_>]) -> Result<Vec<DbRow>, DbError> {
        self.run(|c| async move { c.query(q, params).await }).await
    }

    /// One query that answers one row.
    pub(crate) async fn one(&self, q: Q<'_>, params: &[P<'_>]) -> Result<DbRow, DbError> {
        self.run(|c| async move { c.one(q, params).await }).await
    }

    /// One statement: the rows it changed.
    pub(crate) async fn execute(&self, q: Q<'_>, params: &[P<'_>]) -> Result<u64, DbError> {
        self.run(|c| async move { c.execute(q, params).await })
            .await
    }

    /// Opens a connection whose notifications (`LISTEN`) arrive on the
    /// receiver, until the connection ends.
    pub(crate) async fn connect_listening(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::Receiver<tokio_postgres::Notification>,
        ),
        DbError,
    > {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let Target::Postgres { config, tls } = &self.target else {
            return Err(DbError::Failed("LISTEN is PostgreSQL's".into()));
        };
        let client = match tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(forward(connection, tx));
                client
            }
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(forward(connection, tx));
                client
            }
        };
        Ok((client, rx))
    }

    /// Runs `work` within the request timeout, counting failures.
    async fn run_on<T>(
        &self,
        work: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let outcome = {
            let _timed = InFlight::start(&self.stats);
            tokio::time::timeout(self.timeout, work).await
        };
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(DbError::Conflict)) => Err(DbError::Conflict),
            Ok(Err(e)) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(DbError::TimedOut(format!(
                    "the database did not answer within {} ms (database_timeout_ms)",
                    self.timeout.as_millis()
                )))
            }
        }
    }
}

/// A request being counted: in flight until dropped (answered, failed, or
/// given up by its caller), then its time observed.
struct InFlight<'a> {
    stats: &'a PoolStats,
    started: Instant,
}

impl<'a> InFlight<'a> {
    fn start(stats: &'a PoolStats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            stats,
            started: Instant::now(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.latency.observe(self.started.elapsed());
    }
}

/// Runs a connection's I/O until it ends.
async fn drive<F>(connection: F)
where
    F: Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "a database connection ended");
    }
}

/// Runs a connection's I/O, handing its notifications to `tx`, until it
/// ends.
async fn forward<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    tx: tokio::sync::mpsc::Sender<tokio_postgres::Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                if tx.send(n).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the listening database connection ended");
                return;
            }
            None => return,
        }
    }
}
