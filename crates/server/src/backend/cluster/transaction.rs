//! Transactions that hold lock commands (Redis `MULTI`/`EXEC`, and the
//! doors' multi-key commands such as `DEL sess lock`): every session row
//! and lock row they touch is read in one go, the commands run in order —
//! session commands on the working copy, lock commands on their rows by
//! the same rules as alone — and everything that changed is written back
//! in one database transaction, each row at the revision read. Nothing
//! waits inside a transaction: a lock key that is taken answers as taken,
//! as on the embedded store.

use std::collections::HashMap;

use sessiond_core::{ClientHandle, Command, Error, Outcome, Reply, SessionId, Touches};

use super::exec::{is_lock_command, ClusterTenant, MAX_ATTEMPTS};
use super::locking::{self, Op};
use super::locks::{Handed, LockRow};
use super::outcome::Write;
use super::pool::DbError;

impl ClusterTenant {
    /// Runs `commands` as one step on the sessions `ids` and the lock rows
    /// `lock_ids` (both sorted, without repeats; `lock_ids` among `ids`),
    /// unless a watched session changed.
    pub(super) async fn transaction(
        &self,
        client: &ClientHandle,
        watched: Vec<(SessionId, Option<u64>)>,
        commands: Vec<Command>,
        ids: Vec<SessionId>,
        lock_ids: Vec<SessionId>,
    ) -> Result<Reply, Error> {
        let _turns = self.turns(&ids).await;
        let _gate = self.gate.read().await;
        let party = self.cluster.party(client.id());
        for _ in 0..MAX_ATTEMPTS {
            // The locks first, then the sessions: a lock seen released
            // comes with the data its last holder wrote in the same
            // statement as the release.
            let mut locks = self
                .load_locks(&lock_ids)
                .await
                .map_err(DbError::into_error)?;
            let mut rows = self.load(&ids).await.map_err(DbError::into_error)?;
            let mut revs = Vec::with_capacity(ids.len());
            let now = self.engine.now_ms();
            let mut held = std::collections::HashSet::new();
            for id in &ids {
                let loaded = rows.remove(id);
                revs.push(loaded.as_ref().map_or(0, |l| l.rev));
                if self.put_in_copy(id, loaded, now) {
                    held.insert(id.clone());
                }
            }
            let (last_key, need) = locks.values().fold((0, 0), |(k, n), r| {
                (k.max(r.last_key), n + r.waiters.len() as u64 + 2)
            });
            if let Err(e) = self.cluster.ensure_keys(last_key, need).await {
                self.collect_writes(&ids, &revs);
                return Err(e.into_error());
            }
            let before: HashMap<SessionId, LockRow> = locks.clone();
            let mut handed: HashMap<SessionId, Vec<Handed>> = HashMap::new();
            for (id, row) in &mut locks {
                let (h, _) = Op::new(row, now, self).finish();
                handed.entry(id.clone()).or_default().extend(h);
            }
            // The watched sessions, checked by the engine's own rule.
            let check = Command::Exec {
                watched: watched.clone(),
                commands: Vec::new(),
            };
            if let Ok(Outcome::Reply(Reply::Exec(None))) = self.engine.execute(client, check) {
                self.collect_writes(&ids, &revs);
                return Ok(Reply::Exec(None));
            }
            let mut results = Vec::with_capacity(commands.len());
            // The lock keys asked for: taken back should the write's
            // outcome be unknown.
            let mut asked = Vec::new();
            for cmd in commands.iter().cloned() {
                let result = match lock_command_id(&cmd).cloned() {
                    None => self.engine.execute_now(client, cmd),
                    Some(id) => match locks.get_mut(&id) {
                        Some(row) => {
                            let kept = self.engine.stored(&id);
                            let mut op = Op::new(row, now, self);
                            let r = self.lock_step(client, &mut op, &party, cmd, &mut asked);
                            let (h, keep_session) = op.finish();
                            if !keep_session {
                                // A `CLOSE` refused whole writes nothing
                                // of its own.
                                self.engine.load_held(&id, kept, held.contains(&id));
                            }
                            handed.entry(id).or_default().extend(h);
                            r
                        }
                        None => Err(Error::InvalidArgument(format!(
                            "{}: its lock was not read with the transaction",
                            cmd.name()
                        ))),
                    },
                };
                results.push(result);
            }
            let mut writes = self.collect_writes(&ids, &revs);
            let removed: Vec<SessionId> = writes
                .iter()
                .filter(|w| w.session.as_ref().is_some_and(|s| s.session.is_none()))
                .map(|w| w.id.clone())
                .collect();
            for (id, mut row) in locks {
                let was = &before[&id];
                let told = if removed.contains(&id) {
                    // A session removed takes its lock with it.
                    row.holders.clear();
                    row.waiters
                        .drain(..)
                        .map(|x| (x.party.node, x.seq))
                        .collect()
                } else {
                    Vec::new()
                };
                if row == *was {
                    continue;
                }
                let granted = row.holders.iter().any(|h| !was.holders.contains(h));
                let h = handed.remove(&id).unwrap_or_default();
                let mut lw = self.lock_write(&id, was, row, h, granted);
                self.tell_destroyed(&mut lw, told);
                match writes.iter_mut().find(|w| w.id == id) {
                    Some(w) => w.lock = Some(lw),
                    None => writes.push(Write {
                        id,
                        session: None,
                        lock: Some(lw),
                    }),
                }
            }
            let result = match self.removed_locks(&mut writes).await {
                Ok(()) => self.write(writes).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(Reply::Exec(Some(results))),
                Err(DbError::Conflict) => continue,
                Err(e) => {
                    for (id, seq) in asked {
                        self.orphan(&id, seq);
                    }
                    return Err(e.into_error());
                }
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// One lock command of a transaction on its row: as alone, but a
    /// request for a lock key does not wait.
    fn lock_step(
        &self,
        client: &ClientHandle,
        op: &mut Op<'_>,
        party: &super::locks::Party,
        cmd: Command,
        asked: &mut Vec<(SessionId, u64)>,
    ) -> Result<Reply, Error> {
        match cmd {
            Command::LockOwned {
                id,
                owner,
                lease_ms,
                wait_ms,
            } => {
                let seq = self.cluster.waits.number();
                asked.push((id.clone(), seq));
                let reply = locking::lock_key_now(op, &id, owner, lease_ms, wait_ms, (party, seq))?;
                self.note_lock(client, &id);
                Ok(reply)
            }
            other => locking::at_once(op, party, other),
        }
    }
}

/// The id whose lock row a command works on, if it is a lock command.
fn lock_command_id(cmd: &Command) -> Option<&SessionId> {
    match cmd.touches() {
        Touches::One(id) if is_lock_command(cmd) => Some(id),
        _ => None,
    }
}
