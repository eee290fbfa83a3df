//! A socket door's connection ([`Link`]): its [`Caller`] (tenant, role,
//! place in the engine — so its locks are released however it ends — and
//! durability mark), reading and writing under the stop signal and the
//! connection timeouts, writing replies once what they acknowledge is
//! durable (group commit under `fsync always`), and [`Link::run`]: the
//! request path of `conn::request` plus the wait for a queued lock while
//! still watching the socket.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use sessiond_core::{ClientHandle, Command, Engine, Error, Lent, PendingLock, Reply};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::request::{Caller, Pending, Started, Waiting};
use super::watchdog::{timed_out, Stop, Watchdog};
use crate::access::auth::{Login, Refused, Role};
use crate::backend::cluster::ClusterWait;
use crate::conn::stream::Stream;
use crate::door::Door;
use crate::metrics::{DoorCounters, Proto};
use crate::shared::Shared;
use crate::tenant::Tenant;

/// What every socket door's connection holds: the caller (tenant, role,
/// place in the engine, durability mark), the two halves of the socket,
/// the buffers, the stop signal and the timeouts.
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
    caller: Caller,
    /// The client's address (failed logins are counted per address).
    peer: IpAddr,
    io: Stream,
    /// Bytes read and not yet answered.
    pub(crate) inbuf: BytesMut,
    /// Replies not yet written.
    pub(crate) out: BytesMut,
    stop: Stop,
    dog: Watchdog,
    /// The listener the connection came in by.
    door: Door,
    /// How much input a connection waiting for a lock keeps reading
    /// (pipelined requests), at most.
    max_buffer_while_waiting: usize,
    /// How much room a read is given (at least half of it): the buffers'
    /// first size, doubled (up to [`MAX_READ_ROOM`]) each time a read
    /// fills its room — a client that pipelines more than that gets its
    /// batch in one read.
    read_room: usize,
    /// Requests answered into `out` since the last write began.
    pub(crate) answered: u32,
}

impl Link {
    /// Registers a new connection; `capacity` sizes its buffers.
    pub(crate) fn new(stream: Stream, shared: Arc<Shared>, capacity: usize, door: Door) -> Self {
        let peer = stream.peer();
        let tenant = shared.tenants.default_tenant().clone();
        // Without users every connection may do everything, in the default
        // tenant; with users, nothing until it logs in.
        let role = (!shared.auth.required()).then_some(Role::Admin);
        let max_buffer_while_waiting = match door {
            Door::Line => shared.limits.max_inline_len,
            Door::Resp | Door::Memcache | Door::Http => shared.limits.max_request_len,
        };
        Self {
            caller: Caller::new(tenant, role, Proto::first(door), Some(shared.clone())),
            peer,
            dog: Watchdog::new(shared.timeouts),
            stop: Stop::new(shared.stopping.clone()),
            shared,
            io: stream,
            inbuf: BytesMut::with_capacity(capacity),
            out: BytesMut::with_capacity(capacity),
            door,
            max_buffer_while_waiting,
            read_room: capacity.min(MAX_READ_ROOM),
            answered: 0,
        }
    }

    /// The listener the connection came in by.
    pub(crate) fn door(&self) -> Door {
        self.door
    }

    /// This connection as the engine knows it.
    pub(crate) fn client(&self) -> &ClientHandle {
        self.caller.client()
    }

