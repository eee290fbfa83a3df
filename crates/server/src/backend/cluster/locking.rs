//! Lock commands on a cluster node: `SESSION.LOCK`/`UNLOCK`/`COMMIT`/
//! `OPEN`/`CLOSE`, and the Redis and memcached doors' lock keys, on the
//! `sessiond_lock` rows (see `locks.rs` for the rules).
//!
//! Each command reads the lock row (with the session row when it needs
//! it), changes it by the rules, and writes it back only at the revision it
//! read — in the same statement as the session's write for `CLOSE`, so a
//! key that no longer holds the lock cannot write. A lock is never held by
//! holding a database connection or transaction: between commands it is
//! only a row. A request that must wait is queued in the row and waits on
//! this node; whoever releases hands the lock to the head of the queue in
//! the same write and wakes the waiter's node.

use std::collections::HashMap;

use bytes::Bytes;
use sessiond_core::{ClientHandle, Command, Error, LockMode, Reply, SessionId, NEVER};

use super::db::{DbRow, St, P, Q};
use super::exec::ClusterTenant;
use super::kept::Rows;
use super::locks::{Asked, Handed, LockRow, Party};
use super::outcome::{ClusterWait, Done, LockWrite, Then, Write};
use super::pool::DbError;
use super::row;
use super::wake::{self, Woken};
use super::Boxed;

/// What a request asks for.
struct Ask {
    mode: LockMode,
    wait_ms: u64,
    lease_ms: Option<u64>,
    owner: Option<Bytes>,
    require_session: bool,
    then: Then,
}

impl Ask {
    /// A door's request for a lock key (`SET … NX`, memcached's `add`).
    fn key(
        config: &sessiond_core::EngineConfig,
        owner: Bytes,
        lease_ms: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Self {
        Ask {
            mode: LockMode::Write,
            wait_ms: wait_ms.unwrap_or(config.door_lock_wait_ms),
            // No expiry asked for: held until released, or until the
            // connection (or its node) ends.
            lease_ms: Some(lease_ms.unwrap_or(NEVER)),
            owner: Some(owner),
            require_session: false,
            then: Then::Key,
        }
    }
}

/// How a request came out at once.
enum Got {
    Reply(Reply),
    Queued(Option<u64>),
}

/// What a look at a waiter's row found.
enum Seen {
    Granted(u64),
    Waiting(Option<u64>),
    Gone,
}

/// What a lock operation's write came to.
enum Stepped {
    /// Written (or found unchanged): the session row's and the lock row's
    /// revisions now (0: no row) — and, after a grant on rows not read,
    /// the session row as read after it (None otherwise).
    Written {
        rev: i64,
        lock_rev: i64,
        session: Option<(i64, sessiond_core::Session)>,
    },
    /// Another node wrote first: the rows as they are now.
    Changed(Rows),
}

/// A grant tried before the rows are read: who asks, how, and whether the
/// session must be there.
pub(super) struct Blind<'a> {
    mode: LockMode,
    party: &'a Party,
    lease: u64,
    owner: Option<&'a Bytes>,
    seq: (u64, bool),
    need_session: bool,
}

/// How long a waiter goes without looking at its row, at most, ms.
const RECHECK_MS: u64 = 1_000;

/// The state an operation on one lock row works on.
pub(super) struct Op<'a> {
    pub(super) row: &'a mut LockRow,
    handed: Vec<Handed>,
    now: u64,
    tenant: &'a ClusterTenant,
    /// Whether the session's changes in the working copy are written
    /// (an operation refused as a whole clears it).
    keep_session: bool,
}

impl<'a> Op<'a> {
    /// An operation on `row`, read for `tenant`, at `now`: expired leases
    /// and dead nodes' holds are dropped and the lock handed on first.
    pub(super) fn new(row: &'a mut LockRow, now: u64, tenant: &'a ClusterTenant) -> Self {
        let mut op = Op {
            row,
            handed: Vec::new(),
            now,
            tenant,
            keep_session: true,
        };
        let cluster = &tenant.cluster;
        if op.row.expire(now, &|p| cluster.is_alive(p, now)) {
            op.pump();
        }
        op
    }

    /// Who the operation handed the lock to, and whether the session's
    /// changes are to be written.
    pub(super) fn finish(self) -> (Vec<Handed>, bool) {
        (self.handed, self.keep_session)
    }

    /// Grants the head of the queue as far as the rules allow.
    fn pump(&mut self) {
        let cluster = &self.tenant.cluster;
        let handed = self
            .row
            .pump(self.now, &mut |above| cluster.take_key(above));
        self.handed.extend(handed);
    }

    /// Runs `cmd` on the working copy.
    fn run(&self, cmd: Command) -> Result<Reply, Error> {
        let client = self.tenant.engine.connect();
        let r = self.tenant.engine.execute_now(&client, cmd);
        self.tenant.engine.disconnect(&client);
        r
    }
}

