//! What every door's connection shares: registering with the engine (so a
//! connection's locks are released however it ends), and waiting for a
//! queued lock while still watching the socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sessiond_core::{ClientHandle, Engine, Error, PendingLock, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::Shared;

/// A connection's place in the engine; dropping it releases its locks.
pub(crate) struct Registration {
    engine: Arc<Engine>,
    client: ClientHandle,
    shared: Arc<Shared>,
}

impl Registration {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let engine = shared.engine.clone();
        let client = engine.connect();
        shared.connected.fetch_add(1, Ordering::Relaxed);
        Self {
            engine,
            client,
            shared: shared.clone(),
        }
    }

    pub(crate) fn client(&self) -> &ClientHandle {
        &self.client
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.engine.disconnect(&self.client);
        self.shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits for a queued lock up to its WAIT, while watching the socket: a
/// client that hangs up leaves the queue at once (`None`), as Redis treats a
/// blocked client. Bytes that arrive meanwhile (pipelined requests) are kept
/// in `inbuf`, up to `max_buffer`. Shutdown ends the wait with an answer.
pub(crate) async fn await_lock(
    engine: &Engine,
    mut pending: PendingLock,
    rd: &mut OwnedReadHalf,
    inbuf: &mut BytesMut,
    max_buffer: usize,
    stop: &mut Stop,
) -> std::io::Result<Option<Result<Reply, Error>>> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(pending.wait_ms);
    loop {
        let room = inbuf.len() < max_buffer;
        tokio::select! {
            outcome = &mut pending.wait => {
                return Ok(Some(engine.complete_wait(&pending, outcome)));
            }
            () = tokio::time::sleep_until(deadline) => return Ok(Some(engine.give_up(&pending))),
            () = stop.wait() => return Ok(Some(engine.give_up(&pending))),
            n = rd.read_buf(inbuf), if room => {
                if !matches!(n, Ok(n) if n > 0) {
                    return Ok(None);
                }
            }
        }
    }
}

/// Under `fsync always`, the log record that the replies now pending must
/// wait for before they are sent (group commit: one wait per batch). Only a
/// command that appended a record makes them wait: a write that changed
/// nothing (PHP resending an unchanged session or timeout) answers at once.
#[derive(Default)]
pub(crate) struct DurableMark(Option<u64>);

impl DurableMark {
    /// Before running a command that may write: where the log stands
    /// (`None` unless the policy is `always`).
    pub(crate) fn before(shared: &Shared, may_write: bool) -> Option<u64> {
        match &shared.persist {
            Some(p) if may_write && p.fsync() == crate::persist::Fsync::Always => {
                Some(p.appended())
            }
            _ => None,
        }
    }

    /// After it ran: if the log grew, the pending replies wait for it.
    pub(crate) fn after(&mut self, shared: &Shared, before: Option<u64>) {
        if let (Some(before), Some(p)) = (before, &shared.persist) {
            let now = p.appended();
            if now > before {
                self.0 = Some(now);
            }
        }
    }

    /// Waits until every noted write is durable.
    pub(crate) async fn wait(&mut self, shared: &Shared) {
        if let (Some(seq), Some(p)) = (self.0.take(), &shared.persist) {
            p.wait_durable(seq).await;
        }
    }
}

/// Waits for more bytes from the client. False when the connection is over:
/// the client closed it, or the server is stopping. An error of kind
/// `TimedOut` when the client let a timeout of `dog` pass.
pub(crate) async fn read_more(
    rd: &mut OwnedReadHalf,
    inbuf: &mut BytesMut,
    stop: &mut Stop,
    dog: &mut Watchdog,
) -> std::io::Result<bool> {
    if stop.stopped() {
        return Ok(false);
    }
    let (due, what) = dog.read_deadline(inbuf.len());
    let read = tokio::select! {
        n = rd.read_buf(inbuf) => Ok(n? > 0),
        () = stop.wait() => Ok(false),
        () = dog.until(due) => Err(timed_out(what)),
    };
    dog.len_after_read = inbuf.len();
    read
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timeout: the connection is closed"),
    )
}

/// Writes all of `out`, unless the client leaves it unread past the
/// request timeout (an error of kind `TimedOut`).
pub(crate) async fn write_all(
    wr: &mut OwnedWriteHalf,
    out: &[u8],
    dog: &mut Watchdog,
) -> std::io::Result<()> {
    let due = Some(Instant::now() + dog.timeouts.request);
    tokio::select! {
        r = wr.write_all(out) => r,
        () = dog.until(due) => Err(timed_out("request")),
    }
}

/// How long a connection may wait for its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// With no request under way; `None`: for ever.
    pub(crate) idle: Option<Duration>,
    /// For the rest of a request, or for the client to read its replies.
    pub(crate) request: Duration,
}

/// A connection's [`Timeouts`] on one timer, moved lazily: a busy
/// connection reads the clock on each wait but re-arms the timer only when
/// it fires early or must fire sooner.
pub(crate) struct Watchdog {
    timeouts: Timeouts,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When the partial request at the front of the buffer began arriving.
    partial_since: Option<Instant>,
    /// The buffer's length after the last read: answering requests only
    /// ever takes whole ones off it, so a shorter buffer at the next read
    /// means any partial request there is a new one.
    len_after_read: usize,
}

impl Watchdog {
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            // Far enough never to fire before it is first moved.
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365))),
            partial_since: None,
            len_after_read: 0,
        }
    }

    /// The deadline for the next read, with a buffer holding `buffered`
    /// bytes of a partial request, and which timeout it is.
    fn read_deadline(&mut self, buffered: usize) -> (Option<Instant>, &'static str) {
        let now = Instant::now();
        if buffered == 0 {
            self.partial_since = None;
            return (self.timeouts.idle.map(|t| now + t), "idle");
        }
        if buffered < self.len_after_read {
            self.partial_since = None;
        }
        let since = *self.partial_since.get_or_insert(now);
        (Some(since + self.timeouts.request), "request")
    }

    /// Resolves at `due` (never for `None`).
    async fn until(&mut self, due: Option<Instant>) {
        let Some(due) = due else {
            return std::future::pending().await;
        };
        loop {
            if self.timer.is_elapsed() || self.timer.deadline() > due {
                self.timer.as_mut().reset(due);
            }
            self.timer.as_mut().await;
            if Instant::now() >= due {
                return;
            }
        }
    }
}

/// The server's stop signal, as a connection sees it: one long-lived
/// future, so waiting on it between reads costs no new registration with
/// the channel each time.
pub(crate) struct Stop {
    fired: bool,
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Stop {
    pub(crate) fn new(mut rx: watch::Receiver<bool>) -> Self {
        let fired = *rx.borrow_and_update();
        Self {
            fired,
            // A dropped sender counts as a stop, as the server is gone.
            signal: Box::pin(async move {
                let _ = rx.wait_for(|stopping| *stopping).await;
            }),
        }
    }

    /// Whether the server is stopping (as far as seen so far).
    pub(crate) fn stopped(&self) -> bool {
        self.fired
    }

    /// Resolves once the server is stopping; at once if it already is.
    pub(crate) async fn wait(&mut self) {
        if !self.fired {
            self.signal.as_mut().await;
            self.fired = true;
        }
    }
}
