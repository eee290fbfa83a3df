//! What a command changed in a node's working copy: the engine logs every
//! change it makes, and this log notes, per session, whether the session
//! was written or only read (its expiry moved), for the node to write
//! back to the database.

use std::collections::HashMap;

use parking_lot::Mutex;
use sessiond_core::{Mutation, MutationLog, SessionId};

/// How a session was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    /// Read, and its expiry moved on by enough to be written.
    Touched,
    /// Created, written, renamed or removed: written back whole.
    Written,
}

#[derive(Debug, Default)]
pub(crate) struct Changes {
    by_id: Mutex<HashMap<SessionId, Change>>,
}

impl Changes {
    /// What happened to `id` since the last call, if anything.
    pub(crate) fn take(&self, id: &SessionId) -> Option<Change> {
        self.by_id.lock().remove(id)
    }
}

impl MutationLog for Changes {
    fn append(&self, m: &Mutation) {
        let (id, change) = match m {
            Mutation::Touch { id, .. } => (id, Change::Touched),
            Mutation::Put { id, .. }
            | Mutation::Remove { id }
            | Mutation::SetVars { id, .. }
            | Mutation::DelVar { id, .. }
            | Mutation::SetData { id, .. }
            | Mutation::Timeout { id, .. } => (id, Change::Written),
            // Fencing keys come from the database, not the working copy.
            Mutation::FencingKeys { .. } => return,
        };
        let mut by_id = self.by_id.lock();
        let e = by_id.entry(id.clone()).or_insert(change);
        *e = (*e).max(change);
    }

    fn append_durable(&self, m: &Mutation) {
        self.append(m);
    }
}