impl ClusterTenant {
    /// One lock command.
    pub(super) async fn lock_command(&self, client: &ClientHandle, cmd: Command) -> Done {
        let config = self.engine.config();
        let reply = match cmd {
            Command::Lock {
                id,
                mode,
                wait_ms,
                lease_ms,
            } => {
                let ask = Ask {
                    mode,
                    wait_ms,
                    lease_ms,
                    owner: None,
                    require_session: true,
                    then: Then::Key,
                };
                return self.acquire(client, id, ask).await;
            }
            Command::Open {
                id,
                mode,
                wait_ms,
                lease_ms,
                create,
            } => {
                let ask = Ask {
                    mode,
                    wait_ms,
                    lease_ms,
                    owner: None,
                    require_session: true,
                    then: Then::Open { create },
                };
                return self.acquire(client, id, ask).await;
            }
            Command::LockOwned {
                id,
                owner,
                lease_ms,
                wait_ms,
            } => {
                let ask = Ask::key(config, owner, lease_ms, wait_ms);
                return self.acquire(client, id, ask).await;
            }
            Command::Close { ref id, .. } => {
                let id = id.clone();
                let party = self.cluster.party(client.id());
                self.on_lock(&id, true, |op| at_once(op, &party, cmd.clone()))
                    .await
            }
            Command::Unlock { ref id, .. }
            | Command::UnlockOwned { ref id, .. }
            | Command::LockOwner { ref id }
            | Command::Commit { ref id, .. } => {
                let id = id.clone();
                let party = self.cluster.party(client.id());
                self.on_lock(&id, false, |op| at_once(op, &party, cmd.clone()))
                    .await
            }
            other => Err(Error::InvalidArgument(format!(
                "{} is not a lock command",
                other.name()
            ))),
        };
        Done::Reply(reply)
    }

    /// `LOCK`, `OPEN` and the doors' lock keys: granted at once, refused
    /// as busy, or queued to wait.
    async fn acquire(&self, client: &ClientHandle, id: SessionId, ask: Ask) -> Done {
        let lease = match self
            .engine
            .lock_terms(&id, ask.wait_ms, ask.lease_ms, ask.owner.as_ref())
        {
            Ok(l) => l,
            Err(e) => return Done::Reply(Err(e)),
        };
        let waiting = (ask.wait_ms > 0).then(|| self.cluster.waits.register());
        let seq = match &waiting {
            Some((s, _)) => (*s, true),
            None => (self.cluster.waits.number(), false),
        };
        let noted = self.note_lock(client, &id);
        let party = self.cluster.party(client.id());
        let started_ms = self.engine.now_ms();
        let got = self
            .on_lock_asking(
                &id,
                &Blind {
                    mode: ask.mode,
                    party: &party,
                    lease,
                    owner: ask.owner.as_ref(),
                    seq,
                    need_session: ask.require_session && ask.then != (Then::Open { create: true }),
                },
                |op| request(op, &id, &ask, &party, lease, seq),
            )
            .await;
        match (got, waiting) {
            (Ok(Got::Queued(next_expiry_ms)), Some((seq, rx))) => Done::Wait(ClusterWait {
                id,
                seq,
                rx,
                mode: ask.mode,
                then: ask.then,
                wait_ms: ask.wait_ms,
                started_ms,
                next_expiry_ms,
                party,
                lease_ms: lease,
                owner: ask.owner,
                require_session: ask.require_session,
            }),
            (got, waiting) => {
                if let Some((seq, _)) = waiting {
                    self.cluster.waits.forget(seq);
                }
                if let Err(Error::Unavailable(_)) = &got {
                    // The database may have taken the request before the
                    // link failed: it is settled once it answers again.
                    self.orphan(&id, seq.0);
                } else if noted && !matches!(got, Ok(Got::Reply(_))) {
                    self.unnote_lock(client, &id);
                }
                Done::Reply(match got {
                    Ok(Got::Reply(r)) => Ok(r),
                    Ok(Got::Queued(_)) => Err(Error::Locked {
                        id,
                        mode: ask.mode,
                        waited_ms: 0,
                    }),
                    Err(e) => Err(e),
                })
            }
        }
    }

    /// Waits for a queued request until it is granted, the session is
    /// destroyed, or its wait runs out (then it is given up: the grant, if
    /// one came meanwhile, or `LOCKED`). Cancel-safe: dropped and called
    /// again, it goes on waiting.
    pub(crate) fn wait<'a>(&'a self, w: &'a mut ClusterWait) -> Boxed<'a, Result<Reply, Error>> {
        Box::pin(async move {
            let r = self.wait_for(w).await;
            self.orphan_if_unsure(w, &r);
            r
        })
    }

    /// A request the client was told failed because the database did not
    /// answer may still be queued in its row, or granted meanwhile: it is
    /// noted, to be taken out (or the grant given back) once the database
    /// answers again — else it would be granted to no one and block the
    /// lock for a whole lease.
    fn orphan_if_unsure<T>(&self, w: &ClusterWait, r: &Result<T, Error>) {
        if let Err(Error::Unavailable(_)) = r {
            self.cluster.waits.forget(w.seq);
            self.orphan(&w.id, w.seq);
        }
    }

    async fn wait_for(&self, w: &mut ClusterWait) -> Result<Reply, Error> {
        loop {
            let now = self.engine.now_ms();
            let deadline = w.started_ms.saturating_add(w.wait_ms);
            if now >= deadline {
                return self.give_up_now(w).await;
            }
            let mut next = now.saturating_add(RECHECK_MS).min(deadline);
            if let Some(e) = w.next_expiry_ms {
                next = next.min(e.max(now));
            }
            let pause = std::time::Duration::from_millis(next.saturating_sub(now).max(1));
            let woken = tokio::select! {
                m = w.rx.recv() => m.unwrap_or(Woken::Recheck),
                () = tokio::time::sleep(pause) => Woken::Recheck,
            };
            let seen = match woken {
                Woken::Granted(key) => Seen::Granted(key),
                Woken::Destroyed => Seen::Gone,
                Woken::Recheck => self.look(w).await?,
            };
            match seen {
                Seen::Granted(key) => return self.granted(w, key).await,
                Seen::Gone => {
                    self.cluster.waits.forget(w.seq);
                    return Err(Error::DestroyedWhileWaiting(w.id.clone()));
                }
                Seen::Waiting(next_expiry) => w.next_expiry_ms = next_expiry,
            }
        }
    }

