//! What every door's connection shares ([`Link`]): registering with the
//! engine (so a connection's locks are released however it ends), reading
//! and writing under the stop signal and the connection timeouts, group
//! commit of replies under `fsync always`, and waiting for a queued lock
//! while still watching the socket.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sessiond_core::{ClientHandle, Command, Engine, Error, Outcome, PendingLock, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::durable::DurableMark;
use super::watchdog::{timed_out, Stop, Watchdog};
use crate::access::auth::{Login, Refused, Role};
use crate::conn::stream::{ReadSide, Stream, WriteSide};
use crate::door::Door;
use crate::metrics::{DoorCounters, Proto};
use crate::shared::Shared;
use crate::tenant::Tenant;

/// A connection's place in its tenant's engine; dropping it releases its
/// locks.
struct Registration {
    engine: Arc<Engine>,
    client: ClientHandle,
    shared: Arc<Shared>,
}

impl Registration {
    fn new(shared: &Arc<Shared>, tenant: &Tenant) -> Self {
        let engine = tenant.engine().clone();
        let client = engine.connect();
        shared.connected.fetch_add(1, Ordering::Relaxed);
        Self {
            engine,
            client,
            shared: shared.clone(),
        }
    }

    fn client(&self) -> &ClientHandle {
        &self.client
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.engine.disconnect(&self.client);
        self.shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every door's connection holds: its place in the engine, the two
/// halves of the socket, the buffers, the stop signal, the timeouts and
/// the durability mark of the replies pending.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
    /// The tenant whose sessions the connection works on.
    tenant: Arc<Tenant>,
    /// What the connection may do; None until it logs in.
    role: Option<Role>,
    /// The client's address (failed logins are counted per address).
    peer: IpAddr,
    registration: Registration,
    rd: ReadSide,
    wr: WriteSide,
    /// Bytes read and not yet answered.
    pub(crate) inbuf: BytesMut,
    /// Replies not yet written.
    pub(crate) out: BytesMut,
    stop: Stop,
    dog: Watchdog,
    /// Under `fsync always`: the log record the pending replies wait for.
    durable: DurableMark,
    /// The listener the connection came in by.
    door: Door,
    /// The protocol of the request being answered (the RESP listener
    /// speaks two), for the per-door command counts.
    pub(crate) proto: Proto,
}

impl Link {
    /// Registers a new connection; `capacity` sizes its buffers.
    pub(crate) fn new(
        stream: Stream,
        shared: Arc<Shared>,
        stop: watch::Receiver<bool>,
        capacity: usize,
        door: Door,
    ) -> Self {
        let peer = stream.peer();
        let (rd, wr) = stream.split();
        let tenant = shared.tenants.default_tenant().clone();
        // Without users every connection may do everything, in the default
        // tenant; with users, nothing until it logs in.
        let role = (!shared.auth.required()).then_some(Role::Admin);
        Self {
            registration: Registration::new(&shared, &tenant),
            tenant,
            role,
            peer,
            dog: Watchdog::new(shared.timeouts),
            shared,
            rd,
            wr,
            inbuf: BytesMut::with_capacity(capacity),
            out: BytesMut::with_capacity(capacity),
            stop: Stop::new(stop),
            durable: DurableMark::default(),
            door,
            proto: Proto::first(door),
        }
    }

    /// This connection as the engine knows it.
    pub(crate) fn client(&self) -> &ClientHandle {
        self.registration.client()
    }

    /// The engine of the connection's tenant.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        self.tenant.engine()
    }

