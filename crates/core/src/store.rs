//! The sharded store: sessions, their locks and indexes, and the expiry and
//! lease deadlines, split over N shards by a hash of the session id.
//!
//! A command on one session takes one shard's mutex; nothing takes a global
//! lock. Cross-session queries visit the shards one at a time.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::fields::IndexFields;
use crate::id::{IdHash, SessionId};
use crate::index::{ClassIndex, FieldIndex, VarIndex, KEY_BITS};
use crate::journal::{FencingKeys, Journal, Mutation};
use crate::lock::{LeaseHeap, LockState};
use crate::session::Session;

/// How long a reaper that finds an expired but locked session waits before
/// looking again: the lock's lease bounds how long that can go on.
const LOCKED_RECHECK_MS: u64 = 1000;

/// One shard of the store.
#[derive(Debug)]
pub(crate) struct Shard {
    journal: Arc<Journal>,
    /// Sessions and bytes in the whole store, kept by every shard.
    usage: Arc<Usage>,
    /// The sessions by id: a hash map, as every request looks one up.
    /// Boxed so the table's empty slots stay small (it is at most 7/8 full).
    pub(crate) sessions: HashMap<SessionId, Box<Session>, IdHash>,
    /// The same ids in scan order, for `SCAN` cursors and `LIST`: by a
    /// keyed hash of the id (then the id), so a numeric cursor can name any
    /// place in it (Redis `SCAN`) and no choice of ids can bunch them up.
    /// Changed only when a session is created or removed.
    order: BTreeSet<(u64, SessionId)>,
    /// The key of that hash (the same for every shard of a store).
    order_hasher: RandomState,
    pub(crate) locks: HashMap<SessionId, LockState, IdHash>,
    pub(crate) vars: VarIndex,
    /// The same for the entries of PHP-encoded data.
    /// Fields of the data (PHP, JSON, msgpack) of the indexed names.
    pub(crate) fields: FieldIndex,
    /// Which names those are, and the key of their hash.
    field_keys: Arc<FieldKeys>,
    pub(crate) classes: ClassIndex,
    /// `(deadline_ms, id)`, earliest first. An entry may be stale (the session
    /// was touched, renamed or destroyed); it is checked when it comes up.
    expiry: BinaryHeap<Reverse<(u64, SessionId)>>,
    pub(crate) leases: LeaseHeap,
    /// Sessions of a working copy ([`crate::Engine::load_held`]) whose lock
    /// is held in the store behind it: alive while held, as if locked here.
    pub(crate) held_elsewhere: std::collections::HashSet<SessionId, IdHash>,
    /// The thread running a transaction on this shard ([`Store::claim`]):
    /// every other thread waits until it ends.
    claim: Option<ThreadId>,
}

impl Shard {
    fn new(
        journal: Arc<Journal>,
        usage: Arc<Usage>,
        order_hasher: RandomState,
        field_keys: Arc<FieldKeys>,
    ) -> Self {
        Self {
            journal,
            usage,
            sessions: HashMap::default(),
            order: BTreeSet::new(),
            order_hasher,
            locks: HashMap::default(),
            vars: VarIndex::default(),
            fields: FieldIndex::default(),
            field_keys,
            classes: ClassIndex::default(),
            expiry: BinaryHeap::new(),
            leases: BinaryHeap::new(),
            held_elsewhere: std::collections::HashSet::default(),
            claim: None,
        }
    }

    /// Where `id` stands in the scan order.
    pub(crate) fn position(&self, id: &SessionId) -> u64 {
        self.order_hasher.hash_one(id)
    }

