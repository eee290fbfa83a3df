//! The one command type every door translates its protocol into.
//!
//! Protocol differences are fields a codec fills in (for example whether a
//! read refreshes the session's expiry), never "which door am I?" checks in
//! the engine.

use bytes::Bytes;

use crate::id::SessionId;
use crate::lock::LockMode;

/// One engine operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create a session; fails if the id is taken.
    Create {
        id: SessionId,
        class: Option<Bytes>,
        data: Option<Bytes>,
        timeout_ms: Option<u64>,
    },
    /// Create a session with a fresh random id of `len` symbols; returns the id.
    Uniq {
        len: Option<usize>,
        class: Option<Bytes>,
        data: Option<Bytes>,
        timeout_ms: Option<u64>,
    },
    /// Delete a session, its variables and its lock.
    Destroy { id: SessionId },
    /// 1 if the session exists, else 0. Does not refresh it.
    Exists { id: SessionId },
    /// Metadata of a session. Does not refresh it.
    Info { id: SessionId },
    /// The whole session (class, times, timeout, data, explicit
    /// variables), without refreshing it: for dumps and backups.
    Export { id: SessionId },
    /// How many sessions (of a class).
    Count { class: Option<Bytes> },
    /// Every session id (of a class).
    List { class: Option<Bytes> },
    /// One page of ids from an opaque cursor (`0` to start).
    Scan {
        cursor: Bytes,
        count: usize,
        class: Option<Bytes>,
    },
    /// One variable; `default` (or nil) when absent.
    Get {
        id: SessionId,
        name: Bytes,
        default: Option<Bytes>,
    },
    /// Set one variable.
    Set {
        id: SessionId,
        name: Bytes,
        value: Bytes,
    },
    /// Remove one variable; 1 if it was there.
    Del { id: SessionId, name: Bytes },
    /// Every variable, as a map.
    GetAll { id: SessionId },
    /// Set many variables at once.
    SetAll {
        id: SessionId,
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// The unstructured blob.
    GetData { id: SessionId, touch: bool },
    /// Replace the unstructured blob.
    SetData { id: SessionId, data: Bytes },
    /// Store a blob, creating the session if need be (Redis `SET`/`SETEX`,
    /// memcached `set`/`add`/`replace`/`cas`). `timeout_ms` None keeps an
    /// existing session's timeout (a new one gets the default); `flags`
    /// None keeps its flags (a new one gets 0). Answers per `reply`, or nil
    /// when `condition` is not met. `StoreIf::Version` on a missing session
    /// is `NoSession`.
    Store {
        id: SessionId,
        data: Bytes,
        timeout_ms: Option<u64>,
        flags: Option<u32>,
        condition: StoreIf,
        reply: StoreReply,
    },
    /// Add to the end (or, with `front`, the start) of an existing blob
    /// (memcached `append`/`prepend`). Answers the new version, or nil when
    /// the session does not exist.
    Append {
        id: SessionId,
        data: Bytes,
        front: bool,
    },
    /// The blob, flags and version (memcached `get`/`gets`), as
    /// `[data, flags, version]`; with `timeout_ms`, the timeout is set too
    /// (memcached `gat`). Does not refresh the session otherwise.
    Item {
        id: SessionId,
        timeout_ms: Option<u64>,
    },
    /// Treat the blob as an unsigned 64-bit decimal and add or subtract
    /// `delta` (memcached `incr`/`decr`: incr wraps, decr stops at 0).
    /// Answers `[new value as text, version]`. A missing session is
    /// `NoSession`, unless `initial` says to create it with that value (and
    /// timeout).
    IncrData {
        id: SessionId,
        delta: u64,
        decr: bool,
        initial: Option<(u64, Option<u64>)>,
    },
    /// Add `by` to an integer variable (absent counts as 0); returns the sum.
    Inc { id: SessionId, name: Bytes, by: i64 },
    /// Ids of sessions whose variable `name` equals `value`.
    Find { name: Bytes, value: Bytes },
    /// id → value of every session having variable `name`.
    ListVar { name: Bytes },
    /// One page of [`Command::Find`]: up to `count` ids after `cursor`
    /// (`0` to start), and the cursor to go on from (`0`: done).
    FindPage {
        name: Bytes,
        value: Bytes,
        cursor: Bytes,
        count: usize,
    },
    /// One page of [`Command::ListVar`], as [`Command::FindPage`].
    ListVarPage {
        name: Bytes,
        cursor: Bytes,
        count: usize,
    },
    /// One page of Redis `SCAN`: ids from a numeric cursor (`0` to start),
    /// visiting about `count` sessions (COUNT bounds the work, not the
    /// matches, as in Redis); the next numeric cursor (`0`: done).
    KeyScan { cursor: u64, count: usize },
    /// Read (None) or set the idle timeout.
    Timeout {
        id: SessionId,
        timeout_ms: Option<u64>,
    },
    /// Remaining life in seconds. Does not refresh the session.
    Ttl { id: SessionId },
    /// Remaining life in milliseconds. Does not refresh the session.
    PTtl { id: SessionId },
    /// Refresh the session's expiry.
    Touch { id: SessionId },
    /// Take the session's lock; returns the fencing key.
    Lock {
        id: SessionId,
        mode: LockMode,
        wait_ms: u64,
        lease_ms: Option<u64>,
    },
    /// Release a lock by its key.
    Unlock { id: SessionId, key: u64 },
    /// Try once for the write lock, naming the holder by `owner` (a Redis
    /// door lock key: `SET <id>_LOCK <secret> NX PX ms`). The session need
    /// not exist. Returns the fencing key, or `Locked`.
    LockOwned {
        id: SessionId,
        owner: Bytes,
        lease_ms: Option<u64>,
    },
    /// Release the lock held under `owner` (when `None`: the caller's own
    /// holds, never another connection's): 1 if released, else 0.
    UnlockOwned { id: SessionId, owner: Option<Bytes> },
    /// The owner token of the lock's holder, or nil.
    LockOwner { id: SessionId },
    /// Turn a write lock into a read lock.
    Commit { id: SessionId, key: u64 },
    /// Lock, then read data and variables, in one step.
    Open {
        id: SessionId,
        mode: LockMode,
        wait_ms: u64,
        lease_ms: Option<u64>,
        create: bool,
    },
    /// Write data and/or variables, then unlock, in one step.
    Close {
        id: SessionId,
        key: u64,
        data: Option<Bytes>,
        sets: Vec<(Bytes, Bytes)>,
    },
    /// Rename a session atomically, keeping data, variables and lock.
    Regenerate {
        id: SessionId,
        new_id: Option<SessionId>,
    },
    /// A random string of `len` URL-safe symbols.
    RandStr { len: usize },
    /// Liveness check.
    Ping { message: Option<Bytes> },
    /// Say it back.
    Echo { message: Bytes },
    /// Engine statistics.
    ServerInfo,
    /// Destroy every session (Redis `FLUSHDB`, memcached `flush_all`);
    /// refused unless the engine allows it. Answers how many went.
    FlushAll,
}

