//! The sharded store: sessions, their locks and indexes, and the expiry and
//! lease deadlines, split over N shards by a hash of the session id.
//!
//! A command on one session takes one shard's mutex; nothing takes a global
//! lock. Cross-session queries visit the shards one at a time.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::BuildHasher;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use crate::id::SessionId;
use crate::index::{ClassIndex, VarIndex};
use crate::lock::{LeaseHeap, LockState};
use crate::session::Session;

/// How long a reaper that finds an expired but locked session waits before
/// looking again: the lock's lease bounds how long that can go on.
const LOCKED_RECHECK_MS: u64 = 1000;

/// One shard of the store.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) sessions: BTreeMap<SessionId, Session>,
    pub(crate) locks: HashMap<SessionId, LockState>,
    pub(crate) vars: VarIndex,
    pub(crate) classes: ClassIndex,
    /// `(deadline_ms, id)`, earliest first. An entry may be stale (the session
    /// was touched, renamed or destroyed); it is checked when it comes up.
    expiry: BinaryHeap<Reverse<(u64, SessionId)>>,
    pub(crate) leases: LeaseHeap,
}

impl Shard {
    /// Adds a session with its indexes and expiry deadline.
    pub(crate) fn insert(&mut self, id: SessionId, mut session: Session) {
        for (name, value) in &session.vars {
            self.vars.insert(name, value, &id);
        }
        if let Some(class) = &session.class {
            self.classes.insert(class, &id);
        }
        session.queued_ms = session.deadline_ms();
        self.expiry.push(Reverse((session.queued_ms, id.clone())));
        self.sessions.insert(id, session);
    }

    /// Takes a session out with its indexes. Its lock state is left alone.
    pub(crate) fn take(&mut self, id: &SessionId) -> Option<Session> {
        let session = self.sessions.remove(id)?;
        for (name, value) in &session.vars {
            self.vars.remove(name, value, id);
        }
        if let Some(class) = &session.class {
            self.classes.remove(class, id);
        }
        Some(session)
    }

    /// Removes a session and its lock: holders lose their keys, waiters are
    /// told the session was destroyed.
    pub(crate) fn destroy(&mut self, id: &SessionId) -> Option<Session> {
        if let Some(lock) = self.locks.remove(id) {
            lock.destroy(id);
        }
        self.take(id)
    }

    fn is_locked(&self, id: &SessionId) -> bool {
        self.locks.get(id).is_some_and(|l| !l.holders.is_empty())
    }

    /// The session if it is alive at `now`. An expired one is removed on the
    /// spot, so no reader ever sees a session past its deadline — unless it
    /// is locked: a held lock keeps its session alive until released.
    pub(crate) fn live(&mut self, id: &SessionId, now: u64) -> Option<&mut Session> {
        let expired = self.sessions.get(id)?.deadline_ms() <= now;
        if expired && !self.is_locked(id) {
            self.destroy(id);
            return None;
        }
        self.sessions.get_mut(id)
    }

    /// Whether the session is alive at `now`, without removing anything.
    pub(crate) fn is_live(&self, id: &SessionId, now: u64) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|s| s.deadline_ms() > now || self.is_locked(id))
    }

    /// Makes sure the expiry heap will look at `id` by its current deadline;
    /// needed only when the deadline moved earlier (a shorter timeout).
    pub(crate) fn reschedule(&mut self, id: &SessionId) {
        if let Some(s) = self.sessions.get_mut(id) {
            let deadline = s.deadline_ms();
            if deadline < s.queued_ms {
                s.queued_ms = deadline;
                self.expiry.push(Reverse((deadline, id.clone())));
            }
        }
    }

    /// Sets one variable, keeping the index in step.
    pub(crate) fn set_var(&mut self, id: &SessionId, name: Bytes, value: Bytes) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        self.vars.insert(&name, &value, id);
        if let Some(old) = session.vars.insert(name.clone(), value.clone()) {
            if old != value {
                self.vars.remove(&name, &old, id);
            }
        }
    }

    /// Removes one variable; returns whether it was there.
    pub(crate) fn del_var(&mut self, id: &SessionId, name: &[u8]) -> bool {
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        match session.vars.remove(name) {
            Some(old) => {
                self.vars.remove(name, &old, id);
                true
            }
            None => false,
        }
    }

    /// Removes up to `budget` sessions whose deadline has passed. Each heap
    /// entry is looked at once: stale ones are dropped, touched sessions are
    /// pushed again at their new deadline. Returns how many expired.
    pub(crate) fn reap(&mut self, now: u64, mut budget: usize) -> usize {
        let mut expired = 0;
        while budget > 0 {
            let Some(Reverse((deadline, _))) = self.expiry.peek() else {
                break;
            };
            if *deadline > now {
                break;
            }
            let Some(Reverse((deadline, id))) = self.expiry.pop() else {
                break;
            };
            budget -= 1;
            let locked = self.is_locked(&id);
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            if session.queued_ms != deadline {
                continue;
            }
            let real = session.deadline_ms();
            let next = if real > now {
                real
            } else if locked {
                now + LOCKED_RECHECK_MS
            } else {
                self.destroy(&id);
                expired += 1;
                continue;
            };
            session.queued_ms = next;
            self.expiry.push(Reverse((next, id)));
        }
        expired
    }

    /// Drops lock holders whose lease ran out, and hands their locks on.
    pub(crate) fn expire_leases(&mut self, now: u64, keys: &std::sync::atomic::AtomicU64) -> usize {
        let mut expired = 0;
        while let Some(Reverse((deadline, _, _))) = self.leases.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((_, key, id))) = self.leases.pop() else {
                break;
            };
            let Some(lock) = self.locks.get_mut(&id) else {
                continue;
            };
            let Some(holder) = lock.holder(key) else {
                continue;
            };
            if holder.lease_deadline_ms > now {
                continue;
            }
            if let Some(h) = lock.release(key) {
                expired += 1;
                if !lock.holds_or_awaits(&h.client) {
                    h.client.forget(&id);
                }
            }
            lock.pump(&id, now, keys, &mut self.leases);
            if lock.is_idle() {
                self.locks.remove(&id);
            }
        }
        expired
    }
}

/// The shards.
#[derive(Debug)]
pub(crate) struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Store {
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.max(1);
        Self {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Which shard holds `id`.
    pub(crate) fn index_of(&self, id: &SessionId) -> usize {
        // The hasher is randomly keyed, so a client cannot aim many ids at one
        // shard.
        let h = self.hasher.hash_one(id);
        // Truncation is fine: only the low bits choose the shard.
        (h % self.shards.len() as u64) as usize
    }

    pub(crate) fn lock(&self, id: &SessionId) -> MutexGuard<'_, Shard> {
        self.shards[self.index_of(id)].lock()
    }

    pub(crate) fn lock_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock()
    }
}
