//! LOCK, UNLOCK, COMMIT, OPEN and CLOSE, and the hand-off of queued lock
//! requests to the caller and back.

use bytes::Bytes;

use super::{Chosen, Engine, Outcome};
use crate::client::ClientHandle;
use crate::error::Error;
use crate::id::SessionId;
use crate::lock::{Acquire, Grant, LockMode, LockRequest, LockState, LockWait};
use crate::reply::Reply;
use crate::store::Shard;

/// What to answer once a lock is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterGrant {
    /// `LOCK`: the fencing key.
    Key,
    /// `OPEN`: the key, the data and the variables.
    Open { create: bool },
}

/// A lock request that is queued. Await `wait` for at most `wait_ms`, then
/// hand the outcome to [`Engine::complete_wait`]; on a timeout, first ask
/// [`Engine::cancel_wait`], which settles the race with a grant.
#[derive(Debug)]
pub struct PendingLock {
    /// Resolves when the lock is granted or the session destroyed.
    pub wait: LockWait,
    /// How long the client agreed to wait.
    pub wait_ms: u64,
    /// What the client asked for.
    pub mode: LockMode,
    /// What to answer on a grant.
    pub then: AfterGrant,
    /// The session whose lock is awaited.
    pub id: SessionId,
    started_ms: u64,
}

/// What a lock request asks for.
pub(super) struct LockAsk {
    pub(super) mode: LockMode,
    pub(super) wait_ms: u64,
    pub(super) lease_ms: Option<u64>,
    /// A token the holder names itself by (phpredis's lock secret).
    pub(super) owner: Option<Bytes>,
    /// Native locks need the session; a Redis-door lock key may be taken
    /// before its session exists (PHP locks, then reads a new session).
    pub(super) require_session: bool,
}

impl LockAsk {
    /// A native request: `SESSION.LOCK`/`OPEN`, on an existing session.
    pub(super) fn native(mode: LockMode, wait_ms: u64, lease_ms: Option<u64>) -> Self {
        Self {
            mode,
            wait_ms,
            lease_ms,
            owner: None,
            require_session: true,
        }
    }
}

impl Engine {
    pub(super) fn lock(
        &self,
        client: &ClientHandle,
        id: SessionId,
        ask: LockAsk,
        then: AfterGrant,
        now: u64,
    ) -> Result<Outcome, Error> {
        let LockAsk {
            mode,
            wait_ms,
            lease_ms,
            owner,
            require_session,
        } = ask;
        let lease_ms = self.lock_terms(&id, wait_ms, lease_ms, owner.as_ref())?;
        let mut guard = self.store.lock(&id);
        let shard = &mut *guard;
        if shard.live_touched(&id, now).is_none() && require_session {
            return Err(Error::NoSession(id.clone()));
        }
        let Shard { locks, leases, .. } = shard;
        // Locks count against the tenant's quotas, on sessions or not.
        let fresh = !locks.contains_key(&id);
        self.room_for_lock(&id, fresh, owner.as_ref(), wait_ms > 0)?;
        let usage = &self.lock_usage;
        let lock = locks
            .entry(id.clone())
            .or_insert_with(|| LockState::new(&id, usage));
        if lock.expire_leases(now) {
            lock.pump(&id, now, &self.keys, leases);
        }
        if wait_ms > 0 && lock.waiter_count() >= self.config.max_lock_waiters {
            return Err(Error::LimitExceeded {
                what: "the number of lock requests queued on the session",
                got: lock.waiter_count() as u64 + 1,
                limit: self.config.max_lock_waiters as u64,
            });
        }
        let request = LockRequest {
            mode,
            client: client.clone(),
            lease_ms,
            owner,
        };
        match lock.acquire(&id, request, wait_ms > 0, now, &self.keys, leases) {
            Acquire::Granted(key) => {
                let grant = Grant { key, mode, id };
                Ok(Outcome::Reply(grant_reply(shard, &grant, then, now)?))
            }
            Acquire::Busy => {
                if lock.is_idle() {
                    locks.remove(&id);
                }
                let held = lock_mode_of(shard, &id).unwrap_or(mode);
                Err(Error::Locked {
                    id,
                    mode: held,
                    waited_ms: 0,
                })
            }
            Acquire::Queued(wait) => Ok(Outcome::Wait(PendingLock {
                wait,
                wait_ms,
                mode,
                then,
                id,
                started_ms: now,
            })),
        }
    }

    /// Checks a lock request's terms (the id, how long it may wait, the
    /// owner secret's length) and settles its lease (the default when none
    /// is asked, capped at `max_lease_ms`): the lease in ms. The same rules
    /// for a lock kept here and one a cluster node keeps in its database.
    pub fn lock_terms(
        &self,
        id: &SessionId,
        wait_ms: u64,
        lease_ms: Option<u64>,
        owner: Option<&Bytes>,
    ) -> Result<u64, Error> {
        self.check_id(id)?;
        let lease_ms = self.lease(lease_ms)?;
        if wait_ms > self.config.max_wait_ms {
            return Err(Error::LimitExceeded {
                what: "the lock wait in ms",
                got: wait_ms,
                limit: self.config.max_wait_ms,
            });
        }
        if let Some(o) = owner {
            if o.len() > self.config.max_lock_owner_len {
                return Err(Error::LimitExceeded {
                    what: "the lock owner secret in bytes (limits.max_lock_owner_len)",
                    got: o.len() as u64,
                    limit: self.config.max_lock_owner_len as u64,
                });
            }
        }
        Ok(lease_ms)
    }