    /// Looks at a waiter's row (expiring leases and dead nodes' holds, and
    /// handing the lock on, as any operation does).
    /// A request that is gone from its row follows the session's renames.
    async fn look(&self, w: &mut ClusterWait) -> Result<Seen, Error> {
        let (node, seq) = (self.cluster.node().to_string(), w.seq);
        for _ in 0..super::rename::MAX_HOPS {
            let seen = self
                .on_lock(&w.id, false, |op| {
                    Ok(match op.row.granted_to(&node, seq) {
                        Some(h) => Seen::Granted(h.key),
                        None if op.row.is_queued(&node, seq) => {
                            Seen::Waiting(op.row.next_expiry_ms())
                        }
                        None => Seen::Gone,
                    })
                })
                .await?;
            if !matches!(seen, Seen::Gone) {
                return Ok(seen);
            }
            if !self.follow(w).await? {
                return self.queue_again(w).await;
            }
        }
        Ok(Seen::Gone)
    }

    /// A waiter missing from its row, which was not renamed: gone with its
    /// session — or dropped while the session lives on (its node was taken
    /// for dead while cut off from the database, or the database lost the
    /// write that queued it in a crash). Then it is queued again, at the
    /// back, and goes on waiting for what is left of its time.
    async fn queue_again(&self, w: &ClusterWait) -> Result<Seen, Error> {
        let (node, seq) = (self.cluster.node().to_string(), w.seq);
        self.on_lock(&w.id, w.require_session, |op| {
            if let Some(h) = op.row.granted_to(&node, seq) {
                return Ok(Seen::Granted(h.key));
            }
            if op.row.is_queued(&node, seq) {
                return Ok(Seen::Waiting(op.row.next_expiry_ms()));
            }
            // Alive by its deadline, or kept alive by a lock held.
            let held = op.row.held_until_ms() > op.now;
            let live = op
                .tenant
                .engine
                .stored(&w.id)
                .is_some_and(|s| s.deadline_ms() > op.now || held);
            if w.require_session && !live {
                return Ok(Seen::Gone);
            }
            let (now, tenant) = (op.now, op.tenant);
            let mut key = |above| tenant.cluster.take_key(above);
            let asked = op.row.ask(
                w.mode,
                w.party.clone(),
                w.lease_ms,
                w.owner.clone(),
                (seq, true),
                now,
                &mut key,
            );
            Ok(match asked {
                Asked::Granted(k) => Seen::Granted(k),
                Asked::Queued | Asked::Busy => Seen::Waiting(op.row.next_expiry_ms()),
            })
        })
        .await
    }

    /// A queued request that was granted `key`: its answer.
    async fn granted(&self, w: &ClusterWait, key: u64) -> Result<Reply, Error> {
        self.cluster.waits.forget(w.seq);
        match w.then {
            Then::Key => Ok(Reply::Key(key)),
            Then::Open { create } => {
                let id = &w.id;
                self.on_lock(id, true, |op| {
                    // The grant holds the lock, which keeps the session
                    // alive if it is there.
                    let live = op.tenant.engine.stored(id).is_some();
                    if create && !live {
                        op.run(Command::Create {
                            id: id.clone(),
                            class: None,
                            data: None,
                            timeout_ms: None,
                        })?;
                    }
                    match opened(op, id, key) {
                        Ok(r) => Ok(r),
                        Err(e) => {
                            // The session vanished between the grant and
                            // now: give the lock back rather than leave the
                            // client holding a key it never saw.
                            op.row.release(key);
                            op.pump();
                            Err(e)
                        }
                    }
                })
                .await
            }
        }
    }

    /// Ends a queued request whose wait ran out (or the server stops):
    /// the grant if one came meanwhile, else `LOCKED`.
    pub(crate) fn give_up<'a>(&'a self, w: &'a mut ClusterWait) -> Boxed<'a, Result<Reply, Error>> {
        Box::pin(async move {
            let r = self.give_up_now(w).await;
            self.orphan_if_unsure(w, &r);
            r
        })
    }

    async fn give_up_now(&self, w: &mut ClusterWait) -> Result<Reply, Error> {
        let (node, seq) = (self.cluster.node().to_string(), w.seq);
        let waited_ms = self.engine.now_ms().saturating_sub(w.started_ms);
        let mut outcome = Ok(None);
        for _ in 0..super::rename::MAX_HOPS {
            let mut here = true;
            outcome = self
                .on_lock(&w.id, false, |op| {
                    if op.row.cancel(&node, seq) {
                        op.pump();
                        return Ok(None);
                    }
                    let key = op.row.granted_to(&node, seq).map(|h| h.key);
                    here = key.is_some();
                    Ok(key)
                })
                .await;
            // Not in its row: the session may have been renamed meanwhile.
            if here || outcome.is_err() || !self.follow(w).await.unwrap_or(false) {
                break;
            }
        }
        let (id, mode) = (w.id.clone(), w.mode);
        match outcome {
            Ok(Some(key)) => self.granted(w, key).await,
            Ok(None) => {
                self.cluster.waits.forget(w.seq);
                Err(Error::Locked {
                    id,
                    mode,
                    waited_ms,
                })
            }
            Err(e) => {
                self.cluster.waits.forget(w.seq);
                Err(e)
            }
        }
    }