    /// The ids in scan order after `after` (from the start for `None`).
    pub(crate) fn ids_after<'a>(
        &'a self,
        after: Option<&SessionId>,
    ) -> impl Iterator<Item = (u64, &'a SessionId)> + 'a {
        let start = match after {
            Some(id) => Bound::Excluded((self.position(id), id.clone())),
            None => Bound::Unbounded,
        };
        self.order
            .range((start, Bound::Unbounded))
            .map(|(at, id)| (*at, id))
    }

    /// The ids in scan order from position `at` on.
    pub(crate) fn ids_from(&self, at: u64) -> impl Iterator<Item = (u64, &SessionId)> + '_ {
        let start = (at, SessionId::new(bytes::Bytes::new()));
        self.order
            .range((Bound::Included(start), Bound::Unbounded))
            .map(|(at, id)| (*at, id))
    }

    /// Adds a session with its indexes and expiry deadline, and logs it.
    pub(crate) fn insert(&mut self, id: SessionId, session: Session) {
        self.journal.record(|| Mutation::Put {
            id: id.clone(),
            session: session.clone(),
        });
        self.insert_unlogged(id, session);
    }

    /// [`Shard::insert`] without the log record: a session as a store
    /// behind the engine already holds it.
    pub(crate) fn insert_unlogged(&mut self, id: SessionId, mut session: Session) {
        session.logged_ms = session.accessed_ms;
        // A session put in place of one (replaying a log over a snapshot)
        // takes the old one's index entries with it.
        if self.sessions.contains_key(&id) {
            self.take(&id);
        }
        let at = self.position(&id);
        for (name, value) in session.vars() {
            self.vars.insert(name, value, at, &id);
        }
        let keys = self.field_keys.of(&session.data);
        session.indexed = !keys.is_empty();
        for key in keys {
            self.fields.insert(key, at);
        }
        if let Some(class) = session.class() {
            self.classes.insert(class, &id);
        }
        session.queued_ms = session.deadline_ms();
        self.expiry.push(Reverse((session.queued_ms, id.clone())));
        self.order.insert((at, id.clone()));
        self.usage.grow(session.bytes());
        if session.timeout_ms == crate::NEVER {
            self.usage.persistent.fetch_add(1, Ordering::Relaxed);
        }
        match self.sessions.insert(id, Box::new(session)) {
            None => {
                self.usage.sessions.fetch_add(1, Ordering::Relaxed);
            }
            Some(old) => self.usage.shrink(old.bytes()),
        }
    }

    /// Takes a session out with its indexes. Its lock state is left alone.
    pub(crate) fn take(&mut self, id: &SessionId) -> Option<Session> {
        let session = *self.sessions.remove(id)?;
        self.usage.sessions.fetch_sub(1, Ordering::Relaxed);
        if session.timeout_ms == crate::NEVER {
            self.usage.persistent.fetch_sub(1, Ordering::Relaxed);
        }
        self.usage.shrink(session.bytes());
        let at = self.position(id);
        self.order.remove(&(at, id.clone()));
        for (name, value) in session.vars() {
            self.vars.remove(name, value, at, id);
        }
        if session.indexed {
            for key in self.field_keys.of(&session.data) {
                self.drop_field(key, at, id);
            }
        }
        if let Some(class) = session.class() {
            self.classes.remove(class, id);
        }
        Some(session)
    }

    /// Removes a session and its lock: holders lose their keys, waiters are
    /// told the session was destroyed. Logged.
    pub(crate) fn destroy(&mut self, id: &SessionId) -> Option<Session> {
        if let Some(lock) = self.locks.remove(id) {
            lock.destroy(id);
        }
        let gone = self.take(id);
        if gone.is_some() {
            self.journal.record(|| Mutation::Remove { id: id.clone() });
        }
        gone
    }

    /// Logs that a session left this shard under another name.
    pub(crate) fn log_removed(&self, id: &SessionId) {
        self.journal.record(|| Mutation::Remove { id: id.clone() });
    }

    /// Marks a session read at `now`. The log hears of it only when the
    /// last logged access is a sixteenth of the timeout old (at least 100
    /// ms), so reads do not turn into writes; after a restart a session may
    /// therefore expire up to that much early.
    pub(crate) fn touch(&mut self, id: &SessionId, now: u64) {
        if let Some(s) = self.sessions.get_mut(id) {
            touch_session(s, &self.journal, id, now);
        }
    }

    /// Sets variables; a write that changes nothing only touches. Logged.
    pub(crate) fn write_vars(
        &mut self,
        id: &SessionId,
        pairs: Vec<(Bytes, Bytes)>,
        now: u64,
        versions: &AtomicU64,
    ) {
        let Some(s) = self.sessions.get(id) else {
            return;
        };
        if pairs.iter().all(|(n, v)| s.vars().get(n) == Some(v)) {
            self.touch(id, now);
            return;
        }
        let version = versions.fetch_add(1, Ordering::Relaxed);
        if self.journal.is_on() {
            self.journal.record(|| Mutation::SetVars {
                id: id.clone(),
                pairs: pairs.clone(),
                version,
                accessed_ms: now,
            });
        }
        for (name, value) in pairs {
            self.set_var(id, name, value);
        }
        if let Some(s) = self.sessions.get_mut(id) {
            s.version = version;
            s.accessed_ms = now;
            s.logged_ms = now;
        }
    }

    /// Replaces the data blob; identical data only touches. Logged.
    pub(crate) fn write_data(
        &mut self,
        id: &SessionId,
        data: Bytes,
        now: u64,
        versions: &AtomicU64,
    ) {
        self.write_stored(id, data, None, None, now, versions);
    }

    /// A store's writes to a present session: its data (as
    /// [`Shard::write_data`]), then its timeout and flags where given and
    /// changed ([`Shard::write_timeout`], [`Shard::write_flags`]); the
    /// session's version after them. The data is written with one look-up
    /// (and one of its place, when indexed fields move); a changed timeout
    /// or flags, rare (PHP resends the same ones with every write), look it
    /// up again. Logged.
    pub(crate) fn write_stored(
        &mut self,
        id: &SessionId,
        data: Bytes,
        timeout_ms: Option<u64>,
        flags: Option<u32>,
        now: u64,
        versions: &AtomicU64,
    ) -> u64 {
        // The session, the journal, the usage and the field keys are
        // borrowed side by side.
        let Some(s) = self.sessions.get_mut(id) else {
            return 0;
        };
        let timeout_ms = timeout_ms.filter(|&t| t != s.timeout_ms);
        let flags = flags.filter(|&f| f != s.flags);
        let version = if s.data == data {
            touch_session(s, &self.journal, id, now);
            s.version
        } else {
            let version = data_written(s, &self.journal, id, &data, now, versions);
            if let Some((old, new)) = put_data(s, &self.usage, &self.field_keys, data) {
                self.move_fields(id, &old, &new);
            }
            version
        };
        if timeout_ms.is_none() && flags.is_none() {
            return version;
        }
        if let Some(t) = timeout_ms {
            self.write_timeout(id, t, now);
        }
        if let Some(f) = flags {
            self.write_flags(id, f);
        }
        self.sessions.get(id).map_or(version, |s| s.version)
    }

    /// Replaces the data blob and re-reads its fields into the index.
    pub(crate) fn replace_data(&mut self, id: &SessionId, data: Bytes) {
        if let Some(s) = self.sessions.get_mut(id) {
            if let Some((old, new)) = put_data(s, &self.usage, &self.field_keys, data) {
                self.move_fields(id, &old, &new);
            }
        }
    }

    /// Moves `id`'s index entries from its old blob's field keys to its
    /// new one's (PHP rewrites the whole blob on every request, mostly with
    /// the same fields: only changed ones move).
    fn move_fields(&mut self, id: &SessionId, old: &[u64], new: &[u64]) {
        let at = self.position(id);
        for &key in old.iter().filter(|k| new.binary_search(k).is_err()) {
            self.drop_field(key, at, id);
        }
        for key in new.iter().filter(|k| old.binary_search(k).is_err()) {
            self.fields.insert(*key, at);
        }
    }

    /// Takes `id`'s field `key` out of the index, unless another session
    /// shares the entry (the same place prefix, rare) and has the key too.
    fn drop_field(&mut self, key: u64, at: u64, id: &SessionId) {
        let shared = self.ids_at(FieldIndex::prefix(at)).any(|(_, other)| {
            other != id
                && self
                    .sessions
                    .get(other)
                    .is_some_and(|s| self.field_keys.of(&s.data).binary_search(&key).is_ok())
        });
        if !shared {
            self.fields.remove(key, at);
        }
    }

    /// The place prefixes of sessions that may have field `name` =
    /// `value`, in scan order from `from`'s (None: `name` is not indexed).
    pub(crate) fn field_hits(
        &self,
        name: &[u8],
        value: &[u8],
        from: u64,
    ) -> Option<impl Iterator<Item = u64> + '_> {
        let which = &self.field_keys.which;
        which
            .wants(name)
            .then(|| self.fields.find(self.field_keys.key(name, value), from))
    }

    /// The sessions whose place has `prefix` ([`FieldIndex::prefix`]; one,
    /// mostly), with their places, in scan order.
    pub(crate) fn ids_at(&self, prefix: u64) -> impl Iterator<Item = (u64, &SessionId)> + '_ {
        self.ids_from(prefix << KEY_BITS)
            .take_while(move |(place, _)| FieldIndex::prefix(*place) == prefix)
    }

    /// Removes one variable; returns whether it was there. Logged.
    pub(crate) fn write_del_var(
        &mut self,
        id: &SessionId,
        name: &[u8],
        now: u64,
        versions: &AtomicU64,
    ) -> bool {
        if !self.del_var(id, name) {
            self.touch(id, now);
            return false;
        }
        let version = versions.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.sessions.get_mut(id) {
            s.version = version;
            s.accessed_ms = now;
            s.logged_ms = now;
        }
        self.journal.record(|| Mutation::DelVar {
            id: id.clone(),
            name: Bytes::copy_from_slice(name),
            version,
            accessed_ms: now,
        });
        true
    }

    /// Sets the client flags (memcached's); logged, as a whole session, only
    /// when they change (they rarely do).
    pub(crate) fn write_flags(&mut self, id: &SessionId, flags: u32) {
        if self.sessions.get(id).is_none_or(|s| s.flags == flags) {
            return;
        }
        if let Some(mut s) = self.take(id) {
            s.flags = flags;
            self.insert(id.clone(), s);
        }
    }

    /// Sets the idle timeout, counted from `now`. Logged; setting the
    /// timeout it already has only touches (PHP handlers resend it on every
    /// request).
    pub(crate) fn write_timeout(&mut self, id: &SessionId, timeout_ms: u64, now: u64) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if s.timeout_ms == timeout_ms {
            touch_session(s, &self.journal, id, now);
            return;
        }
        self.usage.retime(s.timeout_ms, timeout_ms);
        s.timeout_ms = timeout_ms;
        s.accessed_ms = now;
        s.logged_ms = now;
        self.journal.record(|| Mutation::Timeout {
            id: id.clone(),
            timeout_ms,
            accessed_ms: now,
        });
        self.reschedule(id);
    }

    /// Sets a timeout as a log replay does: no log record, no touch.
    pub(crate) fn retime_quietly(&mut self, id: &SessionId, timeout_ms: u64) {
        if let Some(s) = self.sessions.get_mut(id) {
            self.usage.retime(s.timeout_ms, timeout_ms);
            s.timeout_ms = timeout_ms;
        }
    }

    fn is_locked(&self, id: &SessionId) -> bool {
        self.locks.get(id).is_some_and(|l| !l.holders.is_empty())
            || (!self.held_elsewhere.is_empty() && self.held_elsewhere.contains(id))
    }

    /// The session if it is alive at `now`. An expired one is removed on the
    /// spot, so no reader ever sees a session past its deadline — unless it
    /// is locked: a held lock keeps its session alive until released.
    pub(crate) fn live(&mut self, id: &SessionId, now: u64) -> Option<&mut Session> {
        if !self.keep_if_live(id, now) {
            return None;
        }
        self.sessions.get_mut(id).map(|s| &mut **s)
    }

    /// `f` of the session if it is alive at `now` (as [`Shard::live`],
    /// and marked read if `touch`, as [`Shard::live_touched`]): one
    /// look-up for a session alive and not past its deadline, the common
    /// case — `live` takes two, as it must return the session borrowed.
    pub(crate) fn with_live<R>(
        &mut self,
        id: &SessionId,
        now: u64,
        touch: bool,
        f: impl FnOnce(&Session) -> R,
    ) -> Option<R> {
        self.lend_live(id, now, touch, f, |f, s| f(s)).ok()
    }

    /// [`Shard::with_live`] with a value `with` that `f` takes along, and
    /// gets back when there is no live session (a closure that must be
    /// called either way, with the session or without).
    pub(crate) fn lend_live<W, R>(
        &mut self,
        id: &SessionId,
        now: u64,
        touch: bool,
        with: W,
        f: impl FnOnce(W, &Session) -> R,
    ) -> Result<R, W> {
        if let Some(s) = self.sessions.get_mut(id) {
            if s.deadline_ms() > now {
                if touch {
                    touch_session(s, &self.journal, id, now);
                }
                return Ok(f(with, s));
            }
        }
        // Absent, or past its deadline: removed then unless locked.
        let s = match touch {
            true => self.live_touched(id, now),
            false => self.live(id, now),
        };
        match s {
            Some(s) => Ok(f(with, s)),
            None => Err(with),
        }
    }

    /// [`Shard::live`], and marks the session read ([`Shard::touch`]).
    pub(crate) fn live_touched(&mut self, id: &SessionId, now: u64) -> Option<&mut Session> {
        if !self.keep_if_live(id, now) {
            return None;
        }
        let s = self.sessions.get_mut(id)?;
        touch_session(s, &self.journal, id, now);
        Some(s)
    }

    /// Whether `id` is a live session; an expired, unlocked one is removed.
    /// (The caller's second look-up could go once the borrow checker lets
    /// a reference be returned from one branch only.)
    fn keep_if_live(&mut self, id: &SessionId, now: u64) -> bool {
        let Some(s) = self.sessions.get(id) else {
            return false;
        };
        if s.deadline_ms() <= now && !self.is_locked(id) {
            self.destroy(id);
            return false;
        }
        true
    }

    /// The key form of `id` if it is live ([`Shard::is_live`]).
    pub(crate) fn live_form(&self, id: &SessionId, now: u64) -> Option<u8> {
        let s = self.sessions.get(id)?;
        (s.deadline_ms() > now || self.is_locked(id)).then_some(s.key_form)
    }

    /// Whether the session is alive at `now`, without removing anything.
    pub(crate) fn is_live(&self, id: &SessionId, now: u64) -> bool {
        self.live_form(id, now).is_some()
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
        let at = self.position(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        self.vars.insert(&name, &value, at, id);
        let (name_len, value_len) = (name.len(), value.len());
        match session.vars_mut().insert(name.clone(), value.clone()) {
            None => self.usage.grow(name_len + value_len),
            Some(old) => {
                self.usage.replace(old.len(), value_len);
                if old != value {
                    self.vars.remove(&name, &old, at, id);
                }
            }
        }
    }

    /// Removes one variable; returns whether it was there.
    pub(crate) fn del_var(&mut self, id: &SessionId, name: &[u8]) -> bool {
        let at = self.position(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return false;
        };
        let removed = session.vars_mut().remove(name);
        session.shrink();
        match removed {
            Some(old) => {
                self.usage.shrink(name.len() + old.len());
                self.vars.remove(name, &old, at, id);
                true
            }
            None => false,
        }
    }

    /// Drops the expiry and lease entries of sessions and locks no longer
    /// here (a cluster node's working copy, whose sessions come and go
    /// without ever expiring in it).
    pub(crate) fn drop_stale_deadlines(&mut self) {
        let sessions = &self.sessions;
        self.expiry
            .retain(|Reverse((_, id))| sessions.contains_key(id));
        let locks = &self.locks;
        self.leases
            .retain(|Reverse((_, _, id))| locks.contains_key(id));
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
    pub(crate) fn expire_leases(&mut self, now: u64, keys: &FencingKeys) -> usize {
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
    /// Signalled when a shard's claim ends, one per shard.
    released: Box<[Condvar]>,
    usage: Arc<Usage>,
}

/// What a store holds, kept as sessions come, go and change: for the
/// per-tenant quotas, without walking the shards.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) sessions: AtomicUsize,
    /// Data, variable names and values, and classes, in bytes.
    pub(crate) bytes: AtomicU64,
    /// Sessions without expiry (Redis keys set without one), so INFO's
    /// `expires` counts only the others.
    pub(crate) persistent: AtomicUsize,
}

impl Usage {
    fn grow(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn shrink(&self, n: usize) {
        self.bytes.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// A session's timeout changing from `old` to `new`.
    pub(crate) fn retime(&self, old: u64, new: u64) {
        match (old == crate::NEVER, new == crate::NEVER) {
            (false, true) => {
                self.persistent.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.persistent.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// `old` bytes replaced by `new`: one atomic add of the (wrapping)
    /// difference, none when the sizes match (PHP rewriting a session).
    fn replace(&self, old: usize, new: usize) {
        if old != new {
            let delta = (new as u64).wrapping_sub(old as u64);
            self.bytes.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

impl Store {
    pub(crate) fn new(shards: usize, journal: &Arc<Journal>, index_fields: IndexFields) -> Self {
        let n = shards.max(1);
        let usage = Arc::new(Usage::default());
        let order_hasher = RandomState::new();
        let field_keys = Arc::new(FieldKeys::new(index_fields));
        Self {
            shards: (0..n)
                .map(|_| {
                    Mutex::new(Shard::new(
                        journal.clone(),
                        usage.clone(),
                        order_hasher.clone(),
                        field_keys.clone(),
                    ))
                })
                .collect(),
            released: (0..n).map(|_| Condvar::new()).collect(),
            usage,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Sessions in the store (expired ones not yet reaped included).
    pub(crate) fn count(&self) -> usize {
        self.usage.sessions.load(Ordering::Relaxed)
    }

    /// Sessions without expiry.
    pub(crate) fn persistent(&self) -> usize {
        self.usage.persistent.load(Ordering::Relaxed)
    }

    /// Bytes of data, variables and classes in the store.
    pub(crate) fn bytes(&self) -> u64 {
        self.usage.bytes.load(Ordering::Relaxed)
    }

    /// Which shard holds `id`.
    pub(crate) fn index_of(&self, id: &SessionId) -> usize {
        // The id's hash is randomly keyed, so a client cannot aim many ids
        // at one shard. Its high bits choose the shard (multiply and
        // shift); a shard's table looks at its low bits.
        let n = self.shards.len() as u64;
        // Truncation is fine: the product shifted is below `n`.
        ((u64::from(id.hash_code()) * n) >> 32) as usize
    }

    pub(crate) fn lock(&self, id: &SessionId) -> MutexGuard<'_, Shard> {
        self.lock_at(self.index_of(id))
    }

    /// Locks shard `index`, first waiting out a transaction another thread
    /// is running on it.
    pub(crate) fn lock_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        let mut shard = self.shards[index].lock();
        if shard.claim.is_some() {
            let me = thread::current().id();
            while shard.claim.is_some_and(|owner| owner != me) {
                self.released[index].wait(&mut shard);
            }
        }
        shard
    }

    /// Locks shard `index` unless another thread has claimed it (then
    /// None, at once).
    pub(crate) fn lock_unclaimed(&self, index: usize) -> Option<MutexGuard<'_, Shard>> {
        let shard = self.shards[index].lock();
        match shard.claim {
            Some(owner) if owner != thread::current().id() => None,
            _ => Some(shard),
        }
    }

    /// Claims shards `indexes` (and every shard when `all`) for this thread
    /// until the [`Claim`] drops: other threads' commands on them wait, so
    /// a transaction's commands run as one step. Claims are taken in index
    /// order, so two transactions cannot deadlock; nor can a command that
    /// holds one shard while it locks a higher one (REGENERATE), since the
    /// claimer took the lower first or never needs it. The claiming thread
    /// must touch no shard outside its claim.
    pub(crate) fn claim(&self, mut indexes: Vec<usize>, all: bool) -> Claim<'_> {
        if all {
            indexes = (0..self.shards.len()).collect();
        } else {
            indexes.sort_unstable();
            indexes.dedup();
        }
        let me = thread::current().id();
        for &i in &indexes {
            let mut shard = self.lock_at(i);
            shard.claim = Some(me);
        }
        Claim {
            store: self,
            indexes,
        }
    }
}

impl Store {
    /// Claims shards `indexes` for this thread as [`Store::claim`] does,
    /// but only if no other thread holds any of them: None at once
    /// otherwise (nothing claimed), so a request worker never waits.
    pub(crate) fn try_claim(&self, mut indexes: Vec<usize>) -> Option<Claim<'_>> {
        indexes.sort_unstable();
        indexes.dedup();
        let me = thread::current().id();
        for (n, &i) in indexes.iter().enumerate() {
            let mut shard = self.shards[i].lock();
            if shard.claim.is_some_and(|owner| owner != me) {
                drop(shard);
                // Lets go of those taken so far.
                drop(Claim {
                    store: self,
                    indexes: indexes[..n].to_vec(),
                });
                return None;
            }
            shard.claim = Some(me);
        }
        Some(Claim {
            store: self,
            indexes,
        })
    }
}

/// Shards claimed by one thread ([`Store::claim`]); dropping it lets the
/// others in.
pub(crate) struct Claim<'a> {
    store: &'a Store,
    indexes: Vec<usize>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        for &i in &self.indexes {
            self.store.shards[i].lock().claim = None;
            self.store.released[i].notify_all();
        }
    }
}

/// Puts `data` in place in `s` and counts it: the indexed field keys of
/// the old blob and the new one, when either has any (the index must move
/// them). Most writes are of data with no indexed field before or after:
/// one look at the new data.
fn put_data(
    s: &mut Session,
    usage: &Usage,
    field_keys: &FieldKeys,
    data: Bytes,
) -> Option<(Vec<u64>, Vec<u64>)> {
    let old = if s.indexed {
        field_keys.of(&s.data)
    } else {
        Vec::new()
    };
    let new = field_keys.of(&data);
    usage.replace(s.data.len(), data.len());
    s.data = data;
    s.indexed = !new.is_empty();
    (!old.is_empty() || !new.is_empty()).then_some((old, new))
}

/// A new data blob's version, access time and log record (the blob goes
/// in place after): its version.
fn data_written(
    s: &mut Session,
    journal: &Journal,
    id: &SessionId,
    data: &Bytes,
    now: u64,
    versions: &AtomicU64,
) -> u64 {
    let version = versions.fetch_add(1, Ordering::Relaxed);
    s.version = version;
    s.accessed_ms = now;
    s.logged_ms = now;
    journal.record(|| Mutation::SetData {
        id: id.clone(),
        data: data.clone(),
        version,
        accessed_ms: now,
    });
    version
}

/// [`Shard::touch`] on a session already looked up.
fn touch_session(s: &mut Session, journal: &Journal, id: &SessionId, now: u64) {
    s.accessed_ms = now;
    let every = (s.timeout_ms / 16).max(100);
    if now.saturating_sub(s.logged_ms) >= every {
        s.logged_ms = now;
        journal.record(|| Mutation::Touch {
            id: id.clone(),
            accessed_ms: now,
        });
    }
}

/// Which fields of session data are indexed, and the keyed hash of a
/// (name, value) pair (the same for every shard of a store; random, so no
/// client can aim many values at one key).
#[derive(Debug)]
pub(crate) struct FieldKeys {
    pub(crate) which: IndexFields,
    hasher: RandomState,
}

impl FieldKeys {
    pub(crate) fn new(which: IndexFields) -> Self {
        Self {
            which,
            hasher: RandomState::new(),
        }
    }

    /// The index's key of field `name` = `value`.
    pub(crate) fn key(&self, name: &[u8], value: &[u8]) -> u64 {
        FieldIndex::key(self.hasher.hash_one((name, value)))
    }

    /// The keys of `data`'s indexed fields, sorted, without repeats. Data
    /// that is no PHP, JSON or msgpack session costs one look at its first
    /// bytes.
    pub(crate) fn of(&self, data: &[u8]) -> Vec<u64> {
        if matches!(&self.which, IndexFields::Only(names) if names.is_empty()) {
            return Vec::new();
        }
        let Some(fields) = crate::fields::fields(data) else {
            return Vec::new();
        };
        let mut keys: Vec<u64> = fields
            .iter()
            .filter(|(n, _)| self.which.wants(n))
            .map(|(n, v)| self.key(n, v))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}