/// When `Command::Store` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreIf {
    /// Always (create or replace).
    Always,
    /// Only if the session does not exist (Redis `NX`, memcached `add`).
    Absent,
    /// Only if it exists (Redis `XX`, memcached `replace`).
    Present,
    /// Only if it exists at this version (memcached `cas`).
    Version(u64),
}

/// What `Command::Store` answers when it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreReply {
    /// OK.
    Ok,
    /// The previous data, or nil (Redis `SET … GET`); also when not stored.
    Old,
    /// The new version (the memcached CAS) as an integer.
    Version,
}

/// What a command needs of the user who sends it: the server lets a role
/// run the commands of its level and those below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reads sessions (and refreshes their expiry), or takes a shared lock.
    Read,
    /// Creates, changes or destroys sessions, or takes an exclusive lock.
    Write,
    /// Acts on every session of the tenant at once (`FLUSHALL`).
    Admin,
}

impl Access {
    /// How a refusal names what was refused.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Read => "reading sessions",
            Access::Write => "changing sessions or taking exclusive locks",
            Access::Admin => "administrative commands",
        }
    }
}

impl Command {
    /// Every command's name as metrics and statistics label it, in the
    /// order of [`Command::index`].
    pub const NAMES: [&'static str; 44] = [
        "create",
        "uniq",
        "destroy",
        "exists",
        "info",
        "export",
        "count",
        "list",
        "scan",
        "get",
        "set",
        "del",
        "get_all",
        "set_all",
        "get_data",
        "set_data",
        "store",
        "append",
        "item",
        "incr_data",
        "inc",
        "find",
        "list_var",
        "timeout",
        "ttl",
        "p_ttl",
        "touch",
        "lock",
        "unlock",
        "lock_owned",
        "unlock_owned",
        "lock_owner",
        "commit",
        "open",
        "close",
        "regenerate",
        "rand_str",
        "ping",
        "echo",
        "server_info",
        "flush_all",
        "find_page",
        "list_var_page",
        "key_scan",
    ];

