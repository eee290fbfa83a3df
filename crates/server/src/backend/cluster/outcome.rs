//! What the cluster's commands come to and write: a reply or a wait, and
//! the rows to write back (a session's, a lock's, or both at once).

use sessiond_core::{Error, LockMode, Reply, Session, SessionId};
use tokio::sync::mpsc;

use super::changes::Change;
use super::locks::LockRow;
use super::row;
use super::wake::Woken;

/// What a command came to: a reply, or a lock request to wait for.
pub(crate) enum Done {
    Reply(Result<Reply, Error>),
    Wait(ClusterWait),
}

/// What to write back for one id: its session row, its lock row, or both
/// (in one statement).
pub(super) struct Write {
    pub(super) id: SessionId,
    pub(super) session: Option<SessionWrite>,
    pub(super) lock: Option<LockWrite>,
}

/// A session row to write back: the session as the command left it
/// (None: removed), and the revision it was read at (0: there was no row).
pub(super) struct SessionWrite {
    pub(super) rev: i64,
    pub(super) change: Change,
    pub(super) session: Option<Session>,
}

/// What a lock row write sends and says: the row, the wake-ups of the
/// requests it granted (on other nodes by NOTIFY, here directly once
/// written), and whether it must commit synchronously (a grant).
pub(crate) struct LockWrite {
    pub(super) row: LockRow,
    pub(super) remote: Vec<(String, String)>,
    pub(super) local: Vec<(u64, Woken)>,
    pub(super) sync: bool,
    /// Locks the write hands to waiters on other nodes (wake-ups in
    /// `remote` that are grants).
    pub(super) handed_away: u64,
    /// How the write changes the tenant's lock figures: entries, bytes.
    pub(super) usage: (i64, i64),
    /// `REGENERATE` moved the lock to this id (noted in the old row, for
    /// requests still queued under the old id to follow).
    pub(super) moved_to: Option<SessionId>,
}

/// A lock row write as statement parameters.
pub(super) struct LockParams {
    pub(super) rev: i64,
    pub(super) last_key: i64,
    pub(super) held_until: i64,
    pub(super) holders: Vec<u8>,
    pub(super) waiters: Vec<u8>,
    pub(super) channels: Vec<String>,
    pub(super) payloads: Vec<String>,
    pub(super) sync: bool,
}

impl LockParams {
    /// The lock row's arguments of `sessiond_lock_put`, after the tenant
    /// and the id.
    pub(super) fn args(&self) -> [super::db::P<'_>; 8] {
        use super::db::P;
        [
            P::I64(self.rev),
            P::I64(self.last_key),
            P::I64(self.held_until),
            P::Bytes(&self.holders),
            P::Bytes(&self.waiters),
            P::Texts(Some(&self.channels)),
            P::Texts(Some(&self.payloads)),
            P::Bool(self.sync),
        ]
    }
}

impl LockWrite {
    pub(super) fn params(&self) -> LockParams {
        LockParams {
            rev: self.row.rev,
            last_key: row::to_sql(self.row.last_key),
            held_until: row::to_sql(self.row.held_until_ms()),
            holders: super::locks::encode_holders(&self.row.holders),
            waiters: super::locks::encode_waiters(&self.row.waiters),
            channels: self.remote.iter().map(|(c, _)| c.clone()).collect(),
            payloads: self.remote.iter().map(|(_, p)| p.clone()).collect(),
            sync: self.sync,
        }
    }
}

/// What to answer once a lock is had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// The key.
    Key,
    /// The key, the data and the variables (`OPEN`).
    Open { create: bool },
}

/// A lock request queued in a row, waited for on this node.
pub(crate) struct ClusterWait {
    pub(crate) id: SessionId,
    pub(super) seq: u64,
    pub(super) rx: mpsc::Receiver<Woken>,
    pub(super) mode: LockMode,
    pub(super) then: Then,
    /// How long the client agreed to wait, ms.
    pub(crate) wait_ms: u64,
    pub(super) started_ms: u64,
    /// When the holders' earliest lease runs out (a look at the row then).
    pub(super) next_expiry_ms: Option<u64>,
    /// Who asked, for how long a lease, under which owner, and whether
    /// the request needs the session: to queue it again should its place
    /// in the row be lost.
    pub(super) party: super::locks::Party,
    pub(super) lease_ms: u64,
    pub(super) owner: Option<bytes::Bytes>,
    pub(super) require_session: bool,
}
