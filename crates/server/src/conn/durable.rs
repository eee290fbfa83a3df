//! Group commit under `fsync always`: the log record a connection's pending
//! replies wait for.

use std::sync::Arc;

use crate::persist::{Fsync, Persistence};

/// Under `fsync always`, the log record that the replies now pending must
/// wait for before they are sent (group commit: one wait per batch). Only a
/// command that appended a record makes them wait: a write that changed
/// nothing (PHP resending an unchanged session or timeout) answers at once.
#[derive(Default)]
pub(crate) struct DurableMark(Option<u64>);

impl DurableMark {
    /// Before running a command that may write: where the log stands
    /// (`None` unless the policy is `always`).
    pub(crate) fn before(persist: Option<&Arc<Persistence>>, may_write: bool) -> Option<u64> {
        match persist {
            Some(p) if may_write && p.fsync() == Fsync::Always => Some(p.appended()),
            _ => None,
        }
    }

    /// After it ran: if the log grew, the pending replies wait for it.
    pub(crate) fn after(&mut self, persist: Option<&Arc<Persistence>>, before: Option<u64>) {
        if let (Some(before), Some(p)) = (before, persist) {
            let now = p.appended();
            if now > before {
                self.0 = Some(now);
            }
        }
    }

    /// Waits until every noted write is durable.
    pub(crate) async fn wait(&mut self, persist: Option<&Arc<Persistence>>) {
        if let (Some(seq), Some(p)) = (self.0.take(), persist) {
            p.wait_durable(seq).await;
        }
    }
}
