//! The engine as a working copy of sessions another store holds (a cluster
//! node over its database): a session is put in place as the store has it,
//! a command runs on it with the engine's own rules, and the result is read
//! back for the store to write — none of it logged, none of it expiring
//! here.

use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;

use super::Engine;
use crate::error::Error;
use crate::id::SessionId;
use crate::session::Session;

/// What the store behind a working copy holds besides the sessions loaded
/// in it: the tenant's figures as last read, less what the copy held at
/// that moment, moved as sessions are loaded and unloaded. The quotas and
/// the gauges count it with what is loaded.
#[derive(Debug, Default)]
pub(crate) struct Elsewhere {
    sessions: AtomicI64,
    persistent: AtomicI64,
    bytes: AtomicI64,
    locks: AtomicI64,
    lock_bytes: AtomicI64,
}

/// A tenant's figures as the store behind a working copy counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub sessions: u64,
    pub persistent: u64,
    pub bytes: u64,
    pub locks: u64,
    pub lock_bytes: u64,
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn plus(held: u64, elsewhere: &AtomicI64) -> u64 {
    let e = elsewhere.load(Ordering::Relaxed);
    u64::try_from(signed(held).saturating_add(e)).unwrap_or(0)
}

impl Elsewhere {
    /// `session` moves between the copy and the store: `sign` 1 out of
    /// the copy, -1 into it.
    fn shift(&self, session: &Session, sign: i64) {
        self.sessions.fetch_add(sign, Ordering::Relaxed);
        if session.timeout_ms == crate::NEVER {
            self.persistent.fetch_add(sign, Ordering::Relaxed);
        }
        self.bytes
            .fetch_add(sign * signed(session.bytes() as u64), Ordering::Relaxed);
    }

    pub(crate) fn add_persistent(&self, held: usize) -> u64 {
        plus(held as u64, &self.persistent)
    }
}

impl Engine {
    /// Puts `id` in place as the store holds it: `session`, or none.
    /// Nothing is logged; later versions are numbered above its version.
    pub fn load(&self, id: &SessionId, session: Option<Session>) {
        self.load_held(id, session, false);
    }

    /// [`Engine::load`], with whether the session's lock is held in the
    /// store: a held lock keeps its session alive past its deadline, as on
    /// the engine's own locks.
    pub fn load_held(&self, id: &SessionId, session: Option<Session>, held: bool) {
        let mut shard = self.store.lock(id);
        if let Some(old) = shard.take(id) {
            self.elsewhere.shift(&old, 1);
        }
        if held {
            shard.held_elsewhere.insert(id.clone());
        } else if !shard.held_elsewhere.is_empty() {
            shard.held_elsewhere.remove(id);
        }
        if let Some(session) = session {
            self.elsewhere.shift(&session, -1);
            self.next_version
                .fetch_max(session.version.saturating_add(1), Ordering::Relaxed);
            shard.insert_unlogged(id.clone(), session);
        }
    }

    /// Takes `id` out again, unlogged, with what it left in the indexes.
    pub fn unload(&self, id: &SessionId) {
        let mut shard = self.store.lock(id);
        if let Some(s) = shard.take(id) {
            self.elsewhere.shift(&s, 1);
        }
        if !shard.held_elsewhere.is_empty() {
            shard.held_elsewhere.remove(id);
        }
    }

    /// The store's figures for this tenant, as just read: what the copy
    /// holds now is counted apart, as it is loaded.
    pub fn set_figures(&self, f: Figures) {
        let e = &self.elsewhere;
        let held = |v: usize| signed(v as u64);
        e.sessions.store(
            signed(f.sessions) - held(self.store.count()),
            Ordering::Relaxed,
        );
        e.persistent.store(
            signed(f.persistent) - held(self.store.persistent()),
            Ordering::Relaxed,
        );
        e.bytes.store(
            signed(f.bytes) - signed(self.store.bytes()),
            Ordering::Relaxed,
        );
        e.locks.store(
            signed(f.locks) - held(self.lock_usage.entries()),
            Ordering::Relaxed,
        );
        e.lock_bytes.store(
            signed(f.lock_bytes) - signed(self.lock_usage.bytes()),
            Ordering::Relaxed,
        );
    }

    /// Locks taken (`entries` 1, `bytes` their size) or given back
    /// (negative) in the store, not here.
    pub fn note_lock_usage(&self, entries: i64, bytes: i64) {
        self.elsewhere.locks.fetch_add(entries, Ordering::Relaxed);
        self.elsewhere
            .lock_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Sessions held, here and elsewhere.
    pub(super) fn session_total(&self) -> usize {
        plus(self.store.count() as u64, &self.elsewhere.sessions) as usize
    }

    /// Bytes of sessions, here and elsewhere.
    pub(super) fn session_bytes(&self) -> u64 {
        plus(self.store.bytes(), &self.elsewhere.bytes)
    }

    /// Lock entries, here and elsewhere.
    pub(super) fn lock_total(&self) -> usize {
        plus(self.lock_usage.entries() as u64, &self.elsewhere.locks) as usize
    }

    /// Bytes of lock entries, here and elsewhere.
    pub(super) fn lock_bytes_total(&self) -> u64 {
        plus(self.lock_usage.bytes(), &self.elsewhere.lock_bytes)
    }

    /// Refuses a lock request past the tenant's quotas: a `fresh` entry
    /// (no holder or waiter on `id` yet) past `max_locks`, or the bytes
    /// it adds (the entry's, the holder's or waiter's) past `max_bytes`.
    pub fn room_for_lock(
        &self,
        id: &SessionId,
        fresh: bool,
        owner: Option<&Bytes>,
        waiting: bool,
    ) -> Result<(), Error> {
        let max_locks = self.config.max_locks;
        let entries = self.lock_total();
        if fresh && max_locks > 0 && entries >= max_locks {
            return Err(Error::LimitExceeded {
                what: "the number of locks (limits.max_locks_per_tenant)",
                got: entries as u64 + 1,
                limit: max_locks as u64,
            });
        }
        let entry_bytes = if fresh {
            crate::lock::ENTRY_BYTES as usize + id.as_bytes().len()
        } else {
            0
        };
        self.room_for_bytes(
            entry_bytes + crate::lock::LockState::party_bytes(owner, waiting) as usize,
        )
    }

    /// A copy of `id` as stored here, expired or not.
    pub fn stored(&self, id: &SessionId) -> Option<Session> {
        let shard = self.store.lock(id);
        shard.sessions.get(id).map(|s| Session::clone(s))
    }

    /// Drops the deadlines of sessions and locks that are gone: a working
    /// copy never expires anything itself, so call it now and then instead
    /// of [`Engine::tick`].
    pub fn drop_stale_deadlines(&self) {
        for i in 0..self.store.len() {
            // A shard a function holds waits for the next round.
            if let Some(mut shard) = self.store.lock_unclaimed(i) {
                shard.drop_stale_deadlines();
            }
        }
    }

    /// Makes every version handed out from now on greater than `version`.
    pub fn raise_version(&self, version: u64) {
        self.next_version
            .fetch_max(version.saturating_add(1), Ordering::Relaxed);
    }
}