    /// The command's place in [`Command::NAMES`] (for per-command tables).
    pub fn index(&self) -> usize {
        match self {
            Command::Create { .. } => 0,
            Command::Uniq { .. } => 1,
            Command::Destroy { .. } => 2,
            Command::Exists { .. } => 3,
            Command::Info { .. } => 4,
            Command::Export { .. } => 5,
            Command::Count { .. } => 6,
            Command::List { .. } => 7,
            Command::Scan { .. } => 8,
            Command::Get { .. } => 9,
            Command::Set { .. } => 10,
            Command::Del { .. } => 11,
            Command::GetAll { .. } => 12,
            Command::SetAll { .. } => 13,
            Command::GetData { .. } => 14,
            Command::SetData { .. } => 15,
            Command::Store { .. } => 16,
            Command::Append { .. } => 17,
            Command::Item { .. } => 18,
            Command::IncrData { .. } => 19,
            Command::Inc { .. } => 20,
            Command::Find { .. } => 21,
            Command::ListVar { .. } => 22,
            Command::Timeout { .. } => 23,
            Command::Ttl { .. } => 24,
            Command::PTtl { .. } => 25,
            Command::Touch { .. } => 26,
            Command::Lock { .. } => 27,
            Command::Unlock { .. } => 28,
            Command::LockOwned { .. } => 29,
            Command::UnlockOwned { .. } => 30,
            Command::LockOwner { .. } => 31,
            Command::Commit { .. } => 32,
            Command::Open { .. } => 33,
            Command::Close { .. } => 34,
            Command::Regenerate { .. } => 35,
            Command::RandStr { .. } => 36,
            Command::Ping { .. } => 37,
            Command::Echo { .. } => 38,
            Command::ServerInfo => 39,
            Command::FlushAll => 40,
            Command::FindPage { .. } => 41,
            Command::ListVarPage { .. } => 42,
            Command::KeyScan { .. } => 43,
        }
    }

    /// Whether the command looks across sessions (its work grows with the
    /// store), so a door runs it off the request workers.
    pub fn is_heavy(&self) -> bool {
        matches!(
            self,
            Command::List { .. }
                | Command::Scan { .. }
                | Command::Find { .. }
                | Command::ListVar { .. }
                | Command::FindPage { .. }
                | Command::ListVarPage { .. }
                | Command::KeyScan { .. }
                | Command::FlushAll
        )
    }

