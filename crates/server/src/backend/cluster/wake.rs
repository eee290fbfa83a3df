//! Waking a node's waiters: a lock handed to a request queued on another
//! node is announced on that node's channel (`NOTIFY`, sent by the same
//! statement that wrote the grant, so it leaves only with the commit); a
//! node listens on its own channel on a connection of its own, and goes
//! back to listening whenever that connection is lost. The row is the
//! truth, the wake-up only a hint: a waiter also looks at the row at its
//! holders' lease deadline and once a second, and every waiter looks again
//! whenever the listening connection was re-opened (what was sent
//! meanwhile is lost).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use blake2::{Blake2b256, Digest};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What a waiter is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The lock is the request's, under this key.
    Granted(u64),
    /// The session was destroyed while the request waited.
    Destroyed,
    /// Wake-ups may have been lost: look at the row.
    Recheck,
}

/// The channel node `node` listens on (a channel name must be an
/// identifier of at most 63 bytes, and node names are free text).
pub(crate) fn channel(node: &str) -> String {
    let d = Blake2b256::digest(node.as_bytes());
    let mut name = String::from("sessiond_");
    for b in &d[..8] {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// The message for request `seq`.
pub(crate) fn payload(seq: u64, woken: Woken) -> String {
    match woken {
        Woken::Granted(key) => format!("{seq} {key}"),
        Woken::Destroyed => format!("{seq} destroyed"),
        Woken::Recheck => format!("{seq} recheck"),
    }
}

fn parse(payload: &str) -> Option<(u64, Woken)> {
    let (seq, what) = payload.split_once(' ')?;
    let seq = seq.parse().ok()?;
    let woken = match what {
        "destroyed" => Woken::Destroyed,
        "recheck" => Woken::Recheck,
        key => Woken::Granted(key.parse().ok()?),
    };
    Some((seq, woken))
}

/// This node's queued requests, by number.
#[derive(Debug)]
pub(crate) struct Waits {
    next: AtomicU64,
    by_seq: Mutex<HashMap<u64, mpsc::Sender<Woken>>>,
}

impl Default for Waits {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(1),
            by_seq: Mutex::new(HashMap::new()),
        }
    }
}

impl Waits {
    /// A number for a request about to be queued, and where its wake-ups
    /// arrive. [`Waits::forget`] it once it is over.
    pub(crate) fn register(&self) -> (u64, mpsc::Receiver<Woken>) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        // A few at most are ever in flight for one request.
        let (tx, rx) = mpsc::channel(4);
        self.by_seq.lock().insert(seq, tx);
        (seq, rx)
    }

    /// A number for a request that does not wait (so that its grant, too,
    /// can be told from every other of this node's).
    pub(crate) fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn forget(&self, seq: u64) {
        self.by_seq.lock().remove(&seq);
    }

    /// Hands `woken` to request `seq`, if it still waits here.
    pub(crate) fn deliver(&self, seq: u64, woken: Woken) {
        if let Some(tx) = self.by_seq.lock().get(&seq) {
            let _ = tx.try_send(woken);
        }
    }

    /// A message from the channel.
    pub(crate) fn deliver_payload(&self, payload: &str) {
        match parse(payload) {
            Some((seq, woken)) => self.deliver(seq, woken),
            None => tracing::warn!(payload, "a wake-up that is not sessiond's"),
        }
    }

    /// Tells every waiter to look at its row.
    pub(crate) fn recheck_all(&self) {
        for tx in self.by_seq.lock().values() {
            let _ = tx.try_send(Woken::Recheck);
        }
    }

    /// How many requests wait here.
    pub(crate) fn len(&self) -> usize {
        self.by_seq.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_ups_read_back_and_channels_are_identifiers() {
        for w in [Woken::Granted(42), Woken::Destroyed, Woken::Recheck] {
            assert_eq!(parse(&payload(7, w)), Some((7, w)));
        }
        assert_eq!(parse("x y"), None);
        let c = channel("web 1 / \"quoted\"");
        assert!(c.len() <= 63 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_ne!(c, channel("web 2"));
    }

    #[tokio::test]
    async fn a_registered_request_hears_what_is_delivered() {
        let w = Waits::default();
        let (seq, mut rx) = w.register();
        w.deliver_payload(&payload(seq, Woken::Granted(9)));
        assert_eq!(rx.recv().await, Some(Woken::Granted(9)));
        w.forget(seq);
        w.deliver(seq, Woken::Destroyed);
        assert_eq!(w.len(), 0);
    }
}
