//! The engine's view of one connection: who holds or waits for which locks.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::id::SessionId;

/// One client connection, as the lock table knows it.
///
/// The handle remembers every session on which its connection holds or awaits
/// a lock, so that [`crate::Engine::disconnect`] can release them without
/// scanning the store. Cheap to clone; clones are the same client.
#[derive(Clone, Debug)]
pub struct ClientHandle {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    id: u64,
    /// Sessions this client may hold or await a lock on. A superset: an entry
    /// may outlive its lock (a lease that expired); release is then a no-op.
    locks: Mutex<HashSet<SessionId>>,
}

impl ClientHandle {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                id,
                locks: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The client's id, unique for the life of the engine.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub(crate) fn note(&self, id: &SessionId) {
        self.inner.locks.lock().insert(id.clone());
    }

    pub(crate) fn forget(&self, id: &SessionId) {
        self.inner.locks.lock().remove(id);
    }

    pub(crate) fn lock_ids(&self) -> Vec<SessionId> {
        self.inner.locks.lock().iter().cloned().collect()
    }

    pub(crate) fn same(&self, other: &ClientHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