    /// The connection's tenant.
    pub(crate) fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Whether the connection may run commands (it logged in, or the
    /// server has no users).
    pub(crate) fn authenticated(&self) -> bool {
        self.role.is_some()
    }

    /// Refuses `cmd` unless the connection's role allows it.
    pub(crate) fn permit(&self, cmd: &Command) -> Result<(), Error> {
        let Some(role) = self.role else {
            return Err(Error::NotAuthenticated);
        };
        role.check(cmd.access())
    }

    /// Runs `cmd` on the tenant's engine, if the role allows it; a lock
    /// request may come back as a wait.
    pub(crate) fn execute(&self, cmd: Command) -> Result<Outcome, Error> {
        self.counted(cmd, |engine, client, cmd| engine.execute(client, cmd))
    }

    /// Runs `cmd` once, never waiting, if the role allows it.
    pub(crate) fn execute_now(&self, cmd: Command) -> Result<Reply, Error> {
        self.counted(cmd, |engine, client, cmd| engine.execute_now(client, cmd))
    }

    /// Runs a cross-session command ([`Command::is_heavy`]), which never
    /// waits, off the request workers if the role allows it (see
    /// `offload.rs`), and `finish` on its result there too; counts it.
    pub(crate) async fn execute_offloaded<T: Send + 'static>(
        &mut self,
        cmd: Command,
        finish: impl FnOnce(Result<Reply, Error>) -> T + Send + 'static,
    ) -> T {
        let index = cmd.index();
        let started = std::time::Instant::now();
        if let Err(e) = self.permit(&cmd) {
            self.tenant
                .metrics
                .command(self.proto, index, started.elapsed(), Some(&e));
            return finish(Err(e));
        }
        let (done, error) = self
            .tenant
            .offload
            .run_then(self.engine(), self.client(), cmd, move |r| {
                let error = r.as_ref().err().cloned();
                (finish(r), error)
            })
            .await;
        self.tenant
            .metrics
            .command(self.proto, index, started.elapsed(), error.as_ref());
        done
    }

    /// Runs `cmd` with `run` if the role allows it, counting it, its time
    /// and its error in the tenant's metrics.
    fn counted<T>(
        &self,
        cmd: Command,
        run: impl FnOnce(&Engine, &ClientHandle, Command) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let index = cmd.index();
        let started = std::time::Instant::now();
        let result = self
            .permit(&cmd)
            .and_then(|()| run(self.engine(), self.client(), cmd));
        self.tenant
            .metrics
            .command(self.proto, index, started.elapsed(), result.as_ref().err());
        result
    }

    /// Counts an error answered without running a command.
    pub(crate) fn count_error(&self, e: &Error) {
        self.tenant.metrics.error(self.proto, e);
    }

    fn counters(&self) -> &DoorCounters {
        &self.shared.doors[self.door as usize]
    }

    /// Logs in as `user` (None: the default user). On success the
    /// connection works in the user's tenant with the user's role; moving
    /// to another tenant gives up whatever it held in the old one.
    pub(crate) async fn login(
        &mut self,
        user: Option<&[u8]>,
        password: &[u8],
    ) -> Result<Login, Refused> {
        let login = self.shared.auth.login(self.peer, user, password).await?;
        let Some(tenant) = self.shared.tenants.get(&login.tenant).cloned() else {
            // Config validation opens every user's tenant.
            return Err(Refused::Wrong);
        };
        if !Arc::ptr_eq(&tenant, &self.tenant) {
            // Replies pending on the old tenant's log wait for it first.
            self.durable.wait(self.tenant.persistence()).await;
            self.registration = Registration::new(&self.shared, &tenant);
            self.tenant = tenant;
        }
        self.role = Some(login.role);
        tracing::debug!(user = %login.user, tenant = %login.tenant, role = login.role.name(), "logged in");
        Ok(login)
    }

    /// Before running a command that may write: where the tenant's log
    /// stands (see [`DurableMark`]).
    pub(crate) fn durable_before(&self, may_write: bool) -> Option<u64> {
        DurableMark::before(self.tenant.persistence(), may_write)
    }

    /// After it ran: the pending replies wait for what it logged.
    pub(crate) fn durable_after(&mut self, before: Option<u64>) {
        self.durable.after(self.tenant.persistence(), before);
    }

