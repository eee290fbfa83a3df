//! The protocols a client can speak, each over a [`crate::conn::link::Link`]
//! (HTTP over hyper): the RESP listener's native and Redis commands
//! (`resp`, with `info` for INFO), memcached's text and binary protocols
//! (`memcache`), HTTP_SessionServer's line protocol (`line`), and HTTP
//! (`http`: probes, metrics, the JSON API and the dashboard). A door turns
//! bytes into engine commands and replies back into bytes; it never runs a
//! command but through `Link::run`.

pub(crate) mod http;
pub(crate) mod info;
pub(crate) mod line;
pub(crate) mod memcache;
pub(crate) mod resp;

use crate::conn::link::Link;
use crate::conn::stretch::in_stretch;

/// Replies are written once this much is pending, even mid-pipeline.
pub(crate) const FLUSH_AT: usize = 64 * 1024;

/// What a door's answering leaves its connection to do.
pub(crate) enum Next {
    /// Read more requests.
    Continue,
    /// Write what is pending, then close (`QUIT`, a stream that cannot
    /// be trusted past a framing error).
    Close,
}

/// A protocol spoken over a [`Link`].
pub(crate) trait SocketDoor {
    fn link(&mut self) -> &mut Link;

    /// Answers every whole request in the link's input buffer, appending
    /// the replies to its output (and writing them as it goes past
    /// [`FLUSH_AT`]); each command through `Link::run`.
    async fn answer_buffered(&mut self) -> std::io::Result<Next>;
}

/// The one read → answer → write loop of every socket door: pipelined
/// requests are answered in order and their replies written in one batch
/// (once the writes they acknowledge are durable); a request that waits
/// for a lock writes what is pending first (`Link::run`). However the
/// connection ends, its locks are released (its `Caller` leaves the
/// engine).
pub(crate) async fn serve(door: &mut impl SocketDoor) {
    let label = door.link().door().label();
    let task = std::pin::pin!(async {
        loop {
            let next = door.answer_buffered().await?;
            // A request left half read: its rest first, then one write.
            if matches!(next, Next::Continue)
                && !door.link().inbuf.is_empty()
                && door.link().read_now().await
            {
                continue;
            }
            if door.link().answered > 1 {
                // The replies of a pipelined batch go out after the other
                // connections this turn made ready have answered theirs:
                // the turn's writes then follow each other, and a client
                // waiting on many connections is woken once for them,
                // not once per write (each wake-up of another CPU's
                // sleeping thread costs the writer more kernel time than
                // its reply's copy). Redis writes every reply of a turn
                // before it sleeps, to the same effect. One request alone
                // is written at once: the extra turn would cost it more.
                yield_once().await;
            }
            door.link().flush().await?;
            if matches!(next, Next::Close) || !door.link().read_more().await? {
                return Ok::<(), std::io::Error>(());
            }
        }
    });
    // Each poll a stretch: one clock reading between two commands.
    let ended = in_stretch(task).await;
    if let Err(e) = ended {
        tracing::debug!(error = %e, door = label, "connection ended with an error");
    }
}

/// Pending once, having woken itself: the task goes to the back of the
/// run queue (behind the tasks the same readiness woke), without the
/// I/O driver turn `tokio::task::yield_now` waits for.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}
