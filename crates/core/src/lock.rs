//! Session locks: write (exclusive) and read (shared) modes, fencing keys,
//! leases, and a FIFO queue of waiters woken the instant the lock frees.
//!
//! A [`LockState`] lives in the same shard as its session id, so a command
//! that locks and reads (`OPEN`) or writes and unlocks (`CLOSE`) is atomic
//! under one shard mutex. Waiting is not done here: a queued request gets a
//! [`LockWait`] future that the connection awaits; granting completes it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::client::ClientHandle;
use crate::error::Error;
use crate::id::SessionId;
use crate::journal::FencingKeys;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Exclusive: one holder, no readers.
    Write,
    /// Shared: any number of readers, no writer.
    Read,
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Write => "writing",
            LockMode::Read => "reading",
        })
    }
}

/// A granted lock: its fencing key, mode, and the session it holds (which
/// differs from the one asked for if the session was regenerated meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key: u64,
    pub mode: LockMode,
    pub id: SessionId,
}

/// Lease deadlines of a shard: `(deadline_ms, key, session)`, earliest first.
pub(crate) type LeaseHeap = BinaryHeap<Reverse<(u64, u64, SessionId)>>;

#[derive(Debug)]
pub(crate) struct Holder {
    pub(crate) key: u64,
    pub(crate) mode: LockMode,
    pub(crate) client: ClientHandle,
    pub(crate) lease_deadline_ms: u64,
    /// A token the holder named itself by (phpredis's lock secret), so it
    /// can release the lock without knowing the fencing key.
    pub(crate) owner: Option<Bytes>,
}

/// Who asks for a lock, and how.
#[derive(Debug, Clone)]
pub(crate) struct LockRequest {
    pub(crate) mode: LockMode,
    pub(crate) client: ClientHandle,
    pub(crate) lease_ms: u64,
    pub(crate) owner: Option<Bytes>,
}

#[derive(Debug)]
struct Waiter {
    slot: Arc<WaitSlot>,
    request: LockRequest,
}

/// What the locks of one engine (a tenant) take: lock entries, and the
/// bytes of their ids, holders, waiters and owner secrets. Locks count
/// against the tenant's quotas like sessions do, whether or not a session
/// exists under the id.
#[derive(Debug, Default)]
pub struct LockUsage {
    entries: AtomicUsize,
    bytes: AtomicU64,
}

impl LockUsage {
    /// Lock entries (ids with a holder or a waiter).
    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Bytes the lock entries take, as [`lock_bytes`] counts them.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// What one lock entry is charged, besides its id: the map slot and the
/// state (measured sizes, rounded up).
pub(crate) const ENTRY_BYTES: u64 = 128;
/// What each holder is charged, besides its owner secret.
pub(crate) const HOLDER_BYTES: u64 = 96;
/// What each waiter is charged (it has a wake-up slot too), besides its
/// owner secret.
pub(crate) const WAITER_BYTES: u64 = 256;

/// The bytes a lock entry for `id` takes with holders and waiters whose
/// owner secrets have these lengths (what counts against the quotas).
pub fn lock_bytes(
    id_len: usize,
    holders: impl Iterator<Item = usize>,
    waiters: impl Iterator<Item = usize>,
) -> u64 {
    let h: u64 = holders.map(|o| HOLDER_BYTES + o as u64).sum();
    let w: u64 = waiters.map(|o| WAITER_BYTES + o as u64).sum();
    ENTRY_BYTES + id_len as u64 + h + w
}

/// The lock of one session id. It keeps its [`LockUsage`] current itself,
/// and gives its share back when dropped, however it is removed.
#[derive(Debug)]
pub(crate) struct LockState {
    pub(crate) holders: Vec<Holder>,
    waiters: VecDeque<Waiter>,
    usage: Arc<LockUsage>,
    id_len: usize,
    /// The bytes this entry has added to `usage`.
    charged: u64,
}

impl Drop for LockState {
    fn drop(&mut self) {
        self.usage.entries.fetch_sub(1, Ordering::Relaxed);
        self.usage.bytes.fetch_sub(self.charged, Ordering::Relaxed);
    }
}

/// What a lock request came to at once.
pub(crate) enum Acquire {
    Granted(u64),
    Queued(LockWait),
    Busy,
}

impl LockState {
    /// A new, idle entry for `id`, counted in `usage`.
    pub(crate) fn new(id: &SessionId, usage: &Arc<LockUsage>) -> Self {
        let charged = lock_bytes(id.as_bytes().len(), std::iter::empty(), std::iter::empty());
        usage.entries.fetch_add(1, Ordering::Relaxed);
        usage.bytes.fetch_add(charged, Ordering::Relaxed);
        Self {
            holders: Vec::new(),
            waiters: VecDeque::new(),
            usage: usage.clone(),
            id_len: id.as_bytes().len(),
            charged,
        }
    }

