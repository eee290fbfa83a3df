//! `REGENERATE` on a cluster node: the session moves to its new id with
//! its lock — holders keep their keys, queued requests keep their places —
//! in one transaction: the old row removed, the new one inserted (it must
//! not exist), the lock row's holders and queue moved to the new id's lock
//! row, and the old lock row left empty with `moved_to` naming the new id.
//! Requests queued on other nodes are told to look again; a request that
//! finds itself gone from its row follows `moved_to` there.

use sessiond_core::{ClientHandle, Command, Error, Outcome, Reply, SessionId};

use super::exec::{ClusterTenant, MAX_ATTEMPTS};
use super::outcome::{ClusterWait, Write};
use super::pool::DbError;
use super::wake::{self, Woken};

/// How many renames a queued request follows at once, at most.
pub(super) const MAX_HOPS: usize = 8;

impl ClusterTenant {
    pub(super) async fn regenerate(
        &self,
        client: &ClientHandle,
        cmd: Command,
    ) -> Result<Reply, Error> {
        let Command::Regenerate { id, new_id } = &cmd else {
            return Err(Error::InvalidArgument("not REGENERATE".into()));
        };
        let mut ids = vec![id.clone()];
        ids.extend(new_id.iter().cloned());
        ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        ids.dedup();
        let _turns = self.turns(&ids).await;
        let _gate = self.gate.read().await;
        for _ in 0..MAX_ATTEMPTS {
            let (rows, old_lock) = tokio::join!(self.load(&ids), self.load_lock(id));
            let mut rows = rows.map_err(DbError::into_error)?;
            let old_lock = old_lock.map_err(DbError::into_error)?;
            let mut all = ids.clone();
            let mut revs = Vec::with_capacity(ids.len() + 1);
            let now = self.engine.now_ms();
            for i in &ids {
                let loaded = rows.remove(i);
                revs.push(loaded.as_ref().map_or(0, |l| l.rev));
                self.put_in_copy(i, loaded, now);
            }
            let reply = match self.engine.execute(client, cmd.clone()) {
                Ok(Outcome::Reply(r)) => Ok(r),
                Ok(Outcome::Wait(pending)) => self.engine.give_up(&pending),
                Err(e) => Err(e),
            };
            let new = match &reply {
                Ok(Reply::Bulk(b)) => Some(SessionId::new(b.clone())),
                _ => None,
            };
            if let Some(n) = &new {
                if !all.contains(n) {
                    all.push(n.clone());
                    revs.push(0);
                }
            }
            let mut writes = self.collect_writes(&all, &revs);
            let Some(new) = new else {
                return reply;
            };
            if !old_lock.holders.is_empty() || !old_lock.waiters.is_empty() {
                let new_before = self.load_lock(&new).await.map_err(DbError::into_error)?;
                self.move_lock(&mut writes, id, &new, old_lock, new_before);
            }
            match self.write(writes).await {
                Ok(()) => return reply,
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// Adds to `writes` the move of the lock `old` of `from` onto `to`
    /// (whose lock row is `to_before`): what another request held or
    /// awaited on `to` (an id with no session) gives way, as on one node.
    fn move_lock(
        &self,
        writes: &mut Vec<Write>,
        from: &SessionId,
        to: &SessionId,
        old: super::locks::LockRow,
        to_before: super::locks::LockRow,
    ) {
        let mut moved = to_before.clone();
        moved.holders = old.holders.clone();
        moved.waiters = old.waiters.clone();
        moved.last_key = moved.last_key.max(old.last_key);
        let mut emptied = old.clone();
        emptied.holders.clear();
        emptied.waiters.clear();
        // This node's clients now hold or await `to`.
        {
            let node = self.cluster.node();
            let mut by_client = self.lock_ids.lock();
            let parties = old
                .holders
                .iter()
                .map(|h| &h.party)
                .chain(old.waiters.iter().map(|w| &w.party));
            for p in parties.filter(|p| p.node == node) {
                by_client.entry(p.client).or_default().insert(to.clone());
            }
        }
        let mut old_write = self.lock_write(from, &old, emptied, Vec::new(), false);
        old_write.moved_to = Some(to.clone());
        for w in &old.waiters {
            if w.party.node == self.cluster.node() {
                old_write.local.push((w.seq, Woken::Recheck));
            } else {
                old_write.remote.push((
                    wake::channel(&w.party.node),
                    wake::payload(w.seq, Woken::Recheck),
                ));
            }
        }
        let new_write = self.lock_write(to, &to_before, moved, Vec::new(), false);
        for (id, lock) in [(from, old_write), (to, new_write)] {
            match writes.iter_mut().find(|w| &w.id == id) {
                Some(w) => w.lock = Some(lock),
                None => writes.push(Write {
                    id: id.clone(),
                    session: None,
                    lock: Some(lock),
                }),
            }
        }
    }

    /// Where the lock row `id` was moved by `REGENERATE`, if it was.
    pub(super) async fn moved_to(&self, id: &SessionId) -> Result<Option<SessionId>, Error> {
        let tenant = self.name.as_str();
        let key = id.as_bytes();
        let to: Option<Vec<u8>> = self
            .cluster
            .pool
            .run(|c| async move {
                let sql = "SELECT moved_to FROM sessiond_lock WHERE tenant = $1 AND id = $2";
                let rows = c
                    .query(
                        super::db::Q::both(sql),
                        &[super::db::P::Text(tenant), super::db::P::Bytes(key)],
                    )
                    .await?;
                match rows.first() {
                    Some(r) => r.opt_bytes(0),
                    None => Ok(None),
                }
            })
            .await
            .map_err(DbError::into_error)?;
        Ok(to
            .map(|b| SessionId::new(bytes::Bytes::from(b)))
            .filter(|to| to != id))
    }

    /// A queued request that is not in its row any more: if the session
    /// was renamed, it now waits under the new id (true).
    pub(super) async fn follow(&self, w: &mut ClusterWait) -> Result<bool, Error> {
        match self.moved_to(&w.id).await? {
            Some(to) => {
                w.id = to;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The id the lock row of `id` was renamed to, if it was.
    pub(super) async fn renamed(&self, id: &SessionId) -> Option<SessionId> {
        self.moved_to(id).await.ok().flatten()
    }
}