    /// The engine of the connection's tenant.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        self.caller.tenant().engine()
    }

    /// The connection's tenant.
    pub(crate) fn tenant(&self) -> &Tenant {
        self.caller.tenant()
    }

    /// Whether the connection may run commands (it logged in, or the
    /// server has no users).
    pub(crate) fn authenticated(&self) -> bool {
        self.caller.authenticated()
    }

    /// Refuses `cmd` unless the connection's role allows it.
    pub(crate) fn permit(&self, cmd: &Command) -> Result<(), Error> {
        self.caller.permit(cmd)
    }

    /// Refuses unless the connection's role allows `access` (for requests
    /// that are not engine commands).
    pub(crate) fn allows(&self, access: sessiond_core::Access) -> Result<(), Error> {
        self.caller.allows(access)
    }

    /// The protocol the next commands are counted under (the RESP
    /// listener speaks native and Redis).
    pub(crate) fn set_proto(&mut self, proto: Proto) {
        self.caller.proto = proto;
    }

    /// Runs `cmd` on the one request path ([`Caller::start`]); a lock
    /// request the engine queues is waited for here, after the replies
    /// already pending are written, while the socket is watched. The
    /// reply or the refusal; an error when the client is gone (it hung up
    /// while waiting, or the socket failed), and the connection is over.
    pub(crate) async fn run(&mut self, cmd: Command) -> std::io::Result<Result<Reply, Error>> {
        match self.run_now(cmd) {
            Ok(done) => Ok(done),
            Err(later) => self.finish_later(later).await,
        }
    }

    /// Finishes what [`Link::run_now`] left: the reply or the refusal.
    pub(crate) async fn finish_later(
        &mut self,
        later: Later,
    ) -> std::io::Result<Result<Reply, Error>> {
        match later {
            Later::Run(cmd) => self.run_then(cmd, identity).await,
            Later::Wait(waiting) => self.wait_then(waiting).await,
        }
    }

    /// [`Link::run`] without waiting, for the door's fast path: the
    /// result when the command was answered at once (see
    /// [`Caller::start_now`]), else what is left to do, for
    /// [`Link::run_later`].
    // What is left comes back by value: boxing it would allocate for
    // every command that takes the long way.
    #[allow(clippy::result_large_err)]
    pub(crate) fn run_now(&mut self, cmd: Command) -> Result<Result<Reply, Error>, Later> {
        let finish: Finish = identity;
        match self.caller.start_now(cmd, finish) {
            Ok(Started::Done(done)) => Ok(done),
            Ok(Started::Wait(waiting)) => Err(Later::Wait(waiting)),
            Err((cmd, _)) => Err(Later::Run(cmd)),
        }
    }

    /// A read of one session's value answered at once, `write` putting
    /// it (lent by [`Caller::value_now`]) into the pending replies; any
    /// other command, or one that cannot be answered so, comes back for
    /// [`Link::run_now`].
    #[allow(clippy::result_large_err)]
    pub(crate) fn value_now<T>(
        &mut self,
        cmd: Command,
        write: impl FnOnce(Result<Lent<'_>, Error>, &mut BytesMut) -> T,
    ) -> Result<T, Command> {
        let out = &mut self.out;
        self.caller
            .value_now(cmd, |lent| write(lent, out))
            .map_err(|(cmd, _)| cmd)
    }

    /// Finishes what [`Link::run_now`] left, encoding the result into the
    /// pending replies by `encode` (as [`Link::run_into`]).
    pub(crate) async fn run_later<E>(&mut self, later: Later, encode: E) -> std::io::Result<()>
    where
        E: FnOnce(Result<Reply, Error>, &mut BytesMut) + Send + 'static,
    {
        match later {
            Later::Run(cmd) => self.run_into(cmd, encode).await,
            Later::Wait(waiting) => {
                let r = self.wait_then(waiting).await?;
                encode(r, &mut self.out);
                Ok(())
            }
        }
    }

    /// [`Link::run`], with the result encoded into the pending replies by
    /// `encode`: for a cross-session command, on the blocking pool, where
    /// the command ran (see [`Caller::start`]); else in place.
    pub(crate) async fn run_into<E>(&mut self, cmd: Command, encode: E) -> std::io::Result<()>
    where
        E: FnOnce(Result<Reply, Error>, &mut BytesMut) + Send + 'static,
    {
        if cmd.is_heavy() {
            let out = self
                .run_then(cmd, move |r| {
                    let mut out = BytesMut::new();
                    encode(r, &mut out);
                    out
                })
                .await?;
            self.out.extend_from_slice(&out);
        } else {
            let r = self.run(cmd).await?;
            encode(r, &mut self.out);
        }
        Ok(())
    }

    /// [`Link::run`], then `finish` on the result (for a cross-session
    /// command, on the blocking pool with it: see [`Caller::start`]).
    pub(crate) async fn run_then<T, F>(&mut self, cmd: Command, finish: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Result<Reply, Error>) -> T + Send + 'static,
    {
        match self.caller.start(cmd, finish).await {
            Started::Done(done) => Ok(done),
            Started::Wait(waiting) => self.wait_then(waiting).await,
        }
    }

    /// Waits for a queued lock, then finishes the command with what the
    /// wait came to. A connection that ends here (the client hung up, the
    /// socket failed) leaves the queue as it leaves the engine.
    async fn wait_then<T, F>(&mut self, mut waiting: Waiting<F>) -> std::io::Result<T>
    where
        F: FnOnce(Result<Reply, Error>) -> T,
    {
        self.flush().await?;
        let ended = self.await_lock(&mut waiting.pending).await?;
        Ok(self.caller.finish_wait(waiting, ended))
    }

    /// Counts an error answered without running a command.
    pub(crate) fn count_error(&self, e: &Error) {
        self.caller.count_error(e);
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
        self.caller.switch(tenant, login.role).await;
        tracing::debug!(user = %login.user, tenant = %login.tenant, role = login.role.name(), "logged in");
        Ok(login)
    }

    /// Waits for more bytes from the client. False when the connection is
    /// over: the client closed it, or the server is stopping. An error of
    /// kind `TimedOut` when the client let a timeout pass.
    pub(crate) async fn read_more(&mut self) -> std::io::Result<bool> {
        if self.stop.stopped() {
            return Ok(false);
        }
        let room = self.make_room();
        let (due, what) = self.dog.read_deadline(self.inbuf.len());
        // The read first: a stop is seen by `stopped` above at the next
        // read however busy the client. (By hand, not `select!`: this runs
        // twice per request, once to wait and once to read.)
        let (io, inbuf, stop, dog) = (&mut self.io, &mut self.inbuf, &mut self.stop, &mut self.dog);
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(n) = io.poll_read_buf(cx, inbuf) {
                return Poll::Ready(n.map(Some));
            }
            if stop.poll_stopped(cx).is_ready() {
                return Poll::Ready(Ok(None));
            }
            match dog.poll_until(cx, due) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out(what))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match read? {
            Some(n) => Ok(self.got(n, room)),
            None => Ok(false),
        }
    }

    /// Makes the read buffer's spare room at least `read_room` once it is
    /// down to half of that (taking back the space of answered requests,
    /// or growing; not at every read, which would move the buffer's start
    /// for each small request): the room.
    fn make_room(&mut self) -> usize {
        if self.inbuf.capacity() - self.inbuf.len() < self.read_room / 2 {
            self.inbuf.reserve(self.read_room);
        }
        self.inbuf.capacity() - self.inbuf.len()
    }

    /// Counts `n` bytes read into `room`: true if there were any (none is
    /// the end of the stream). A read that filled its room gives the next
    /// one more.
    fn got(&mut self, n: usize, room: usize) -> bool {
        if n == room {
            self.read_room = (self.read_room * 2).min(MAX_READ_ROOM);
        }
        self.dog.len_after_read = self.inbuf.len();
        self.counters()
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        n > 0
    }

    /// Reads what the client has already sent, without waiting: true if
    /// bytes came. For a request the read buffer's size cut in two, whose
    /// rest is most likely here already: reading it before writing sends
    /// a pipelined batch's replies in one write instead of two.
    pub(crate) async fn read_now(&mut self) -> bool {
        if self.stop.stopped() {
            return false;
        }
        let room = self.make_room();
        match now_or_never(self.io.read_buf(&mut self.inbuf)).await {
            Some(Ok(n)) if n > 0 => self.got(n, room),
            // Nothing yet, the end, or an error: the next `read_more`
            // waits for it or sees it.
            _ => false,
        }
    }

    /// Writes the pending replies, once (under `fsync always`) the writes
    /// they acknowledge are on disk (group commit: one wait per batch).
    /// An error of kind `TimedOut` if the client leaves them unread past
    /// the request timeout.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.answered = 0;
        self.caller.durable().await;
        if self.out.is_empty() {
            return Ok(());
        }
        // Most replies go out in one write that completes at once: tried
        // first, with no future, no clock read and no timer.
        let mut written = match self.io.write_now(&self.out) {
            Some(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Some(n) => n?,
            None => 0,
        };
        // The request timeout runs from the first wait, if any.
        let request = self.dog.timeouts.request;
        let mut due = None;
        let mut due_at = move || *due.get_or_insert_with(|| Instant::now() + request);
        let max = self.dog.timeouts.max_output;
        while written < self.out.len() {
            let due = due_at();
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
            let io = &mut self.io;
            let out = &self.out[written..];
            tokio::select! {
                biased;
                n = io.write(out) => match n? {
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
        // Under TLS, records wait in the session until flushed.
        if self.io.buffers_writes() {
            match now_or_never(self.io.flush()).await {
                Some(r) => r?,
                None => {
                    let due = due_at();
                    tokio::select! {
                        biased;
                        r = self.io.flush() => r?,
                        () = self.dog.until(Some(due)) => return Err(timed_out("request")),
                    }
                }
            }
        }

        self.counters()
            .bytes_out
            .fetch_add(self.out.len() as u64, Ordering::Relaxed);
        self.out.clear();
        Ok(())
    }

    /// Waits for a queued lock up to its WAIT, while watching the socket:
    /// a client that hangs up leaves the queue at once (an error, as Redis
    /// treats a blocked client). Bytes that arrive meanwhile (pipelined
    /// requests) are kept, up to the door's limit. Shutdown ends the wait
    /// with an answer.
    async fn await_lock(&mut self, pending: &mut Pending) -> std::io::Result<Result<Reply, Error>> {
        let tenant = self.caller.tenant().clone();
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_millis(pending.wait_ms());
        tenant.metrics.wait_started(pending.id().as_bytes());
        let ended = match pending {
            Pending::Engine(p) => self.await_engine_lock(&tenant, p, deadline).await,
            // On the heap: unoptimised, its `select!` over the link's
            // reads and the cluster's wait is large, and it would sit in
            // every connection's task.
            Pending::Cluster(w) => Box::pin(self.await_cluster_lock(&tenant, w)).await,
        };
        tenant
            .metrics
            .wait_ended(started.elapsed(), matches!(ended, Some(Ok(_))));
        ended.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the client hung up while waiting for a lock",
            )
        })
    }

    /// Whether a read while waiting for a lock kept the connection: bytes
    /// that arrive (pipelined requests) are kept; None when the client hung
    /// up or the socket failed.
    fn kept_reading(&self, n: std::io::Result<usize>) -> Option<()> {
        match n {
            Ok(n) if n > 0 => {
                self.counters()
                    .bytes_in
                    .fetch_add(n as u64, Ordering::Relaxed);
                Some(())
            }
            _ => None,
        }
    }

    async fn await_engine_lock(
        &mut self,
        tenant: &Tenant,
        pending: &mut PendingLock,
        deadline: Instant,
    ) -> Option<Result<Reply, Error>> {
        let engine = tenant.engine();
        loop {
            let room = self.inbuf.len() < self.max_buffer_while_waiting;
            tokio::select! {
                outcome = &mut pending.wait => {
                    return Some(engine.complete_wait(pending, outcome));
                }
                () = tokio::time::sleep_until(deadline) => return Some(engine.give_up(pending)),
                () = self.stop.wait() => return Some(engine.give_up(pending)),
                n = self.io.read_buf(&mut self.inbuf), if room => self.kept_reading(n)?,
            }
        }
    }

    /// A cluster's queued request: its node waits (woken by the releasing
    /// node, or looking at the row now and then) up to its WAIT.
    async fn await_cluster_lock(
        &mut self,
        tenant: &Tenant,
        wait: &mut ClusterWait,
    ) -> Option<Result<Reply, Error>> {
        let cluster = tenant.cluster()?.clone();
        loop {
            let room = self.inbuf.len() < self.max_buffer_while_waiting;
            tokio::select! {
                outcome = cluster.wait(wait) => return Some(outcome),
                () = self.stop.wait() => return Some(cluster.give_up(wait).await),
                n = self.io.read_buf(&mut self.inbuf), if room => {
                    if self.kept_reading(n).is_none() {
                        cluster.abandon(wait).await;
                        return None;
                    }
                }
            }
        }
    }
}

/// `fut`'s output if it is ready at its first poll, else None (and `fut`
/// is dropped: only for futures that do nothing until they are ready, as a
/// socket's write and flush).
async fn now_or_never<F: std::future::Future>(fut: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = std::future::ready(()) => None,
    }
}

/// The most room a read is given (see `Link::read_room`): a client's
/// batch of up to this much is read at once.
const MAX_READ_ROOM: usize = 64 * 1024;

/// How long a client with more than `max_output` unsent may leave the
/// socket full before it is cut off (a reading client drains it at once).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// What [`Link::run_now`] could not answer at once.
pub(crate) enum Later {
    /// A cross-session command, or a cluster's: run it the long way.
    Run(Command),
    /// Queued for a lock.
    Wait(Waiting<Finish>),
}

/// A queued command's finish, for [`Later`]: the result as it is.
type Finish = fn(Result<Reply, Error>) -> Result<Reply, Error>;

fn identity(r: Result<Reply, Error>) -> Result<Reply, Error> {
    r
}