    /// The command's name, as metrics label it (`get_data`, `lock`, ...).
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
    /// The access level the command needs.
    pub fn access(&self) -> Access {
        match self {
            Command::FlushAll => Access::Admin,
            Command::Create { .. }
            | Command::Uniq { .. }
            | Command::Destroy { .. }
            | Command::Set { .. }
            | Command::Del { .. }
            | Command::SetAll { .. }
            | Command::SetData { .. }
            | Command::Store { .. }
            | Command::Append { .. }
            | Command::IncrData { .. }
            | Command::Inc { .. }
            | Command::LockOwned { .. }
            | Command::UnlockOwned { .. }
            | Command::Regenerate { .. } => Access::Write,
            Command::Timeout { timeout_ms, .. } | Command::Item { timeout_ms, .. } => {
                if timeout_ms.is_some() {
                    Access::Write
                } else {
                    Access::Read
                }
            }
            Command::Lock { mode, .. } => match mode {
                LockMode::Write => Access::Write,
                LockMode::Read => Access::Read,
            },
            Command::Open { mode, create, .. } => {
                if *create || *mode == LockMode::Write {
                    Access::Write
                } else {
                    Access::Read
                }
            }
            Command::Close { data, sets, .. } => {
                if data.is_some() || !sets.is_empty() {
                    Access::Write
                } else {
                    Access::Read
                }
            }
            Command::Exists { .. }
            | Command::Info { .. }
            | Command::Export { .. }
            | Command::Count { .. }
            | Command::List { .. }
            | Command::Scan { .. }
            | Command::Get { .. }
            | Command::GetAll { .. }
            | Command::GetData { .. }
            | Command::Find { .. }
            | Command::ListVar { .. }
            | Command::FindPage { .. }
            | Command::ListVarPage { .. }
            | Command::KeyScan { .. }
            | Command::Ttl { .. }
            | Command::PTtl { .. }
            | Command::Touch { .. }
            | Command::Unlock { .. }
            | Command::LockOwner { .. }
            | Command::Commit { .. }
            | Command::RandStr { .. }
            | Command::Ping { .. }
            | Command::Echo { .. }
            | Command::ServerInfo => Access::Read,
        }
    }

    /// Whether the command changes what is stored, so that under
    /// `fsync always` its reply waits for the disk. Reads only refresh
    /// expiry, which need not wait.
    pub fn is_write(&self) -> bool {
        match self {
            Command::Create { .. }
            | Command::Uniq { .. }
            | Command::Destroy { .. }
            | Command::Set { .. }
            | Command::Del { .. }
            | Command::SetAll { .. }
            | Command::SetData { .. }
            | Command::Store { .. }
            | Command::Append { .. }
            | Command::IncrData { .. }
            | Command::Inc { .. }
            | Command::Regenerate { .. }
            | Command::FlushAll => true,
            Command::Timeout { timeout_ms, .. } | Command::Item { timeout_ms, .. } => {
                timeout_ms.is_some()
            }
            Command::Open { create, .. } => *create,
            Command::Close { data, sets, .. } => data.is_some() || !sets.is_empty(),
            Command::Exists { .. }
            | Command::Info { .. }
            | Command::Export { .. }
            | Command::Count { .. }
            | Command::List { .. }
            | Command::Scan { .. }
            | Command::Get { .. }
            | Command::GetAll { .. }
            | Command::GetData { .. }
            | Command::Find { .. }
            | Command::ListVar { .. }
            | Command::FindPage { .. }
            | Command::ListVarPage { .. }
            | Command::KeyScan { .. }
            | Command::Ttl { .. }
            | Command::PTtl { .. }
            | Command::Touch { .. }
            | Command::Lock { .. }
            | Command::Unlock { .. }
            | Command::LockOwned { .. }
            | Command::UnlockOwned { .. }
            | Command::LockOwner { .. }
            | Command::Commit { .. }
            | Command::RandStr { .. }
            | Command::Ping { .. }
            | Command::Echo { .. }
            | Command::ServerInfo => false,
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_are_unique_and_match_their_index() {
        let mut seen = std::collections::HashSet::new();
        for n in Command::NAMES {
            assert!(seen.insert(n), "{n} twice");
        }
        assert_eq!(Command::ServerInfo.name(), "server_info");
        let last = Command::KeyScan {
            cursor: 0,
            count: 1,
        };
        assert_eq!(last.index(), Command::NAMES.len() - 1);
        let ping = Command::Ping { message: None };
        assert_eq!(Command::NAMES[ping.index()], "ping");
    }
}
