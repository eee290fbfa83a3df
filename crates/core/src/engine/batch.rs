//! Transactions: a list of commands run as one step (Redis `MULTI`/`EXEC`).
//!
//! The shards of every session the commands touch are claimed in index
//! order ([`crate::store::Store::claim`]) before the first runs and let go
//! after the last, so no other client's command sees part of it; then each
//! command runs as it would alone.

use super::Engine;
use crate::client::ClientHandle;
use crate::command::{Command, Touches};
use crate::engine::Outcome;
use crate::error::Error;
use crate::id::SessionId;
use crate::reply::Reply;

impl Engine {
    pub(super) fn exec(
        &self,
        client: &ClientHandle,
        watched: Vec<(SessionId, Option<u64>)>,
        commands: Vec<Command>,
    ) -> Result<Reply, Error> {
        let mut shards: Vec<usize> = watched
            .iter()
            .map(|(id, _)| self.store.index_of(id))
            .collect();
        let mut all = false;
        for cmd in &commands {
            match cmd.touches() {
                Touches::Nothing => {}
                Touches::One(id) => shards.push(self.store.index_of(id)),
                Touches::Two(a, b) => {
                    shards.push(self.store.index_of(a));
                    shards.push(self.store.index_of(b));
                }
                Touches::All => all = true,
                Touches::Unsure => return Err(not_in_transaction(cmd.name())),
            }
        }
        let _claim = self.store.claim(shards, all);
        let now = self.now_ms();
        for (id, version) in &watched {
            let current = self.store.lock(id).live(id, now).map(|s| s.version);
            if current != *version {
                return Ok(Reply::Exec(None));
            }
        }
        let results = commands
            .into_iter()
            .map(|cmd| {
                // Nothing waits inside a transaction: a lock key that is
                // taken answers as taken at once, as in Redis (no one can
                // release it while the transaction holds its shard).
                match self.execute(client, cmd)? {
                    Outcome::Reply(reply) => Ok(reply),
                    Outcome::Wait(pending) => self.give_up(&pending),
                }
            })
            .collect();
        Ok(Reply::Exec(Some(results)))
    }
}

/// The refusal of a command (as its door names it) that a transaction
/// cannot hold ([`Touches::Unsure`]): the engine's and the Redis door's.
pub fn not_in_transaction(name: &str) -> Error {
    Error::InvalidArgument(format!(
        "{name} cannot be queued in a transaction (it walks every session, waits, or picks a random id): run it outside MULTI"
    ))
}
