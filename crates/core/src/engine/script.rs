//! Functions ([`Command::Call`]): a function runs ordinary commands on the
//! sessions it names, as one step, all or nothing.
//!
//! The named sessions' shards are claimed in index order (as a
//! transaction's are), so no other client sees a function half done. Their
//! sessions are copied first; the function's commands run with the log
//! held back ([`Held`]); when it succeeds, each session it changed is
//! logged once, whole (one record per session, so a crash keeps all of a
//! one-session function or none of it); when it fails, the copies are put
//! back and nothing is logged.

use std::sync::Arc;

use bytes::Bytes;

use super::Engine;
use crate::client::ClientHandle;
use crate::command::{Command, Touches};
use crate::engine::Outcome;
use crate::error::Error;
use crate::id::SessionId;
use crate::journal::{Held, Mutation};
use crate::reply::Reply;
use crate::script::{CallSpec, Func, ScriptHost, Txn};
use crate::session::Session;

/// Most sessions one call may name.
pub const MAX_CALL_SESSIONS: usize = 64;

impl Engine {
    /// From now on, [`Command::Call`] runs functions on `host`. Returns
    /// false if a host was already installed.
    pub fn install_scripts(&self, host: Arc<dyn ScriptHost>) -> bool {
        self.scripts.set(host).is_ok()
    }

    pub(super) fn call(
        &self,
        client: &ClientHandle,
        func: &Func,
        ids: &[SessionId],
        args: &[Bytes],
    ) -> Result<Reply, Error> {
        self.run_call(client, func, ids, args, false)
            .unwrap_or(Err(Error::NotInPlace))
    }

    /// Runs a [`Command::Call`] in place, on the calling (request) thread,
    /// if its sessions are free now and it ends within the host's short
    /// slice; None otherwise (nothing of it kept): the caller then runs
    /// the command as usual, off the request workers. Any other command:
    /// None.
    pub fn call_in_place(
        &self,
        client: &ClientHandle,
        cmd: &Command,
    ) -> Option<Result<Reply, Error>> {
        let Command::Call { func, ids, args } = cmd else {
            return None;
        };
        match self.run_call(client, func, ids, args, true) {
            None | Some(Err(Error::NotInPlace)) => None,
            done => done,
        }
    }

    /// A call, all or nothing; None when `in_place` and another thread
    /// holds one of its sessions' shards.
    fn run_call(
        &self,
        client: &ClientHandle,
        func: &Func,
        ids: &[SessionId],
        args: &[Bytes],
        in_place: bool,
    ) -> Option<Result<Reply, Error>> {
        let Some(host) = self.scripts.get() else {
            return Some(Err(Error::NoFunction(format!(
                "no function '{}': this server loads none (set plugins_dir)",
                String::from_utf8_lossy(func.name())
            ))));
        };
        if ids.len() > MAX_CALL_SESSIONS {
            return Some(Err(Error::LimitExceeded {
                what: "the number of sessions one call names",
                got: ids.len() as u64,
                limit: MAX_CALL_SESSIONS as u64,
            }));
        }
        for id in ids {
            if let Err(e) = self.check_id(id) {
                return Some(Err(e));
            }
        }
        let shards: Vec<usize> = ids.iter().map(|id| self.store.index_of(id)).collect();
        let _claim = if in_place {
            self.store.try_claim(shards)?
        } else {
            self.store.claim(shards, false)
        };
        let mut distinct: Vec<&SessionId> = ids.iter().collect();
        distinct.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        distinct.dedup();
        let before: Vec<(SessionId, Option<Session>)> = distinct
            .iter()
            .map(|&id| (id.clone(), self.stored(id)))
            .collect();
        let result = {
            let _held = Held::start();
            let mut tx = EngineTxn {
                engine: self,
                client,
                ids,
            };
            let spec = CallSpec {
                func,
                ids,
                args,
                in_place,
            };
            host.call(spec, &mut tx)
        };
        Some(match result {
            Ok(reply) => {
                for (id, was) in before {
                    self.record_outcome(id, was.as_ref());
                }
                Ok(reply)
            }
            Err(e) => {
                for (id, was) in before {
                    self.put_back(&id, was);
                }
                Err(e)
            }
        })
    }

    /// Logs what a call left of session `id`, if it changed it.
    fn record_outcome(&self, id: SessionId, was: Option<&Session>) {
        let shard = self.store.lock(&id);
        let now = shard.sessions.get(&id);
        let changed = match (was, now) {
            (None, None) => false,
            (Some(a), Some(b)) => {
                a.version != b.version || a.timeout_ms != b.timeout_ms || a.flags != b.flags
            }
            _ => true,
        };
        if !changed {
            return;
        }
        let m = match now {
            Some(s) => Mutation::Put {
                id,
                session: Session::clone(s),
            },
            None => Mutation::Remove { id },
        };
        self.journal.record(|| m);
    }

    /// Puts session `id` back as it was before a call that failed.
    fn put_back(&self, id: &SessionId, was: Option<Session>) {
        let mut shard = self.store.lock(id);
        shard.take(id);
        if let Some(s) = was {
            shard.insert_unlogged(id.clone(), s);
        }
    }
}

/// A call's commands: only on its sessions, never waiting, taking no lock.
struct EngineTxn<'a> {
    engine: &'a Engine,
    client: &'a ClientHandle,
    ids: &'a [SessionId],
}

impl Txn for EngineTxn<'_> {
    fn run(&mut self, cmd: Command) -> Result<Reply, Error> {
        let allowed = match cmd.touches() {
            Touches::Nothing => true,
            Touches::One(id) if self.ids.contains(id) => true,
            Touches::One(id) => {
                return Err(Error::InvalidArgument(format!(
                    "session '{id}' is not one the call named: a function works only on the sessions it is called with (a Redis script on the keys it declares in KEYS)"
                )))
            }
            Touches::Two(..) | Touches::All | Touches::Unsure => false,
        };
        if !allowed {
            return Err(Error::InvalidArgument(format!(
                "{} is not allowed in a function: a function runs commands only on the sessions it was called with, and cannot walk, rename or flush",
                cmd.name()
            )));
        }
        if takes_lock(&cmd) {
            return Err(Error::InvalidArgument(format!(
                "{} is not allowed in a function: a function cannot take, release or commit a lock",
                cmd.name()
            )));
        }
        match self.engine.execute(self.client, cmd)? {
            Outcome::Reply(reply) => Ok(reply),
            Outcome::Wait(pending) => self.engine.give_up(&pending),
        }
    }

    fn now_ms(&self) -> u64 {
        self.engine.now_ms()
    }

    fn find(
        &mut self,
        name: &[u8],
        value: &[u8],
        cursor: &[u8],
        count: usize,
    ) -> Result<Reply, Error> {
        if self
            .engine
            .working_copy
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Error::InvalidArgument(
                "sessiond.find is not available on a cluster node (its sessions are in the database): find with SESSION.FIND, then call the function on each".into(),
            ));
        }
        let now = self.engine.now_ms();
        self.engine
            .find_page((name, value), cursor, count, false, now)
    }
}

/// Whether a command works a lock: a function's effect is undone when it
/// fails, a lock handed on is not.
fn takes_lock(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Lock { .. }
            | Command::Unlock { .. }
            | Command::LockOwned { .. }
            | Command::UnlockOwned { .. }
            | Command::Commit { .. }
            | Command::Open { .. }
            | Command::Close { .. }
    )
}
