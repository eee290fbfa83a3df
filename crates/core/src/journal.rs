//! The seam to persistence: every change to durable state is described by a
//! [`Mutation`] and handed to a [`MutationLog`], in the order it was applied.
//!
//! Records are appended while the session's shard lock is held, so the log
//! order of any one session's records is the order its changes happened.
//! Every record is absolute (it states the new value, never a delta), so
//! replaying records that a snapshot already contains is harmless: that is
//! what lets a snapshot be taken shard by shard while writes go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::id::SessionId;
use crate::session::Session;

/// One change to durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// A whole session: created, renamed to this id, or in a snapshot.
    Put { id: SessionId, session: Session },
    /// A session is gone: destroyed, expired, or renamed away.
    Remove { id: SessionId },
    /// Variables set (an `INC` logs the resulting value).
    SetVars {
        id: SessionId,
        pairs: Vec<(Bytes, Bytes)>,
        version: u64,
        accessed_ms: u64,
    },
    /// One variable removed.
    DelVar {
        id: SessionId,
        name: Bytes,
        version: u64,
        accessed_ms: u64,
    },
    /// The data blob replaced.
    SetData {
        id: SessionId,
        data: Bytes,
        version: u64,
        accessed_ms: u64,
    },
    /// A new idle timeout, counted from `accessed_ms`.
    Timeout {
        id: SessionId,
        timeout_ms: u64,
        accessed_ms: u64,
    },
    /// The session was read, which moved its expiry.
    Touch { id: SessionId, accessed_ms: u64 },
    /// No fencing key below `up_to` may be handed out after a restart.
    FencingKeys { up_to: u64 },
}

/// Where mutations go: a log file, a database, a test's vector.
pub trait MutationLog: Send + Sync + 'static {
    /// Takes a record. Called with a shard lock held: buffer it and return;
    /// never wait for a disk here.
    fn append(&self, m: &Mutation);

    /// Takes a record and returns only once it is durable. Used rarely (a
    /// fencing-key reservation every [`KEY_BLOCK`] grants).
    fn append_durable(&self, m: &Mutation);
}

/// How many fencing keys one durable reservation covers.
pub const KEY_BLOCK: u64 = 1 << 16;

/// The engine's handle on its log, if it has one.
#[derive(Default)]
pub(crate) struct Journal {
    log: OnceLock<Arc<dyn MutationLog>>,
}

impl Journal {
    pub(crate) fn install(&self, log: Arc<dyn MutationLog>) -> bool {
        self.log.set(log).is_ok()
    }

    /// Records the mutation `make` builds — built only if there is a log, so
    /// the volatile mode pays nothing. While this thread runs a function
    /// ([`Held`]), changes to sessions are not recorded one by one: the
    /// call records each session's outcome once it has succeeded.
    pub(crate) fn record(&self, make: impl FnOnce() -> Mutation) {
        if let Some(log) = self.log.get() {
            if HELD.with(std::cell::Cell::get) {
                let m = make();
                if matches!(m, Mutation::Touch { .. } | Mutation::FencingKeys { .. }) {
                    log.append(&m);
                }
                return;
            }
            log.append(&make());
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.log.get().is_some()
    }
}

thread_local! {
    /// Whether this thread is running a function's commands ([`Held`]).
    static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While it lives, this thread's changes to sessions are kept out of the
/// log (a function's commands: its outcome is recorded whole, or not at
/// all). Touches and fencing-key reservations still go through: they are
/// true whatever the function comes to.
pub(crate) struct Held(());

impl Held {
    pub(crate) fn start() -> Self {
        HELD.with(|h| h.set(true));
        Held(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| h.set(false));
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("on", &self.is_on())
            .finish()
    }
}

/// The fencing-key counter: strictly increasing, never reused, even across
/// restarts. Before a key at or above the durable reservation is handed out,
/// a new reservation is made durable; a restart continues above it.
#[derive(Debug)]
pub(crate) struct FencingKeys {
    next: AtomicU64,
    reserved: Mutex<u64>,
    journal: Arc<Journal>,
}

impl FencingKeys {
    pub(crate) fn new(journal: Arc<Journal>) -> Self {
        Self {
            next: AtomicU64::new(1),
            reserved: Mutex::new(0),
            journal,
        }
    }

    /// A fresh key.
    pub(crate) fn issue(&self) -> u64 {
        let key = self.next.fetch_add(1, Ordering::SeqCst);
        if let Some(log) = self.journal.log.get() {
            let mut reserved = self.reserved.lock();
            if key >= *reserved {
                let up_to = key.saturating_add(KEY_BLOCK);
                log.append_durable(&Mutation::FencingKeys { up_to });
                *reserved = up_to;
            }
        }
        key
    }

    /// The next key that will be handed out.
    pub(crate) fn peek(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Continues above `key` (recovery).
    pub(crate) fn raise_above(&self, key: u64) {
        self.next.fetch_max(key.saturating_add(1), Ordering::SeqCst);
    }

    /// A recovered reservation: keys below `up_to` may have been handed out.
    pub(crate) fn restore_reservation(&self, up_to: u64) {
        self.next.fetch_max(up_to, Ordering::SeqCst);
    }
}