    /// What one more holder (or, `waiting`, waiter) with `owner` would add.
    pub(crate) fn party_bytes(owner: Option<&Bytes>, waiting: bool) -> u64 {
        let base = if waiting { WAITER_BYTES } else { HOLDER_BYTES };
        base + owner.map_or(0, |o| o.len() as u64)
    }

    /// Brings `usage` up to date after holders or waiters changed.
    fn recount(&mut self) {
        let now = lock_bytes(
            self.id_len,
            self.holders
                .iter()
                .map(|h| h.owner.as_ref().map_or(0, Bytes::len)),
            self.waiters
                .iter()
                .map(|w| w.request.owner.as_ref().map_or(0, Bytes::len)),
        );
        if now >= self.charged {
            self.usage
                .bytes
                .fetch_add(now - self.charged, Ordering::Relaxed);
        } else {
            self.usage
                .bytes
                .fetch_sub(self.charged - now, Ordering::Relaxed);
        }
        self.charged = now;
    }

    /// The mode the lock is held in, if it is held.
    pub(crate) fn mode(&self) -> Option<LockMode> {
        self.holders.first().map(|h| h.mode)
    }

    pub(crate) fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty()
    }

    pub(crate) fn holder(&self, key: u64) -> Option<&Holder> {
        self.holders.iter().find(|h| h.key == key)
    }

    /// Whether `client` holds or awaits this lock.
    pub(crate) fn holds_or_awaits(&self, client: &ClientHandle) -> bool {
        self.holders.iter().any(|h| h.client.same(client))
            || self.waiters.iter().any(|w| w.request.client.same(client))
    }

    fn compatible(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Write => self.holders.is_empty(),
            LockMode::Read => self.holders.iter().all(|h| h.mode == LockMode::Read),
        }
    }

    /// Asks for the lock. Granted at once only if compatible with the holders
    /// and nobody is queued (FIFO: no barging past waiters); otherwise queued
    /// when `wait` is set, else refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn acquire(
        &mut self,
        id: &SessionId,
        request: LockRequest,
        wait: bool,
        now: u64,
        keys: &FencingKeys,
        leases: &mut LeaseHeap,
    ) -> Acquire {
        if self.waiters.is_empty() && self.compatible(request.mode) {
            let key = self.grant_to(id, request, now, keys, leases);
            self.recount();
            return Acquire::Granted(key);
        }
        if !wait {
            return Acquire::Busy;
        }
        let slot = Arc::new(WaitSlot::new(id.clone()));
        request.client.note(id);
        self.waiters.push_back(Waiter {
            slot: slot.clone(),
            request,
        });
        self.recount();
        Acquire::Queued(LockWait { slot })
    }

    fn grant_to(
        &mut self,
        id: &SessionId,
        request: LockRequest,
        now: u64,
        keys: &FencingKeys,
        leases: &mut LeaseHeap,
    ) -> u64 {
        let key = keys.issue();
        let deadline = now.saturating_add(request.lease_ms);
        request.client.note(id);
        self.holders.push(Holder {
            key,
            mode: request.mode,
            client: request.client,
            lease_deadline_ms: deadline,
            owner: request.owner,
        });
        leases.push(Reverse((deadline, key, id.clone())));
        key
    }

    /// Grants the lock to waiters at the head of the queue for as long as
    /// they are compatible: one writer, or a run of readers.
    pub(crate) fn pump(
        &mut self,
        id: &SessionId,
        now: u64,
        keys: &FencingKeys,
        leases: &mut LeaseHeap,
    ) {
        while let Some(front) = self.waiters.front() {
            if !self.compatible(front.request.mode) {
                break;
            }
            let Some(w) = self.waiters.pop_front() else {
                break;
            };
            let mode = w.request.mode;
            let key = self.grant_to(id, w.request, now, keys, leases);
            w.slot.complete(Ok(Grant {
                key,
                mode,
                id: id.clone(),
            }));
        }
        self.recount();
    }

    /// Drops holders whose lease has run out. Returns whether any did.
    pub(crate) fn expire_leases(&mut self, now: u64) -> bool {
        let before = self.holders.len();
        self.holders.retain(|h| h.lease_deadline_ms > now);
        let changed = before != self.holders.len();
        if changed {
            self.recount();
        }
        changed
    }

    /// The holders' owner tokens match `owner` (any holder when `None`):
    /// their keys.
    pub(crate) fn keys_owned_by(&self, owner: Option<&[u8]>) -> Vec<u64> {
        self.holders
            .iter()
            .filter(|h| owner.is_none_or(|o| h.owner.as_deref() == Some(o)))
            .map(|h| h.key)
            .collect()
    }

    /// The keys `client` holds this lock with.
    pub(crate) fn keys_held_by(&self, client: &ClientHandle) -> Vec<u64> {
        self.holders
            .iter()
            .filter(|h| h.client.same(client))
            .map(|h| h.key)
            .collect()
    }

    /// Releases the holder with `key`.
    pub(crate) fn release(&mut self, key: u64) -> Option<Holder> {
        let at = self.holders.iter().position(|h| h.key == key)?;
        let holder = self.holders.swap_remove(at);
        self.recount();
        Some(holder)
    }

    /// Turns a write hold into a read hold (HTTP_SessionServer `commit`).
    pub(crate) fn downgrade(&mut self, key: u64) -> bool {
        match self.holders.iter_mut().find(|h| h.key == key) {
            Some(h) => {
                h.mode = LockMode::Read;
                true
            }
            None => false,
        }
    }

    /// Drops every hold and wait of `client`. Returns whether any was found.
    pub(crate) fn drop_client(&mut self, client: &ClientHandle) -> bool {
        let before = self.holders.len() + self.waiters.len();
        self.holders.retain(|h| !h.client.same(client));
        self.waiters.retain(|w| {
            let keep = !w.request.client.same(client);
            if !keep {
                w.slot
                    .complete(Err(Error::InvalidArgument("connection closed".into())));
            }
            keep
        });
        let changed = before != self.holders.len() + self.waiters.len();
        if changed {
            self.recount();
        }
        changed
    }

    /// Takes the queued request behind `slot` out of the queue; false if it
    /// is no longer queued (it was granted or failed meanwhile).
    pub(crate) fn cancel(&mut self, slot: &Arc<WaitSlot>) -> bool {
        match self.waiters.iter().position(|w| Arc::ptr_eq(&w.slot, slot)) {
            Some(at) => {
                self.waiters.remove(at);
                self.recount();
                true
            }
            None => false,
        }
    }

    /// The session is gone: holders lose their keys, waiters get an error.
    pub(crate) fn destroy(mut self, id: &SessionId) {
        for h in &self.holders {
            h.client.forget(id);
        }
        for w in std::mem::take(&mut self.waiters) {
            w.request.client.forget(id);
            w.slot
                .complete(Err(Error::DestroyedWhileWaiting(id.clone())));
        }
    }

    /// The session was renamed: queued requests now wait on `to`, and
    /// every client's record of its locks follows.
    pub(crate) fn rename(&mut self, from: &SessionId, to: &SessionId) {
        self.id_len = to.as_bytes().len();
        self.recount();
        for h in &self.holders {
            h.client.forget(from);
            h.client.note(to);
        }
        for w in &self.waiters {
            w.request.client.forget(from);
            w.request.client.note(to);
            w.slot.inner.lock().id = to.clone();
        }
    }
}

