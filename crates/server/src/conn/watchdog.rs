//! A connection's clocks: its timeouts on one lazily moved timer, and the
//! server's stop signal as a connection waits on it ([`Stop`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::shared::StopSignal;

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
        std::future::poll_fn(|cx| self.poll_until(cx, due)).await;
    }

    /// Ready at `due` (never for `None`).
    pub(crate) fn poll_until(&mut self, cx: &mut Context<'_>, due: Option<Instant>) -> Poll<()> {
        let Some(due) = due else {
            return Poll::Pending;
        };
        loop {
            if self.timer.is_elapsed() || self.timer.deadline() > due {
                self.timer.as_mut().reset(due);
            }
            std::task::ready!(self.timer.as_mut().poll(cx));
            if Instant::now() >= due {
                return Poll::Ready(());
            }
        }
    }
}

/// The server's stop signal, as a connection sees it: its slot among the
/// signal's waiters and the waker it left there.
pub(crate) struct Stop {
    signal: Arc<StopSignal>,
    slot: Option<usize>,
    /// The waker in the slot, to tell whether a poll must replace it.
    waker: Option<Waker>,
}

impl Stop {
    pub(crate) fn new(signal: Arc<StopSignal>) -> Self {
        Self {
            signal,
            slot: None,
            waker: None,
        }
    }

    /// Whether the server is stopping.
    pub(crate) fn stopped(&self) -> bool {
        self.signal.fired()
    }

    /// Resolves once the server is stopping; at once if it already is.
    pub(crate) fn wait(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_stopped(cx))
    }

    /// Ready once the server is stopping (as [`Stop::wait`]).
    pub(crate) fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired() {
            return Poll::Ready(());
        }
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let waker = cx.waker().clone();
        self.signal.register(&mut self.slot, waker.clone());
        self.waker = Some(waker);
        // A stop that fired between the first look and the registration
        // found no waker to wake: seen here.
        if self.signal.fired() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            self.signal.unregister(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fire_ends_every_wait_and_later_ones_at_once() {
        let signal = Arc::new(StopSignal::new());
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let mut stop = Stop::new(signal.clone());
                tokio::spawn(async move { stop.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(signal.registered(), 3);
        signal.fire();
        for w in waiting {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("a waiting connection is woken")
                .expect("the task ran");
        }
        let mut late = Stop::new(signal.clone());
        assert!(late.stopped());
        tokio::time::timeout(Duration::from_secs(5), late.wait())
            .await
            .expect("a wait after the stop ends at once");
    }

    #[tokio::test]
    async fn a_connection_that_ends_gives_its_slot_back() {
        let signal = Arc::new(StopSignal::new());
        for _ in 0..3 {
            let mut stop = Stop::new(signal.clone());
            let waited = tokio::time::timeout(Duration::from_millis(10), stop.wait()).await;
            assert!(waited.is_err(), "no stop yet");
        }
        assert_eq!(signal.slots(), 1, "one slot, reused");
        assert_eq!(signal.registered(), 0);
    }

    #[tokio::test]
    async fn a_dropped_server_guard_fires() {
        use crate::shared::FireOnDrop;
        let signal = Arc::new(StopSignal::new());
        drop(FireOnDrop(signal.clone()));
        assert!(Stop::new(signal).stopped());
    }
}
