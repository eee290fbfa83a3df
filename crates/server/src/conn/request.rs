//! The one request path. Every command any door sends runs through
//! [`Caller::start`]: the role's permission, the per-tenant count and
//! latency, the durability mark under `fsync always`, the engine (a
//! cross-session command on the blocking pool), and — when the engine
//! queues a lock request — a [`Waiting`] that the socket door finishes
//! after waiting ([`crate::conn::link::Link::run`]), so the door never
//! writes this bracket itself.
//!
//! This is the seam behind which the store sits: a door hands over a
//! [`Command`] and gets a [`Reply`] or an [`Error`], and does not know
//! whether the in-memory engine or the cluster's database answered.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sessiond_core::{ClientHandle, Command, Engine, Error, Lent, Outcome, PendingLock, Reply};

use super::durable::DurableMark;
use super::stretch;
use crate::access::auth::Role;
use crate::backend::cluster::{ClusterTenant, ClusterWait, Done};
use crate::metrics::Proto;
use crate::shared::Shared;
use crate::tenant::Tenant;

/// A client's place in its tenant's engine; dropping it releases its
/// locks.
struct Registration {
    engine: Arc<Engine>,
    client: ClientHandle,
    /// The tenant on a cluster's database, whose lock rows the client's
    /// holds and requests are in.
    cluster: Option<Arc<ClusterTenant>>,
    /// The server's count of connected clients, when this is one (an HTTP
    /// request is not).
    connected: Option<Arc<Shared>>,
}

