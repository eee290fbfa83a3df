//! The rows a node's last lock operation on an id left in the database,
//! kept so the next one (the `CLOSE` after an `OPEN`, the next `OPEN`
//! after a `CLOSE`) can skip reading them.
//!
//! Kept rows are never trusted: the operation run on them writes only if
//! both rows are still at the revisions kept (`sessiond_step`), and a
//! revision is never repeated (the `sessiond_rev` sequence), so a row
//! written by another node meanwhile — or deleted and written again — is
//! always noticed; the write then answers with the rows as they are, and
//! the operation is done again on those. Bounded: entries, and bytes of
//! session data.

use std::collections::HashMap;

use sessiond_core::{Session, SessionId};

use super::locks::LockRow;
use super::row::Loaded;

/// At most this many ids are kept per tenant.
const MAX_ENTRIES: usize = 4_096;

/// At most this many bytes of sessions are kept per tenant; a session
/// bigger than [`MAX_SESSION_BYTES`] is not kept.
const MAX_BYTES: usize = 16 << 20;
const MAX_SESSION_BYTES: usize = 64 << 10;

/// An id's rows: its lock row (revision 0: none) and its session row
/// (None: none) at its revision.
pub(super) struct Rows {
    pub(super) lock: LockRow,
    pub(super) session: Option<(i64, Session)>,
}

impl Rows {
    fn bytes(&self) -> usize {
        self.session.as_ref().map_or(0, |(_, s)| s.bytes())
            + self.lock.holders.len() * 64
            + self.lock.waiters.len() * 64
    }

    /// The session row as the operations read it.
    pub(super) fn loaded(&self) -> Option<Loaded> {
        self.session.as_ref().map(|(rev, s)| Loaded {
            rev: *rev,
            session: s.clone(),
            held_until_ms: 0,
        })
    }
}

/// The kept rows of one tenant on this node.
#[derive(Default)]
pub(super) struct Kept {
    rows: parking_lot::Mutex<Entries>,
}

/// Each id's rows with their size, and the sizes' sum.
type Entries = (HashMap<SessionId, (Rows, usize)>, usize);

impl Kept {
    /// Takes the rows kept for `id`, unless the session in them has run
    /// out by `now` (a read on another node may have moved its expiry
    /// without a new revision: it is read again).
    pub(super) fn take(&self, id: &SessionId, now: u64) -> Option<Rows> {
        let mut g = self.rows.lock();
        let (rows, bytes) = g.0.remove(id)?;
        g.1 -= bytes;
        let ran_out = rows
            .session
            .as_ref()
            .is_some_and(|(_, s)| s.deadline_ms() <= now);
        (!ran_out).then_some(rows)
    }

    /// Forgets what is kept for `id`.
    pub(super) fn forget(&self, id: &SessionId) {
        let mut g = self.rows.lock();
        if let Some((_, bytes)) = g.0.remove(id) {
            g.1 -= bytes;
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&self) {
        let mut g = self.rows.lock();
        g.0.clear();
        g.1 = 0;
    }

    /// Keeps `rows` for `id`, if they fit.
    pub(super) fn keep(&self, id: &SessionId, rows: Rows) {
        let bytes = rows.bytes();
        let mut g = self.rows.lock();
        if let Some((_, old)) = g.0.remove(id) {
            g.1 -= old;
        }
        if bytes > MAX_SESSION_BYTES {
            return;
        }
        // Full: make room by dropping whatever comes first (entries live
        // from one lock operation to the next; none is precious).
        while g.0.len() >= MAX_ENTRIES || g.1 + bytes > MAX_BYTES {
            let Some(first) = g.0.keys().next().cloned() else {
                break;
            };
            if let Some((_, b)) = g.0.remove(&first) {
                g.1 -= b;
            }
        }
        g.0.insert(id.clone(), (rows, bytes));
        g.1 += bytes;
    }

    /// How many ids are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows.lock().0.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;

    fn rows(data: usize, timeout_ms: u64) -> Rows {
        let s = Session::restored(
            None,
            Bytes::from(vec![b'x'; data]),
            BTreeMap::new(),
            0,
            1_000,
            1_000,
            timeout_ms,
            1,
        );
        Rows {
            lock: LockRow::default(),
            session: Some((7, s)),
        }
    }

    fn id(i: usize) -> SessionId {
        SessionId::new(Bytes::from(format!("s{i}")))
    }

    #[test]
    fn kept_rows_are_bounded_and_taken_once() {
        let kept = Kept::default();
        for i in 0..MAX_ENTRIES + 10 {
            kept.keep(&id(i), rows(10, 60_000));
        }
        assert_eq!(kept.len(), MAX_ENTRIES, "entries bounded");
        kept.clear();
        // Bytes bounded: 16 MiB of 60 KiB sessions is 273 of them.
        for i in 0..400 {
            kept.keep(&id(i), rows(60 << 10, 60_000));
        }
        assert_eq!(kept.len(), MAX_BYTES / (60 << 10));
        kept.clear();
        kept.keep(&id(1), rows(MAX_SESSION_BYTES + 1, 60_000));
        assert!(kept.take(&id(1), 2_000).is_none(), "too big to keep");
        kept.keep(&id(1), rows(10, 60_000));
        assert_eq!(kept.take(&id(1), 2_000).map(|r| r.lock.rev), Some(0));
        assert!(kept.take(&id(1), 2_000).is_none(), "taken once");
        kept.keep(&id(2), rows(10, 60_000));
        assert!(
            kept.take(&id(2), 61_000).is_none(),
            "a session past its deadline is read again"
        );
    }
}
