//! Cross-session commands (LIST, FIND, LISTVAR, SCAN, KEYS, the HTTP
//! listings) run on tokio's blocking pool, not on the request workers: a
//! walk over a million sessions takes its time on a thread of its own while
//! every other connection goes on being served. The engine walks in slices
//! (one shard lock held for a few hundred entries at a time), so requests
//! on the same shards wait at most one slice. At most [`PER_TENANT`] such
//! walks run at once per tenant; more queue without holding a thread.

use std::sync::Arc;

use sessiond_core::{ClientHandle, Command, Engine, Error, Reply};
use tokio::sync::Semaphore;

/// Walks one tenant may run at once: one per core of a small server, so
/// they cannot crowd the workers out of the CPU.
const PER_TENANT: usize = 2;

/// A tenant's share of the blocking pool.
#[derive(Debug)]
pub(crate) struct Offload {
    permits: Semaphore,
}

impl Default for Offload {
    fn default() -> Self {
        Self {
            permits: Semaphore::new(PER_TENANT),
        }
    }
}

impl Offload {
    /// Runs `cmd` (one that never waits for a lock) for `client` on the
    /// blocking pool, then `finish` on its result on the same thread:
    /// turning a reply of a hundred thousand ids into bytes is work too,
    /// and must not land on a request worker either.
    pub(crate) async fn run_then<T: Send + 'static>(
        &self,
        engine: &Arc<Engine>,
        client: &ClientHandle,
        cmd: Command,
        finish: impl FnOnce(Result<Reply, Error>) -> T + Send + 'static,
    ) -> T {
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await.ok();
        let (engine, client) = (engine.clone(), client.clone());
        let work = move || finish(engine.execute_now(&client, cmd));
        match tokio::task::spawn_blocking(work).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