impl Registration {
    fn new(tenant: &Tenant, connected: Option<Arc<Shared>>) -> Self {
        let engine = tenant.engine().clone();
        let client = engine.connect();
        if let Some(s) = &connected {
            s.connected.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            engine,
            client,
            cluster: tenant.cluster().cloned(),
            connected,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.engine.disconnect(&self.client);
        if let Some(cluster) = self.cluster.clone() {
            // Its lock rows are in the database: give them up off this
            // (synchronous) drop.
            let client = self.client.id();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { cluster.disconnect(client).await });
            }
        }
        if let Some(s) = &self.connected {
            s.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Who runs commands: a tenant, the client's place in its engine, the
/// role (None until a login), the protocol commands are counted under,
/// and the durability mark of the replies not yet sent.
pub(crate) struct Caller {
    tenant: Arc<Tenant>,
    registration: Registration,
    role: Option<Role>,
    /// The protocol of the request being answered (the RESP listener
    /// speaks two), for the per-protocol command counts.
    pub(crate) proto: Proto,
    durable: DurableMark,
}

/// How [`Caller::start`] left a command.
pub(crate) enum Started<T, F> {
    /// Answered: `finish` made this of the reply or the refusal.
    Done(T),
    /// Queued for a lock: wait for it, then [`Caller::finish_wait`].
    Wait(Waiting<F>),
}

/// A command queued for a lock.
pub(crate) struct Waiting<F> {
    pub(crate) pending: Pending,
    before: Option<u64>,
    finish: F,
}

/// A queued lock request: in the engine's queue, or in a cluster's lock
/// row (waited for on this node).
pub(crate) enum Pending {
    Engine(PendingLock),
    Cluster(ClusterWait),
}

impl Pending {
    /// The session whose lock is awaited.
    pub(crate) fn id(&self) -> &sessiond_core::SessionId {
        match self {
            Pending::Engine(p) => &p.id,
            Pending::Cluster(w) => &w.id,
        }
    }

    /// How long the client agreed to wait, ms.
    pub(crate) fn wait_ms(&self) -> u64 {
        match self {
            Pending::Engine(p) => p.wait_ms,
            Pending::Cluster(w) => w.wait_ms,
        }
    }
}

impl Caller {
    /// A caller in `tenant` with `role`; `connected` counts it among the
    /// server's connected clients.
    pub(crate) fn new(
        tenant: Arc<Tenant>,
        role: Option<Role>,
        proto: Proto,
        connected: Option<Arc<Shared>>,
    ) -> Self {
        Self {
            registration: Registration::new(&tenant, connected),
            tenant,
            role,
            proto,
            durable: DurableMark::default(),
        }
    }

    /// The caller as the engine knows it.
    pub(crate) fn client(&self) -> &ClientHandle {
        &self.registration.client
    }

    pub(crate) fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// Whether the caller may run commands (it logged in, or the server
    /// has no users).
    pub(crate) fn authenticated(&self) -> bool {
        self.role.is_some()
    }

    /// Refuses `cmd` unless the caller's role allows it.
    pub(crate) fn permit(&self, cmd: &Command) -> Result<(), Error> {
        self.allows(cmd.access())
    }

    /// Refuses unless the caller's role allows `access`.
    pub(crate) fn allows(&self, access: sessiond_core::Access) -> Result<(), Error> {
        match self.role {
            None => Err(Error::NotAuthenticated),
            Some(role) => role.check(access),
        }
    }

    /// After a login: work in `tenant` with `role`. Moving to another
    /// tenant gives up whatever the caller held in the old one; replies
    /// pending on the old tenant's log wait for it first.
    pub(crate) async fn switch(&mut self, tenant: Arc<Tenant>, role: Role) {
        if !Arc::ptr_eq(&tenant, &self.tenant) {
            self.durable.wait(self.tenant.persistence()).await;
            let connected = self.registration.connected.clone();
            self.registration = Registration::new(&tenant, connected);
            self.tenant = tenant;
        }
        self.role = Some(role);
    }

    /// Runs `cmd`: refused unless the role allows it; counted with its
    /// time and error; a write noted for the durability wait; a
    /// cross-session command ([`Command::is_heavy`]) on the blocking pool,
    /// with `finish` there too (turning a hundred thousand ids into bytes
    /// is work as well). A lock request the engine queues comes back as
    /// [`Started::Wait`].
    pub(crate) async fn start<T, F>(&mut self, cmd: Command, finish: F) -> Started<T, F>
    where
        T: Send + 'static,
        F: FnOnce(Result<Reply, Error>) -> T + Send + 'static,
    {
        let (cmd, finish) = match self.start_now(cmd, finish) {
            Ok(started) => return started,
            Err(back) => back,
        };
        // What follows may take a while without a wait: the next command
        // reads the clock afresh.
        stretch::broken();
        // What the request path needs of the command, from its one match.
        let meta = cmd.meta();
        let index = meta.index;
        let started = self.tenant.engine().now_us();
        if let Err(e) = self.allows(meta.access) {
            self.tenant
                .metrics
                .command(self.proto, index, self.since(started), Some(&e));
            return Started::Done(finish(Err(e)));
        }
        if let Some(cluster) = self.tenant.cluster() {
            // The database answers; the reply waits for its commit.
            let result = match cluster.execute(self.client(), cmd).await {
                Done::Reply(r) => r,
                Done::Wait(wait) => {
                    self.tenant
                        .metrics
                        .command(self.proto, index, self.since(started), None);
                    return Started::Wait(Waiting {
                        pending: Pending::Cluster(wait),
                        before: None,
                        finish,
                    });
                }
            };
            self.tenant.metrics.command(
                self.proto,
                index,
                self.since(started),
                result.as_ref().err(),
            );
            return Started::Done(finish(result));
        }
        // A cross-session command (start_now runs every other one).
        let before = DurableMark::before(self.tenant.persistence(), meta.write);
        // A function runs right here when its sessions are free and it
        // ends within a short slice; else off the workers like a walk.
        if let Some(result) = self.tenant.engine().call_in_place(self.client(), &cmd) {
            self.tenant.metrics.command(
                self.proto,
                index,
                self.since(started),
                result.as_ref().err(),
            );
            self.durable.after(self.tenant.persistence(), before);
            return Started::Done(finish(result));
        }
        let (done, error) = self
            .tenant
            .offload
            .run_then(self.tenant.engine(), self.client(), cmd, move |r| {
                let error = r.as_ref().err().cloned();
                (finish(r), error)
            })
            .await;
        self.tenant
            .metrics
            .command(self.proto, index, self.since(started), error.as_ref());
        self.durable.after(self.tenant.persistence(), before);
        Started::Done(done)
    }

    /// [`Caller::start`] without waiting for anything: a command the
    /// engine answers on this thread (neither a cross-session one nor a
    /// cluster's) runs now; any other comes back, untouched, for `start`.
    /// The request path of nearly every request, as a plain function: no
    /// future to build, no command moved from one to the next.
    // The command comes back whole, by value: boxing it would allocate
    // for every command that takes the long way.
    #[allow(clippy::result_large_err)]
    pub(crate) fn start_now<T, F>(
        &mut self,
        cmd: Command,
        finish: F,
    ) -> Result<Started<T, F>, (Command, F)>
    where
        F: FnOnce(Result<Reply, Error>) -> T,
    {
        let meta = cmd.meta();
        if meta.heavy || self.tenant.cluster().is_some() {
            return Err((cmd, finish));
        }
        let index = meta.index;
        let engine = self.tenant.engine();
        let started = stretch::start(|| engine.now_us());
        if let Err(e) = self.allows(meta.access) {
            self.tenant
                .metrics
                .command(self.proto, index, self.since(started), Some(&e));
            return Ok(Started::Done(finish(Err(e))));
        }
        let before = DurableMark::before(self.tenant.persistence(), meta.write);
        let outcome = self
            .tenant
            .engine()
            .execute_at(self.client(), cmd, started / 1000);
        let ended = self.tenant.engine().now_us();
        stretch::ended(ended);
        self.tenant.metrics.command(
            self.proto,
            index,
            ended.saturating_sub(started),
            outcome.as_ref().err(),
        );
        let result = match outcome {
            Ok(Outcome::Reply(reply)) => Ok(reply),
            Ok(Outcome::Wait(pending)) => {
                return Ok(Started::Wait(Waiting {
                    pending: Pending::Engine(pending),
                    before,
                    finish,
                }))
            }
            Err(e) => Err(e),
        };
        self.durable.after(self.tenant.persistence(), before);
        Ok(Started::Done(finish(result)))
    }

    /// Microseconds since `started` (read from the engine's clock), for a
    /// command's latency. The engine's clock is the wall clock, read once
    /// per command for both the command and this measure (one read fewer
    /// than a monotonic clock of its own): a step of the clock backwards
    /// counts as no time, one forwards as a slow command, once.
    fn since(&self, started: u64) -> u64 {
        self.tenant.engine().now_us().saturating_sub(started)
    }

    /// [`Caller::start_now`] for a read of one session's value (a
    /// [`Command::GetData`], an [`Command::Item`] without a timeout): the
    /// same permission, count and latency, and the value lent to `lend`
    /// under its shard's lock ([`Engine::read_lent`]) instead of a reply
    /// holding a clone of it. Any other command, or a cluster's tenant's,
    /// comes back with `lend` for `start_now`.
    // As `start_now`: the command comes back whole.
    #[allow(clippy::result_large_err)]
    pub(crate) fn value_now<T, F>(&mut self, cmd: Command, lend: F) -> Result<T, (Command, F)>
    where
        F: FnOnce(Result<Lent<'_>, Error>) -> T,
    {
        let (id, touch) = match &cmd {
            Command::GetData { id, touch } => (id, *touch),
            Command::Item {
                id,
                timeout_ms: None,
            } => (id, false),
            _ => return Err((cmd, lend)),
        };
        if self.tenant.cluster().is_some() {
            return Err((cmd, lend));
        }
        let meta = cmd.meta();
        let (engine, metrics, proto) = (self.tenant.engine(), &self.tenant.metrics, self.proto);
        let started = stretch::start(|| engine.now_us());
        if let Err(e) = self.allows(meta.access) {
            metrics.command(proto, meta.index, self.since(started), Some(&e));
            return Ok(lend(Err(e)));
        }
        let done = engine.read_lent(id, touch, started / 1000, |lent| {
            if let Err(e) = &lent {
                metrics.error(proto, e);
            }
            lend(lent)
        });
        let ended = engine.now_us();
        stretch::ended(ended);
        metrics.command(proto, meta.index, ended.saturating_sub(started), None);
        Ok(done)
    }

    /// A queued command's end: `result` is what the wait came to.
    pub(crate) fn finish_wait<T, F>(
        &mut self,
        waiting: Waiting<F>,
        result: Result<Reply, Error>,
    ) -> T
    where
        F: FnOnce(Result<Reply, Error>) -> T,
    {
        if let Err(e) = &result {
            self.tenant.metrics.error(self.proto, e);
        }
        self.durable
            .after(self.tenant.persistence(), waiting.before);
        (waiting.finish)(result)
    }

    /// A queued command given up at once, for a caller that cannot wait
    /// (an HTTP request).
    pub(crate) async fn give_up<T, F>(&mut self, mut waiting: Waiting<F>) -> T
    where
        F: FnOnce(Result<Reply, Error>) -> T,
    {
        let result = match (&mut waiting.pending, self.tenant.cluster()) {
            (Pending::Engine(p), _) => self.tenant.engine().give_up(p),
            (Pending::Cluster(w), Some(c)) => c.give_up(w).await,
            (Pending::Cluster(w), None) => Err(Error::Locked {
                id: w.id.clone(),
                mode: sessiond_core::LockMode::Write,
                waited_ms: 0,
            }),
        };
        self.finish_wait(waiting, result)
    }

    /// Waits until every write the pending replies acknowledge is as
    /// durable as the `fsync` policy promises.
    pub(crate) async fn durable(&mut self) {
        self.durable.wait(self.tenant.persistence()).await;
    }

    /// Counts an error answered without running a command.
    pub(crate) fn count_error(&self, e: &Error) {
        self.tenant.metrics.error(self.proto, e);
    }
}
