//! The engine as a working copy of sessions another store holds (a cluster
//! node over its database): a session is put in place as the store has it,
//! a command runs on it with the engine's own rules, and the result is read
//! back for the store to write — none of it logged, none of it expiring
//! here.

use std::sync::atomic::Ordering;

use super::Engine;
use crate::id::SessionId;
use crate::session::Session;

impl Engine {
    /// Puts `id` in place as the store holds it: `session`, or none.
    /// Nothing is logged; later versions are numbered above its version.
    pub fn load(&self, id: &SessionId, session: Option<Session>) {
        let mut shard = self.store.lock(id);
        shard.take(id);
        if let Some(session) = session {
            self.next_version
                .fetch_max(session.version.saturating_add(1), Ordering::Relaxed);
            shard.insert_unlogged(id.clone(), session);
        }
    }

    /// Takes `id` out again, unlogged, with what it left in the indexes.
    pub fn unload(&self, id: &SessionId) {
        self.store.lock(id).take(id);
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
            self.store.lock_at(i).drop_stale_deadlines();
        }
    }

    /// Makes every version handed out from now on greater than `version`.
    pub fn raise_version(&self, version: u64) {
        self.next_version
            .fetch_max(version.saturating_add(1), Ordering::Relaxed);
    }
}