    /// Waits for more bytes from the client. False when the connection is
    /// over: the client closed it, or the server is stopping. An error of
    /// kind `TimedOut` when the client let a timeout pass.
    pub(crate) async fn read_more(&mut self) -> std::io::Result<bool> {
        if self.stop.stopped() {
            return Ok(false);
        }
        let (due, what) = self.dog.read_deadline(self.inbuf.len());
        let read = tokio::select! {
            n = self.rd.read_buf(&mut self.inbuf) => {
                let n = n?;
                self.counters().bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n > 0)
            }
            () = self.stop.wait() => Ok(false),
            () = self.dog.until(due) => Err(timed_out(what)),
        };
        self.dog.len_after_read = self.inbuf.len();
        read
    }

    /// Writes the pending replies, once (under `fsync always`) the writes
    /// they acknowledge are on disk (group commit: one wait per batch).
    /// An error of kind `TimedOut` if the client leaves them unread past
    /// the request timeout.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.durable.wait(self.tenant.persistence()).await;
        if self.out.is_empty() {
            return Ok(());
        }
        let due = Instant::now() + self.dog.timeouts.request;
        let max = self.dog.timeouts.max_output;
        let mut written = 0;
        while written < self.out.len() {
            let pending = self.out.len() - written;
            // A client that stopped reading with more than `max_output`
            // unsent is cut off after a short grace, not at the request
            // timeout: it must not hold that memory for long.
            let over = pending > max;
            let stall = if over {
                due.min(Instant::now() + OUTPUT_GRACE)
            } else {
                due
            };
            let wr = &mut self.wr;
            let out = &self.out[written..];
            tokio::select! {
                n = wr.write(out) => match n? {
                    0 => return Err(std::io::ErrorKind::WriteZero.into()),
                    n => written += n,
                },
                () = self.dog.until(Some(stall)) => {
                    if over {
                        self.counters().output_cutoffs.fetch_add(1, Ordering::Relaxed);
                        return Err(std::io::Error::other(format!(
                            "the client is not reading and {pending} bytes of replies are pending, over limits.max_output_buffer"
                        )));
                    }
                    return Err(timed_out("request"));
                }
            }
        }
        // The flush matters under TLS only (records wait in the session);
        // on plain TCP it does nothing.
        tokio::select! {
            r = self.wr.flush() => r?,
            () = self.dog.until(Some(due)) => return Err(timed_out("request")),
        }
        self.counters()
            .bytes_out
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        self.out.clear();
        Ok(())
    }

    /// Waits for a queued lock up to its WAIT, while watching the socket:
    /// a client that hangs up leaves the queue at once (`None`), as Redis
    /// treats a blocked client. Bytes that arrive meanwhile (pipelined
    /// requests) are kept, up to `max_buffer`. Shutdown ends the wait with
    /// an answer.
    pub(crate) async fn await_lock(
        &mut self,
        mut pending: PendingLock,
        max_buffer: usize,
    ) -> std::io::Result<Option<Result<Reply, Error>>> {
        let engine = self.tenant.engine().clone();
        let tenant = self.tenant.clone();
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_millis(pending.wait_ms);
        tenant.metrics.wait_started(pending.id.as_bytes());
        let ended = loop {
            let room = self.inbuf.len() < max_buffer;
            tokio::select! {
                outcome = &mut pending.wait => {
                    break Some(engine.complete_wait(&pending, outcome));
                }
                () = tokio::time::sleep_until(deadline) => break Some(engine.give_up(&pending)),
                () = self.stop.wait() => break Some(engine.give_up(&pending)),
                n = self.rd.read_buf(&mut self.inbuf), if room => {
                    match n {
                        Ok(n) if n > 0 => {
                            self.counters().bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        _ => break None,
                    }
                }
            }
        };
        let granted = matches!(ended, Some(Ok(_)));
        tenant.metrics.wait_ended(started.elapsed(), granted);
        if let Some(Err(e)) = &ended {
            tenant.metrics.error(self.proto, e);
        }
        Ok(ended)
    }
}

/// How long a client with more than `max_output` unsent may leave the
/// socket full before it is cut off (a reading client drains it at once).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