    /// Counts a release refused because the lock is someone else's (the
    /// `refused_unlocks` figure of `INFO`).
    pub fn note_refused_unlock(&self) {
        self.stats
            .refused_unlocks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn lease(&self, lease_ms: Option<u64>) -> Result<u64, Error> {
        match lease_ms {
            None => Ok(self.config.default_lease_ms),
            Some(0) => Err(Error::InvalidArgument(
                "the lease must be at least 1 ms".into(),
            )),
            Some(super::NO_EXPIRY) => Ok(super::NO_EXPIRY),
            // Longer than allowed is capped, never refused (counted).
            Some(l) if l > self.config.max_lease_ms => {
                self.stats
                    .capped_leases
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(self.config.max_lease_ms)
            }
            Some(l) => Ok(l),
        }
    }

    /// Answers a queued request once its wait is over (granted or failed).
    pub fn complete_wait(
        &self,
        pending: &PendingLock,
        outcome: Result<Grant, Error>,
    ) -> Result<Reply, Error> {
        let grant = outcome?;
        let now = self.now_ms();
        let mut guard = self.store.lock(&grant.id);
        let shard = &mut *guard;
        if let AfterGrant::Open { create: true } = pending.then {
            if shard.live(&grant.id, now).is_none() {
                self.check_id(&grant.id)?;
                self.may_create(Chosen::ByClient)?;
                let session = self.new_session(None, None, self.config.default_timeout_ms, now);
                shard.insert(grant.id.clone(), session);
            }
        }
        let reply = grant_reply(shard, &grant, pending.then, now);
        if reply.is_err() {
            // The session vanished between the grant and now: give the lock
            // back rather than leave the caller holding a key it never saw.
            release(shard, &grant.id, grant.key, now, &self.keys);
        }
        reply
    }

    /// Ends a queued request now (its wait ran out, or the server is
    /// stopping) and answers it: the grant if one came in the meantime,
    /// else `Locked`.
    pub fn give_up(&self, pending: &PendingLock) -> Result<Reply, Error> {
        let outcome = self.cancel_wait(pending);
        self.complete_wait(pending, outcome)
    }

    /// Gives up a queued request whose wait ran out. If it was granted in the
    /// meantime the grant wins and is returned; otherwise `Locked`.
    pub fn cancel_wait(&self, pending: &PendingLock) -> Result<Grant, Error> {
        let now = self.now_ms();
        loop {
            let id = pending.wait.slot.id();
            let mut guard = self.store.lock(&id);
            // A REGENERATE may have moved the request to another shard between
            // reading its id and locking.
            if pending.wait.slot.id() != id {
                continue;
            }
            let shard = &mut *guard;
            if let Some(lock) = shard.locks.get_mut(&id) {
                if lock.cancel(&pending.wait.slot) {
                    let mode = lock.mode().unwrap_or(pending.mode);
                    if lock.is_idle() {
                        shard.locks.remove(&id);
                    }
                    return Err(Error::Locked {
                        id,
                        mode,
                        waited_ms: now.saturating_sub(pending.started_ms),
                    });
                }
            }
            return pending.wait.slot.take().unwrap_or(Err(Error::Locked {
                id,
                mode: pending.mode,
                waited_ms: now.saturating_sub(pending.started_ms),
            }));
        }
    }

    /// Releases the locks held under `owner` (any holder when `None`);
    /// 1 if any was released, else 0.
    /// Releases the holds named by `owner` (phpredis's unlock script), or
    /// with no owner (a Redis `DEL <id>_LOCK`, a memcached `delete
    /// lock.<id>`) the holds of `client` itself: a stale holder whose lease
    /// ran out, or any other connection, cannot free the current holder's
    /// lock, which Redis and memcached cannot tell apart. A refused release
    /// answers 0, as a missing key does there, and is counted.
    pub(super) fn unlock_owned(
        &self,
        client: &ClientHandle,
        id: &SessionId,
        owner: Option<&[u8]>,
        now: u64,
    ) -> Reply {
        let mut shard = self.store.lock(id);
        let (keys, held) = match shard.locks.get_mut(id) {
            Some(lock) => {
                lock.expire_leases(now);
                let keys = match owner {
                    Some(o) => lock.keys_owned_by(Some(o)),
                    None => lock.keys_held_by(client),
                };
                (keys, !lock.holders.is_empty())
            }
            None => (Vec::new(), false),
        };
        if keys.is_empty() && held {
            self.stats
                .refused_unlocks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut released = false;
        for key in keys {
            released |= release(&mut shard, id, key, now, &self.keys);
        }
        Reply::Int(i64::from(released))
    }

    /// The owner token of the lock's first holder (nil if unheld or
    /// unnamed).
    pub(super) fn lock_owner(&self, id: &SessionId, now: u64) -> Reply {
        let mut shard = self.store.lock(id);
        let Some(lock) = shard.locks.get_mut(id) else {
            return Reply::Nil;
        };
        lock.expire_leases(now);
        lock.holders
            .iter()
            .find_map(|h| h.owner.clone())
            .map_or(Reply::Nil, Reply::Bulk)
    }

    pub(super) fn unlock(&self, id: &SessionId, key: u64, now: u64) -> Result<Reply, Error> {
        let mut shard = self.store.lock(id);
        if release(&mut shard, id, key, now, &self.keys) {
            Ok(Reply::Ok)
        } else {
            Err(Error::StaleKey {
                id: id.clone(),
                key,
            })
        }
    }

    pub(super) fn commit(&self, id: &SessionId, key: u64, now: u64) -> Result<Reply, Error> {
        let mut guard = self.store.lock(id);
        let Shard { locks, leases, .. } = &mut *guard;
        let lock = locks.get_mut(id).ok_or_else(|| Error::StaleKey {
            id: id.clone(),
            key,
        })?;
        lock.expire_leases(now);
        if !lock.downgrade(key) {
            lock.pump(id, now, &self.keys, leases);
            return Err(Error::StaleKey {
                id: id.clone(),
                key,
            });
        }
        lock.pump(id, now, &self.keys, leases);
        Ok(Reply::Ok)
    }

    /// Writes, then unlocks; refused as a whole if `key` does not hold the
    /// lock, or holds it only for reading and there is something to write.
    pub(super) fn close(
        &self,
        id: &SessionId,
        key: u64,
        data: Option<Bytes>,
        sets: Vec<(Bytes, Bytes)>,
        now: u64,
    ) -> Result<Reply, Error> {
        let mut guard = self.store.lock(id);
        let shard = &mut *guard;
        let mode = held_mode(shard, id, key, now).ok_or_else(|| Error::StaleKey {
            id: id.clone(),
            key,
        })?;
        let writes = data.is_some() || !sets.is_empty();
        if writes {
            if mode == LockMode::Read {
                return Err(Error::ReadOnlyLock {
                    id: id.clone(),
                    key,
                });
            }
            let Some(session) = shard.live(id, now) else {
                release(shard, id, key, now, &self.keys);
                return Err(Error::NoSession(id.clone()));
            };
            // Refused whole, the lock still held: the client can write less.
            self.room_for_vars(session, sets.iter().map(|(n, _)| n))?;
            let growth = data
                .as_ref()
                .map_or(0, |d| d.len().saturating_sub(session.data.len()))
                + super::data::vars_growth(session, &sets);
            self.room_for_bytes(growth)?;
            if let Some(d) = data {
                shard.write_data(id, d, now, &self.next_version);
            }
            if !sets.is_empty() {
                shard.write_vars(id, sets, now, &self.next_version);
            }
        }
        release(shard, id, key, now, &self.keys);
        Ok(Reply::Ok)
    }
}

/// The mode `key` holds `id` in, after dropping expired leases.
fn held_mode(shard: &mut Shard, id: &SessionId, key: u64, now: u64) -> Option<LockMode> {
    let lock = shard.locks.get_mut(id)?;
    lock.expire_leases(now);
    lock.holder(key).map(|h| h.mode)
}

fn lock_mode_of(shard: &Shard, id: &SessionId) -> Option<LockMode> {
    shard.locks.get(id).and_then(|l| l.mode())
}

/// Releases `key` on `id` and hands the lock on. False if `key` held nothing.
fn release(
    shard: &mut Shard,
    id: &SessionId,
    key: u64,
    now: u64,
    keys: &crate::journal::FencingKeys,
) -> bool {
    let Shard { locks, leases, .. } = shard;
    let Some(lock) = locks.get_mut(id) else {
        return false;
    };
    lock.expire_leases(now);
    let released = lock.release(key);
    if let Some(h) = &released {
        if !lock.holds_or_awaits(&h.client) {
            h.client.forget(id);
        }
    }
    lock.pump(id, now, keys, leases);
    if lock.is_idle() {
        locks.remove(id);
    }
    released.is_some()
}

fn grant_reply(
    shard: &mut Shard,
    grant: &Grant,
    then: AfterGrant,
    now: u64,
) -> Result<Reply, Error> {
    let key = Reply::Key(grant.key);
    match then {
        AfterGrant::Key => Ok(key),
        AfterGrant::Open { .. } => {
            let session = shard
                .live(&grant.id, now)
                .ok_or_else(|| Error::NoSession(grant.id.clone()))?;
            let reply = Reply::opened(grant.key, session);
            shard.touch(&grant.id, now);
            Ok(reply)
        }
    }
}