    /// Ends a queued request whose client hung up: out of the queue, and a
    /// grant that came meanwhile given back.
    pub(crate) async fn abandon(&self, w: &mut ClusterWait) {
        let (node, seq) = (self.cluster.node().to_string(), w.seq);
        self.cluster.waits.forget(seq);
        for _ in 0..super::rename::MAX_HOPS {
            let here = self.on_lock(&w.id, false, |op| Ok(take_back(op, &node, seq)));
            match here.await {
                Ok(true) => break,
                Ok(false) if self.follow(w).await.unwrap_or(false) => {}
                Ok(false) => break,
                Err(_) => {
                    self.orphan(&w.id, seq);
                    break;
                }
            }
        }
    }

    /// Notes request `seq` of this node on the lock of `id` as to be taken
    /// back (see [`ClusterTenant::settle_orphans`]).
    pub(super) fn orphan(&self, id: &SessionId, seq: u64) {
        let mut orphans = self.orphans.lock();
        if orphans.len() >= MAX_ORPHANS {
            // Past this, the leases and the waits' own ends free them.
            tracing::warn!(id = %id, "too many lock requests to take back; this one is left to its lease");
            return;
        }
        orphans.push((id.clone(), seq));
    }

    /// Takes back the requests the database may have kept when it stopped
    /// answering (queued, or granted to a client told it failed), once it
    /// answers again; those it still does not answer for are kept.
    pub(super) async fn settle_orphans(&self) {
        let orphans = std::mem::take(&mut *self.orphans.lock());
        let node = self.cluster.node().to_string();
        let mut left = Vec::new();
        for (id, seq) in orphans {
            if !left.is_empty() {
                left.push((id, seq));
                continue;
            }
            let settled = self.on_lock(&id, false, |op| Ok(take_back(op, &node, seq)));
            if settled.await.is_err() {
                left.push((id, seq));
            }
        }
        if !left.is_empty() {
            self.orphans.lock().extend(left);
        }
    }

    /// Gives up every lock and request of a client that disconnected.
    pub(crate) async fn disconnect(&self, client: u64) {
        let ids = self.lock_ids.lock().remove(&client).unwrap_or_default();
        let party = self.cluster.party(client);
        for id in ids {
            // Nothing of the client's in the row: it may have been renamed
            // (on another node) with the client's hold in it.
            let mut at = vec![id.clone()];
            let mut hops = 0;
            while let Some(id) = at.pop() {
                hops += 1;
                let dropped = self
                    .on_lock(&id, false, |op| {
                        let found = op.row.drop_party(&party);
                        if found {
                            op.pump();
                        }
                        Ok(found)
                    })
                    .await;
                match dropped {
                    Ok(true) => {}
                    Ok(false) if hops <= super::rename::MAX_HOPS => {
                        at.extend(self.renamed(&id).await);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not give up a disconnected client's lock; its lease or the node's heartbeat will");
                    }
                }
            }
        }
    }

    /// Remembers that `client` may hold or await the lock of `id`;
    /// whether that is new.
    pub(super) fn note_lock(&self, client: &ClientHandle, id: &SessionId) -> bool {
        self.lock_ids
            .lock()
            .entry(client.id())
            .or_default()
            .insert(id.clone())
    }

    /// Forgets a [`Self::note_lock`] that came to nothing (the request was
    /// refused), so a disconnect does not visit ids it never held.
    fn unnote_lock(&self, client: &ClientHandle, id: &SessionId) {
        let mut ids = self.lock_ids.lock();
        if let Some(set) = ids.get_mut(&client.id()) {
            set.remove(id);
            if set.is_empty() {
                ids.remove(&client.id());
            }
        }
    }

    /// Runs `op` on the lock row of `id` (with the session row when
    /// `with_session`, which the working copy then holds) under this node's
    /// turn on the id: expired leases and dead nodes' holds are dropped and
    /// the lock handed on first; then what `op` changed is written back,
    /// at the revisions the rows were at — if another node wrote in
    /// between, all of it is done again on the new rows.
    ///
    /// With the session, the rows this node's last lock operation on the
    /// id left are used without reading them (see `kept.rs`): the write
    /// checks both rows' revisions, and when they changed it answers with
    /// the rows as they are, so a lock operation is one round trip to the
    /// database when no other node came between, and two when one did.
    pub(super) async fn on_lock<T>(
        &self,
        id: &SessionId,
        with_session: bool,
        op: impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.on_lock_with(id, with_session, None, op).await
    }

    /// [`Self::on_lock`] with the session, for a lock request: when no
    /// rows are kept, the grant `blind` describes is written first, on
    /// rows not read (it goes through only if the lock is free and, if
    /// asked, the session there), and `op` then finds the request granted
    /// — one round trip — or runs on the rows the write sent back.
    pub(super) async fn on_lock_asking<T>(
        &self,
        id: &SessionId,
        blind: &Blind<'_>,
        op: impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.on_lock_with(id, true, Some(blind), op).await
    }