/// The rendezvous between a queued lock request and the grant.
#[derive(Debug)]
pub struct WaitSlot {
    inner: Mutex<SlotInner>,
}

#[derive(Debug)]
struct SlotInner {
    /// The session waited on; follows renames by `REGENERATE`.
    id: SessionId,
    outcome: Option<Result<Grant, Error>>,
    taken: bool,
    waker: Option<Waker>,
}

impl WaitSlot {
    fn new(id: SessionId) -> Self {
        Self {
            inner: Mutex::new(SlotInner {
                id,
                outcome: None,
                taken: false,
                waker: None,
            }),
        }
    }

    fn complete(&self, outcome: Result<Grant, Error>) {
        let waker = {
            let mut inner = self.inner.lock();
            if inner.outcome.is_some() || inner.taken {
                return;
            }
            inner.outcome = Some(outcome);
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn id(&self) -> SessionId {
        self.inner.lock().id.clone()
    }

    pub(crate) fn take(&self) -> Option<Result<Grant, Error>> {
        let mut inner = self.inner.lock();
        let out = inner.outcome.take();
        if out.is_some() {
            inner.taken = true;
        }
        out
    }
}

/// A queued lock request; resolves when the lock is granted to it or the
/// session is destroyed. Nobody polls: the releaser wakes it.
///
/// Dropping it does not leave the queue: give it back to
/// [`crate::Engine::cancel_wait`] (on a timeout) or let
/// [`crate::Engine::disconnect`] clean up.
#[derive(Debug)]
pub struct LockWait {
    pub(crate) slot: Arc<WaitSlot>,
}

impl Future for LockWait {
    type Output = Result<Grant, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.slot.inner.lock();
        if let Some(out) = inner.outcome.take() {
            inner.taken = true;
            return Poll::Ready(out);
        }
        match &inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod charge_tests {
    use super::*;

    /// The charges cover what an entry really takes (the map slot's key and
    /// value plus the hash table's control byte; a holder; a waiter and its
    /// shared slot with the two reference counts), so a quota on bytes is a
    /// quota on memory.
    #[test]
    fn charges_cover_the_real_sizes() {
        use std::mem::size_of;
        let entry = size_of::<LockState>() + size_of::<SessionId>() + 1;
        assert!(entry as u64 <= ENTRY_BYTES, "entry {entry}");
        let holder = size_of::<Holder>();
        assert!(holder as u64 <= HOLDER_BYTES, "holder {holder}");
        let waiter = size_of::<Waiter>() + size_of::<WaitSlot>() + 16;
        assert!(waiter as u64 <= WAITER_BYTES, "waiter {waiter}");
    }
}
