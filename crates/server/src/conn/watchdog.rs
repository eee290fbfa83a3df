//! A connection's clocks: its timeouts on one lazily moved timer, and the
//! server's stop signal as one long-lived future.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::config::Timeouts;

pub(crate) fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timeout: the connection is closed"),
    )
}

/// A connection's [`Timeouts`] on one timer, moved lazily: a busy
/// connection reads the clock on each wait but re-arms the timer only when
/// it fires early or must fire sooner.
pub(crate) struct Watchdog {
    pub(crate) timeouts: Timeouts,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When the partial request at the front of the buffer began arriving.
    partial_since: Option<Instant>,
    /// The buffer's length after the last read: answering requests only
    /// ever takes whole ones off it, so a shorter buffer at the next read
    /// means any partial request there is a new one.
    pub(crate) len_after_read: usize,
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
    pub(crate) fn read_deadline(&mut self, buffered: usize) -> (Option<Instant>, &'static str) {
        if buffered == 0 {
            self.partial_since = None;
            // No idle timeout (the default): no clock to read.
            return (self.timeouts.idle.map(|t| Instant::now() + t), "idle");
        }
        if buffered < self.len_after_read {
            self.partial_since = None;
        }
        let since = *self.partial_since.get_or_insert_with(Instant::now);
        (Some(since + self.timeouts.request), "request")
    }

    /// Resolves at `due` (never for `None`).
    pub(crate) async fn until(&mut self, due: Option<Instant>) {
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
/// future of the server's [`Notify`] (registered when made, so no
/// notification is missed), cheap to poll on every wait, and the stop
/// flag, looked at without waiting.
pub(crate) struct Stop {
    fired: bool,
    signal: Pin<Box<OwnedNotified>>,
    peek: watch::Receiver<bool>,
}

impl Stop {
    pub(crate) fn new(rx: watch::Receiver<bool>, stopping: Arc<Notify>) -> Self {
        let mut signal = Box::pin(stopping.notified_owned());
        signal.as_mut().enable();
        let mut stop = Self {
            fired: false,
            signal,
            peek: rx,
        };
        stop.stopped();
        stop
    }

    /// Whether the server is stopping (a dropped sender counts: the
    /// server is gone).
    pub(crate) fn stopped(&mut self) -> bool {
        self.fired = self.fired || *self.peek.borrow() || self.peek.has_changed().is_err();
        self.fired
    }

    /// Resolves once the server is stopping; at once if it already is.
    pub(crate) async fn wait(&mut self) {
        if !self.stopped() {
            self.signal.as_mut().await;
            self.fired = true;
        }
    }
}