    async fn on_lock_with<T>(
        &self,
        id: &SessionId,
        with_session: bool,
        blind: Option<&Blind<'_>>,
        mut op: impl FnMut(&mut Op<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let ids = std::slice::from_ref(id);
        let _turn = self.lock_turns(ids).await;
        let _gate = self.gate.read().await;
        // Rows not read now: kept (checked by the write), or sent back by
        // a write that found the rows changed, or as a blind grant left
        // them (both as good as read).
        let mut known = if with_session {
            self.kept.take(id, self.engine.now_ms()).map(|r| (r, false))
        } else {
            self.kept.forget(id);
            None
        };
        if let (None, Some(blind)) = (&known, blind) {
            known = self
                .blind_grant(id, blind)
                .await
                .map_err(DbError::into_error)?
                .map(|r| (r, true));
        }
        for _ in 0..super::exec::MAX_ATTEMPTS {
            let checked = known.as_ref().is_none_or(|(_, read)| *read);
            let (loaded, lock) = match known.take() {
                Some((rows, _)) => (Some(rows.loaded()), rows.lock),
                None if with_session => {
                    let (s, l) = self.load_with_lock(id).await.map_err(DbError::into_error)?;
                    (Some(s), l)
                }
                None => (None, self.load_lock(id).await.map_err(DbError::into_error)?),
            };
            let mut row = lock;
            let mut rev = 0;
            let mut as_read = None;
            if let Some(mut l) = loaded {
                rev = l.as_ref().map_or(0, |l| l.rev);
                as_read = l.as_ref().map(|l| (l.rev, l.session.clone()));
                if let Some(l) = &mut l {
                    l.held_until_ms = row.held_until_ms();
                }
                self.put_in_copy(id, l, self.engine.now_ms());
            }
            let need = row.waiters.len() as u64 + 2;
            self.cluster
                .ensure_keys(row.last_key, need)
                .await
                .map_err(DbError::into_error)?;
            let before = row.clone();
            let now = self.engine.now_ms();
            let mut o = Op::new(&mut row, now, self);
            let result = op(&mut o);
            let (handed, keep_session) = o.finish();
            let mut session = None;
            if with_session {
                let mut writes = self.collect_writes(ids, &[rev]);
                if keep_session {
                    session = writes.pop().and_then(|w| w.session);
                }
            }
            let granted = row.holders.iter().any(|h| !before.holders.contains(h));
            let lock_write =
                (row != before).then(|| self.lock_write(id, &before, row, handed, granted));
            let write = Write {
                id: id.clone(),
                session,
                lock: lock_write,
            };
            let removes = write
                .session
                .as_ref()
                .is_some_and(|sw| sw.session.is_none() && sw.rev != 0);
            if !with_session || removes {
                if !checked {
                    // A removal is written only on rows read: read them.
                    continue;
                }
                match self.write(vec![write]).await {
                    Ok(()) => return result,
                    Err(DbError::Conflict) => continue,
                    Err(e) => return Err(e.into_error()),
                }
            }
            if checked && write.session.is_none() && write.lock.is_none() {
                self.kept.keep(
                    id,
                    Rows {
                        lock: before,
                        session: as_read,
                    },
                );
                return result;
            }
            match self.step(&write, rev, before.rev).await {
                Ok(Stepped::Written { rev, lock_rev, .. }) => {
                    let session = match write.session.as_ref().and_then(|w| w.session.clone()) {
                        Some(s) => Some((rev, s)),
                        None => as_read,
                    };
                    let mut lock = write.lock.as_ref().map_or(before, |l| l.row.clone());
                    lock.rev = lock_rev;
                    self.written(std::slice::from_ref(&write));
                    self.kept.keep(id, Rows { lock, session });
                    return result;
                }
                Ok(Stepped::Changed(rows)) => known = Some((rows, true)),
                // A deadlock or a serialisation failure: read again.
                Err(DbError::Conflict) => {}
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// Grants the request `b` describes on rows not read, if the lock is
    /// free (see `sessiond_step`): the rows then, or the rows as they
    /// are when it was not free. None: not tried (past a quota: the
    /// request, on rows read, says which).
    async fn blind_grant(&self, id: &SessionId, b: &Blind<'_>) -> Result<Option<Rows>, DbError> {
        if self
            .engine
            .room_for_lock(id, true, b.owner, b.seq.1)
            .is_err()
        {
            return Ok(None);
        }
        self.cluster.ensure_keys(0, 2).await?;
        let now = self.engine.now_ms();
        let mut row = LockRow::default();
        let cluster = &self.cluster;
        row.ask(
            b.mode,
            b.party.clone(),
            b.lease,
            b.owner.cloned(),
            b.seq,
            now,
            &mut |above| cluster.take_key(above),
        );
        let write = Write {
            id: id.clone(),
            session: None,
            lock: Some(self.lock_write(id, &LockRow::default(), row, Vec::new(), true)),
        };
        let need = if b.need_session { -1 } else { -2 };
        let stepped = match self.step(&write, need, -1).await {
            // The session it needs was not there: read, and decide on that.
            Err(DbError::Conflict) => return Ok(None),
            other => other?,
        };
        match stepped {
            Stepped::Written {
                lock_rev, session, ..
            } => {
                self.written(std::slice::from_ref(&write));
                let mut lock = write.lock.map(|l| l.row).unwrap_or_default();
                lock.rev = lock_rev;
                Ok(Some(Rows { lock, session }))
            }
            Stepped::Changed(rows) => Ok(Some(rows)),
        }
    }

    /// Writes what one lock operation on rows of one id changed
    /// (`sessiond_step`): the session row and the lock row each written,
    /// or only checked when unchanged, at the revisions `rev` and
    /// `lock_rev` (-1: a grant on rows not read, see [`Self::blind_grant`]).
    async fn step(&self, w: &Write, rev: i64, lock_rev: i64) -> Result<Stepped, DbError> {
        let now = super::row::to_sql(self.engine.now_ms());
        let tenant = self.name.as_str();
        let id = w.id.as_bytes();
        let put = w.session.as_ref().and_then(|sw| sw.session.as_ref());
        let lock = w.lock.as_ref().map(|l| l.params());
        let (has_put, has_lock) = (put.is_some(), lock.is_some());
        let r = self
            .cluster
            .pool
            .run(|c| async move {
                let columns = put.map(|s| self.session_params(id, s, c.dialect()));
                let mut params = vec![P::Text(tenant), P::Bytes(id), P::I64(rev), P::Bool(has_put)];
                match &columns {
                    Some(columns) => params.extend(columns.args()),
                    None => {
                        params.extend([P::OptI64(None); 7]);
                        params.push(P::OptI16(None));
                        params.extend([P::OptBytes(None); 3]);
                        params.push(P::Kinds(None));
                        params.extend([P::OptList(None); 2]);
                    }
                }
                // The revision the lock row was at (-1: not read), then
                // the row as written.
                params.extend([P::I64(lock_rev), P::Bool(has_lock)]);
                match &lock {
                    Some(l) => params.extend_from_slice(&l.args()[1..]),
                    None => {
                        params.extend([P::OptI64(None); 2]);
                        params.extend([P::OptBytes(None); 2]);
                        params.extend([P::Texts(None); 2]);
                        params.push(P::OptBool(None));
                    }
                }
                params.push(P::I64(now));
                c.one(Q::St(St::Step), &params).await
            })
            .await?;
        // The rows: those found changed, or the session read after a
        // grant on rows not read (all null after any other write).
        let rows = decode_rows(&r, super::statements::STEP_COLUMN_COUNT)?;
        if r.bool(0)? {
            return Ok(Stepped::Written {
                rev: r.i64(1)?,
                lock_rev: r.i64(2)?,
                session: rows.session,
            });
        }
        Ok(Stepped::Changed(rows))
    }

    /// The write of `row` (read as `before`), with the wake-ups of
    /// `handed`.
    pub(super) fn lock_write(
        &self,
        id: &SessionId,
        before: &LockRow,
        row: LockRow,
        handed: Vec<Handed>,
        granted: bool,
    ) -> LockWrite {
        let len = id.as_bytes().len();
        let (was, is) = (before.usage(len), row.usage(len));
        let mut w = LockWrite {
            row,
            remote: Vec::new(),
            local: Vec::new(),
            sync: granted,
            handed_away: 0,
            usage: (is.0 - was.0, is.1 - was.1),
            moved_to: None,
        };
        for h in handed {
            if h.node == self.cluster.node() {
                w.local.push((h.seq, Woken::Granted(h.key)));
            } else {
                w.handed_away += 1;
                w.remote.push((
                    wake::channel(&h.node),
                    wake::payload(h.seq, Woken::Granted(h.key)),
                ));
            }
        }
        w
    }

    /// The lock row of `id` (an empty one at revision 0 if there is none).
    pub(super) async fn load_lock(&self, id: &SessionId) -> Result<LockRow, DbError> {
        let mut rows = self.load_locks(std::slice::from_ref(id)).await?;
        Ok(rows.remove(id).unwrap_or_default())
    }

    /// The session `id` (None: there is no row) and its lock row, in one
    /// statement, so both are as of one moment: a lock seen released
    /// comes with the data its last holder wrote.
    pub(super) async fn load_with_lock(
        &self,
        id: &SessionId,
    ) -> Result<(Option<row::Loaded>, LockRow), DbError> {
        let tenant = self.name.as_str();
        let key = id.as_bytes();
        let r = self
            .cluster
            .pool
            .one(Q::St(St::LoadWithLock), &[P::Text(tenant), P::Bytes(key)])
            .await?;
        let rows = decode_rows(&r, 0)?;
        Ok((rows.loaded(), rows.lock))
    }

    /// The lock rows of `ids`, in one statement (empty ones at revision 0
    /// for those that have none).
    pub(super) async fn load_locks(
        &self,
        ids: &[SessionId],
    ) -> Result<HashMap<SessionId, LockRow>, DbError> {
        let tenant = self.name.as_str();
        let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
        let keys = &keys;
        let rows = self
            .cluster
            .pool
            .query(Q::St(St::LoadLocks), &[P::Text(tenant), P::Refs(keys)])
            .await?;
        let mut out: HashMap<SessionId, LockRow> = ids
            .iter()
            .map(|id| (id.clone(), LockRow::default()))
            .collect();
        for r in &rows {
            let id = r.bytes(0)?;
            out.insert(SessionId::new(Bytes::from(id)), decode_lock(r)?);
        }
        Ok(out)
    }

    /// For sessions a command removed: their lock rows, emptied — holders
    /// lose their keys, waiters are told the session is gone — to be
    /// written with the removal.
    pub(super) async fn removed_locks(&self, writes: &mut [Write]) -> Result<(), DbError> {
        for w in writes.iter_mut() {
            let removed = w
                .session
                .as_ref()
                .is_some_and(|s| s.session.is_none() && s.rev != 0);
            // A lock row written with the removal already was emptied.
            if !removed || w.lock.is_some() {
                continue;
            }
            let mut row = self.load_lock(&w.id).await?;
            if row.holders.is_empty() && row.waiters.is_empty() {
                continue;
            }
            let before = row.clone();
            let told: Vec<(String, u64)> = row
                .waiters
                .drain(..)
                .map(|x| (x.party.node, x.seq))
                .collect();
            row.holders.clear();
            let mut lw = self.lock_write(&w.id, &before, row, Vec::new(), false);
            self.tell_destroyed(&mut lw, told);
            w.lock = Some(lw);
        }
        Ok(())
    }

    /// Adds to `lw` the wake-ups of the requests `told` (node, request)
    /// that their session is gone.
    pub(super) fn tell_destroyed(&self, lw: &mut LockWrite, told: Vec<(String, u64)>) {
        for (node, seq) in told {
            if node == self.cluster.node() {
                lw.local.push((seq, Woken::Destroyed));
            } else {
                lw.remote
                    .push((wake::channel(&node), wake::payload(seq, Woken::Destroyed)));
            }
        }
    }
}

/// How many requests a tenant's node keeps to take back at most.
const MAX_ORPHANS: usize = 10_000;

/// Takes request `seq` of `node` out of the row: out of the queue, or its
/// grant given back. Whether it was there.
fn take_back(op: &mut Op<'_>, node: &str, seq: u64) -> bool {
    let mut here = op.row.cancel(node, seq);
    if let Some(key) = op.row.granted_to(node, seq).map(|h| h.key) {
        op.row.release(key);
        here = true;
    }
    op.pump();
    here
}

/// A request for the lock of `id` on its row (the session, when the
/// request needs one, in the working copy): granted, refused as busy, or
/// queued as `seq` (None: it does not wait).
fn request(
    op: &mut Op<'_>,
    id: &SessionId,
    ask: &Ask,
    party: &Party,
    lease: u64,
    (seq, wait): (u64, bool),
) -> Result<Got, Error> {
    let node = op.tenant.cluster.node();
    if let Some(k) = op.row.granted_to(node, seq).map(|h| h.key) {
        // Granted by the write that came before the rows were read (see
        // `on_lock_asking`): answered as if granted now — and given back
        // if it cannot be.
        let answer = create_if_asked(op, id, ask).and_then(|()| answer_grant(op, id, ask, k));
        return match answer {
            Ok(r) => Ok(Got::Reply(r)),
            Err(e) => {
                op.row.release(k);
                op.pump();
                Err(e)
            }
        };
    }
    create_if_asked(op, id, ask)?;
    if ask.require_session {
        op.run(Command::Touch { id: id.clone() })?;
    }
    let fresh = op.row.holders.is_empty() && op.row.waiters.is_empty();
    op.tenant
        .engine
        .room_for_lock(id, fresh, ask.owner.as_ref(), wait)?;
    let max_waiters = op.tenant.engine.config().max_lock_waiters;
    if wait && op.row.waiters.len() >= max_waiters {
        return Err(Error::LimitExceeded {
            what: "the number of lock requests queued on the session",
            got: op.row.waiters.len() as u64 + 1,
            limit: max_waiters as u64,
        });
    }
    let now = op.now;
    let tenant = op.tenant;
    let mut key = |above| tenant.cluster.take_key(above);
    let asked = op.row.ask(
        ask.mode,
        party.clone(),
        lease,
        ask.owner.clone(),
        (seq, wait),
        now,
        &mut key,
    );
    match asked {
        Asked::Granted(k) => Ok(Got::Reply(match ask.then {
            Then::Key => Reply::Key(k),
            Then::Open { .. } => opened(op, id, k)?,
        })),
        Asked::Busy => Err(Error::Locked {
            id: id.clone(),
            mode: op.row.mode().unwrap_or(ask.mode),
            waited_ms: 0,
        }),
        Asked::Queued => Ok(Got::Queued(op.row.next_expiry_ms())),
    }
}

/// A door's request `seq` for a lock key inside a transaction: granted at
/// once or refused as taken, never queued.
pub(super) fn lock_key_now(
    op: &mut Op<'_>,
    id: &SessionId,
    owner: Bytes,
    lease_ms: Option<u64>,
    wait_ms: Option<u64>,
    (party, seq): (&Party, u64),
) -> Result<Reply, Error> {
    let engine = &op.tenant.engine;
    let ask = Ask::key(engine.config(), owner, lease_ms, wait_ms);
    let lease = engine.lock_terms(id, ask.wait_ms, ask.lease_ms, ask.owner.as_ref())?;
    match request(op, id, &ask, party, lease, (seq, false))? {
        Got::Reply(r) => Ok(r),
        Got::Queued(_) => Err(Error::Locked {
            id: id.clone(),
            mode: LockMode::Write,
            waited_ms: 0,
        }),
    }
}

/// The lock commands that answer at once, on their row (and, for
/// `CLOSE`, the session in the working copy): `UNLOCK`, `COMMIT`,
/// `CLOSE`, and the doors' release and owner of a lock key.
pub(super) fn at_once(op: &mut Op<'_>, party: &Party, cmd: Command) -> Result<Reply, Error> {
    match cmd {
        Command::Unlock { id, key } => {
            if op.row.release(key) {
                op.pump();
                Ok(Reply::Ok)
            } else {
                Err(Error::StaleKey { id, key })
            }
        }
        Command::UnlockOwned { owner, .. } => {
            let keys: Vec<u64> = op
                .row
                .holders
                .iter()
                .filter(|h| match &owner {
                    Some(o) => h.owner.as_ref() == Some(o),
                    None => &h.party == party,
                })
                .map(|h| h.key)
                .collect();
            if keys.is_empty() && !op.row.holders.is_empty() {
                op.tenant.engine.note_refused_unlock();
            }
            let mut released = false;
            for k in keys {
                released |= op.row.release(k);
            }
            op.pump();
            Ok(Reply::Int(i64::from(released)))
        }
        Command::LockOwner { .. } => Ok(op
            .row
            .holders
            .iter()
            .find_map(|h| h.owner.clone())
            .map_or(Reply::Nil, Reply::Bulk)),
        Command::Commit { id, key } => {
            let held = op.row.downgrade(key);
            op.pump();
            if held {
                Ok(Reply::Ok)
            } else {
                Err(Error::StaleKey { id, key })
            }
        }
        Command::Close {
            id,
            key,
            data,
            sets,
        } => close(op, &id, key, data, sets),
        other => Err(Error::InvalidArgument(format!(
            "{} does not answer at once on a lock",
            other.name()
        ))),
    }
}

/// `CLOSE`: writes, then unlocks, in one statement; refused as a whole if
/// `key` does not hold the lock, or holds it only for reading and there is
/// something to write.
fn close(
    op: &mut Op<'_>,
    id: &SessionId,
    key: u64,
    data: Option<Bytes>,
    sets: Vec<(Bytes, Bytes)>,
) -> Result<Reply, Error> {
    let stale = || Error::StaleKey {
        id: id.clone(),
        key,
    };
    let mode = op.row.holder(key).ok_or_else(stale)?.mode;
    if data.is_some() || !sets.is_empty() {
        if mode == LockMode::Read {
            return Err(Error::ReadOnlyLock {
                id: id.clone(),
                key,
            });
        }
        // `key` holds the lock, which keeps the session alive if it is
        // there.
        let live = op.tenant.engine.stored(id).is_some();
        if !live {
            op.row.release(key);
            op.pump();
            return Err(Error::NoSession(id.clone()));
        }
        let mut written = Ok(Reply::Ok);
        if !sets.is_empty() {
            written = op.run(Command::SetAll {
                id: id.clone(),
                pairs: sets,
            });
        }
        if let (Ok(_), Some(data)) = (&written, data) {
            written = op.run(Command::SetData {
                id: id.clone(),
                data,
            });
        }
        if let Err(e) = written {
            // Refused whole, the lock still held: the client can write
            // less.
            op.keep_session = false;
            return Err(e);
        }
    }
    op.row.release(key);
    op.pump();
    Ok(Reply::Ok)
}

/// `OPEN … CREATE`: the session made if it is not there.
fn create_if_asked(op: &mut Op<'_>, id: &SessionId, ask: &Ask) -> Result<(), Error> {
    if let Then::Open { create: true } = ask.then {
        match op.run(Command::Create {
            id: id.clone(),
            class: None,
            data: None,
            timeout_ms: None,
        }) {
            Ok(_) | Err(Error::Exists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The answer to a request granted `key`.
fn answer_grant(op: &mut Op<'_>, id: &SessionId, ask: &Ask, key: u64) -> Result<Reply, Error> {
    match ask.then {
        Then::Key => {
            if ask.require_session {
                op.run(Command::Touch { id: id.clone() })?;
            }
            Ok(Reply::Key(key))
        }
        Then::Open { .. } => opened(op, id, key),
    }
}

/// `OPEN`'s answer for a grant of `key`: the session touched, its data
/// and variables.
fn opened(op: &mut Op<'_>, id: &SessionId, key: u64) -> Result<Reply, Error> {
    op.run(Command::Touch { id: id.clone() })?;
    let s = op
        .tenant
        .engine
        .stored(id)
        .ok_or_else(|| Error::NoSession(id.clone()))?;
    Ok(Reply::opened(key, &s))
}

/// Reads [`super::statements::LOCK_COLUMNS`] (the first of `r`'s columns
/// when `at` is 0) and then [`super::statements::SESSION_COLUMNS`], each
/// all null when there is no such row.
fn decode_rows(r: &DbRow, at: usize) -> Result<Rows, DbError> {
    let lock = if r.is_null(at)? {
        LockRow::default()
    } else {
        decode_lock_at(r, at)?
    };
    let at = at + super::statements::LOCK_COLUMN_COUNT;
    let session = if r.is_null(at)? {
        None
    } else {
        let l = row::decode_at(r, at)?.1;
        Some((l.rev, l.session))
    };
    Ok(Rows { lock, session })
}

/// Reads one row of [`super::statements::LOCK_COLUMNS`].
fn decode_lock(r: &DbRow) -> Result<LockRow, DbError> {
    decode_lock_at(r, 0)
}

/// Reads [`super::statements::LOCK_COLUMNS`] from column `at` on.
fn decode_lock_at(r: &DbRow, at: usize) -> Result<LockRow, DbError> {
    let damaged = |what: &str| DbError::Failed(format!("a damaged {what} column"));
    Ok(LockRow {
        rev: r.i64(at + 1)?,
        last_key: row::from_sql(r.i64(at + 2)?),
        holders: super::locks::decode_holders(&r.bytes(at + 3)?)
            .ok_or_else(|| damaged("holders"))?,
        waiters: super::locks::decode_waiters(&r.bytes(at + 4)?)
            .ok_or_else(|| damaged("waiters"))?,
    })
}
