//! One clock reading between two commands of a pipelined batch.
//!
//! A command's time is read from the engine's clock when it starts (the
//! engine runs at that time) and again when it ends (its latency). Within
//! one poll of a connection's task nothing waits, so the end of one
//! command answered at once is as good a start for the next as a fresh
//! reading, older only by the parsing and reply-writing between them (a
//! few microseconds): a batch of 16 pipelined GETs reads the clock 17
//! times, not 32. The reading is kept only for the length of the poll
//! ([`in_stretch`] wraps a connection's task): any wait ends the poll,
//! so a kept time is never older than the synchronous work of one turn.
//! Outside a wrapped task (the HTTP API) every command reads the clock
//! twice.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// `None` outside a stretch; in one, the engine-clock time (µs) at
    /// which the last command answered at once ended, 0 before the first.
    static LAST_END: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `fut` (a connection's task, pinned where it lives), each of its
/// polls a stretch. A plain future over the caller's pinned task rather
/// than an `async fn` holding it: that would keep a second copy of the
/// task's state beside the one it polls (and, unoptimised, a frame as
/// large on the stack).
pub(crate) fn in_stretch<F: Future>(fut: Pin<&mut F>) -> Stretch<'_, F> {
    Stretch { fut }
}

/// [`in_stretch`]'s future.
pub(crate) struct Stretch<'a, F> {
    fut: Pin<&'a mut F>,
}

impl<F: Future> Future for Stretch<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _end = Reset;
        LAST_END.set(Some(0));
        self.fut.as_mut().poll(cx)
    }
}

/// Ends the stretch however its poll ends (an unwinding panic too), so a
/// time is never carried into another task's poll on this thread.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        LAST_END.set(None);
    }
}

/// The start of a command: the end of the last one in this stretch, else
/// `read()`.
pub(crate) fn start(read: impl FnOnce() -> u64) -> u64 {
    match LAST_END.get() {
        Some(t) if t != 0 => t,
        _ => read(),
    }
}

/// A command answered at once ended at `t`: the next one in this stretch
/// may start there.
pub(crate) fn ended(t: u64) {
    if LAST_END.get().is_some() {
        LAST_END.set(Some(t));
    }
}

/// Work that may take longer than a few microseconds without a wait (a
/// cross-session command, a function run in place) happens: the next
/// command reads the clock afresh.
pub(crate) fn broken() {
    if LAST_END.get().is_some() {
        LAST_END.set(Some(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_time_is_kept_within_a_poll_and_dropped_at_its_end() {
        let mut reads = 0;
        let mut read = || {
            reads += 1;
            100 * reads
        };
        // Outside a stretch every start reads, and an end is not kept.
        assert_eq!(start(&mut read), 100);
        ended(150);
        assert_eq!(start(&mut read), 200);
        let starts = {
            let task = std::pin::pin!(async {
                let first = start(&mut read);
                ended(310);
                let second = start(&mut read);
                broken();
                let third = start(&mut read);
                ended(420);
                // A wait: the next poll starts without the time.
                tokio::task::yield_now().await;
                let fourth = start(&mut read);
                ended(555);
                (first, second, third, fourth)
            });
            in_stretch(task).await
        };
        assert_eq!(starts, (300, 310, 400, 500));
        // After the task's poll the last end is gone.
        assert_eq!(start(&mut read), 600);
    }
}
