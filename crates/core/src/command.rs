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
        /// The key's spelling, kept when this creates the session
        /// ([`crate::Session::key_form`]).
        key_form: u8,
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
    /// Every session as the Redis door lists it (`KEYS`): ids with their
    /// key forms, bounded like `List`.
    Keys,
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
    /// The write lock, naming the holder by `owner` (a Redis door lock key:
    /// `SET <id>_LOCK <secret> NX PX ms`; memcached `add lock.<id>`),
    /// queued up to `wait_ms` if it is held (0: try once; None: the
    /// engine's `door_lock_wait_ms`). The session need not exist.
    /// `lease_ms` None: no expiry — held until released or until the
    /// connection closes. Returns the fencing key, or `Locked`.
    LockOwned {
        id: SessionId,
        owner: Bytes,
        lease_ms: Option<u64>,
        wait_ms: Option<u64>,
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
    /// Destroy the session if its data is `data` (the compare-and-delete
    /// script Laravel's and Redlock's lock releases send): 1 if destroyed,
    /// else 0 (absent, or other data).
    DestroyIf { id: SessionId, data: Bytes },
    /// The session's data, and the session destroyed, in one step (Redis
    /// `GETDEL`).
    Take { id: SessionId },
    /// Redis `EXPIRE` and kin: set the timeout (`Some(0)`: destroy the
    /// session; `None`: no expiry, `PERSIST`) if `when` holds. 1 if done,
    /// else 0; `NoSession` if there is none.
    Expire {
        id: SessionId,
        timeout_ms: Option<u64>,
        when: ExpireIf,
    },
    /// Redis `INCRBY`: the data as a signed 64-bit decimal plus `by` (a
    /// missing session counts as 0 and is created without expiry, as
    /// Redis does); the new value.
    IncrBy {
        id: SessionId,
        by: i64,
        key_form: u8,
    },
    /// Redis `INCRBYFLOAT`: the data as a decimal number plus `by` (its
    /// text), as [`Command::IncrBy`]; the new value as text.
    IncrByFloat {
        id: SessionId,
        by: Bytes,
        key_form: u8,
    },
    /// Destroy every session (Redis `FLUSHDB`, memcached `flush_all`);
    /// refused unless the engine allows it. Answers how many went.
    FlushAll,
    /// A Redis transaction (`EXEC`): `commands` in order as one step (no
    /// other client's command sees part of it), unless a `watched` session's
    /// version is no longer the one given (None: absent), when nothing runs.
    /// Answers [`crate::Reply::Exec`]. Each command must say which
    /// sessions it touches ([`Command::touches`]).
    Exec {
        watched: Vec<(SessionId, Option<u64>)>,
        commands: Vec<Command>,
    },
    /// Run a server-side function (a Lua plugin) on `ids` as one step, all
    /// or nothing ([`crate::script`]); it may touch no other session.
    /// Answers what the function returns.
    Call {
        func: crate::script::Func,
        ids: Vec<SessionId>,
        args: Vec<Bytes>,
    },
}

/// The sessions a command touches, as a transaction must know them before
/// it starts ([`Command::touches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches<'a> {
    /// No session (PING).
    Nothing,
    /// These sessions only.
    One(&'a SessionId),
    Two(&'a SessionId, &'a SessionId),
    /// Every session, briefly (a count, a flush).
    All,
    /// Not known beforehand, or the command walks or waits: it cannot run
    /// inside a transaction.
    Unsure,
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

/// When `Command::Expire` sets the timeout (Redis's `NX`/`XX`/`GT`/`LT`;
/// a key without expiry counts as an infinite timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireIf {
    Always,
    /// Only if it has no expiry (`NX`).
    NoExpiry,
    /// Only if it has one (`XX`, and `PERSIST`).
    HasExpiry,
    /// Only if the new deadline is later (`GT`).
    Later,
    /// Only if the new deadline is sooner (`LT`).
    Sooner,
    /// Only if it has one and the new deadline is sooner (`XX LT`).
    SoonerWithExpiry,
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
    pub const NAMES: [&'static str; 52] = [
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
        "destroy_if",
        "take",
        "expire",
        "incr_by",
        "incr_by_float",
        "exec",
        "keys",
        "call",
    ];

    /// Everything the server needs to know of a command besides its
    /// fields, from this one match: a new command does not compile until
    /// its row is here.
    pub fn meta(&self) -> Meta {
        use Access::{Admin, Read, Write};
        let m = |index, name, access, write, heavy| Meta {
            index,
            name,
            access,
            write,
            heavy,
        };
        // A write that changes nothing unless a field says so.
        let when = |changes: bool| if changes { Write } else { Read };
        // (index in NAMES, name, access it needs, whether it changes what is
        // stored, whether it walks across sessions)
        match self {
            Command::Create { .. } => m(0, "create", Write, true, false),
            Command::Uniq { .. } => m(1, "uniq", Write, true, false),
            Command::Destroy { .. } => m(2, "destroy", Write, true, false),
            Command::Exists { .. } => m(3, "exists", Read, false, false),
            Command::Info { .. } => m(4, "info", Read, false, false),
            Command::Export { .. } => m(5, "export", Read, false, false),
            Command::Count { .. } => m(6, "count", Read, false, false),
            Command::List { .. } => m(7, "list", Read, false, true),
            Command::Scan { .. } => m(8, "scan", Read, false, true),
            Command::Get { .. } => m(9, "get", Read, false, false),
            Command::Set { .. } => m(10, "set", Write, true, false),
            Command::Del { .. } => m(11, "del", Write, true, false),
            Command::GetAll { .. } => m(12, "get_all", Read, false, false),
            Command::SetAll { .. } => m(13, "set_all", Write, true, false),
            Command::GetData { .. } => m(14, "get_data", Read, false, false),
            Command::SetData { .. } => m(15, "set_data", Write, true, false),
            Command::Store { .. } => m(16, "store", Write, true, false),
            Command::Append { .. } => m(17, "append", Write, true, false),
            // With a timeout, memcached's `gat`: it sets one.
            Command::Item { timeout_ms, .. } => m(
                18,
                "item",
                when(timeout_ms.is_some()),
                timeout_ms.is_some(),
                false,
            ),
            Command::IncrData { .. } => m(19, "incr_data", Write, true, false),
            Command::Inc { .. } => m(20, "inc", Write, true, false),
            Command::Find { .. } => m(21, "find", Read, false, true),
            Command::ListVar { .. } => m(22, "list_var", Read, false, true),
            Command::Timeout { timeout_ms, .. } => m(
                23,
                "timeout",
                when(timeout_ms.is_some()),
                timeout_ms.is_some(),
                false,
            ),
            Command::Ttl { .. } => m(24, "ttl", Read, false, false),
            Command::PTtl { .. } => m(25, "p_ttl", Read, false, false),
            // Refreshing expiry need not wait for the disk.
            Command::Touch { .. } => m(26, "touch", Read, false, false),
            // Locks are not stored: they need the access of their mode and
            // never wait for the disk.
            Command::Lock { mode, .. } => {
                m(27, "lock", when(*mode == LockMode::Write), false, false)
            }
            Command::Unlock { .. } => m(28, "unlock", Read, false, false),
            Command::LockOwned { .. } => m(29, "lock_owned", Write, false, false),
            Command::UnlockOwned { .. } => m(30, "unlock_owned", Write, false, false),
            Command::LockOwner { .. } => m(31, "lock_owner", Read, false, false),
            Command::Commit { .. } => m(32, "commit", Read, false, false),
            Command::Open { mode, create, .. } => m(
                33,
                "open",
                when(*create || *mode == LockMode::Write),
                *create,
                false,
            ),
            Command::Close { data, sets, .. } => {
                let writes = data.is_some() || !sets.is_empty();
                m(34, "close", when(writes), writes, false)
            }
            Command::Regenerate { .. } => m(35, "regenerate", Write, true, false),
            Command::RandStr { .. } => m(36, "rand_str", Read, false, false),
            Command::Ping { .. } => m(37, "ping", Read, false, false),
            Command::Echo { .. } => m(38, "echo", Read, false, false),
            Command::ServerInfo => m(39, "server_info", Read, false, false),
            Command::FlushAll => m(40, "flush_all", Admin, true, true),
            Command::FindPage { .. } => m(41, "find_page", Read, false, true),
            Command::ListVarPage { .. } => m(42, "list_var_page", Read, false, true),
            Command::KeyScan { .. } => m(43, "key_scan", Read, false, true),
            Command::Keys => m(50, "keys", Read, false, true),
            Command::DestroyIf { .. } => m(44, "destroy_if", Write, true, false),
            Command::Take { .. } => m(45, "take", Write, true, false),
            Command::Expire { .. } => m(46, "expire", Write, true, false),
            Command::IncrBy { .. } => m(47, "incr_by", Write, true, false),
            Command::IncrByFloat { .. } => m(48, "incr_by_float", Write, true, false),
            // As much as its commands need.
            Command::Exec { commands, .. } => m(
                49,
                "exec",
                commands.iter().map(Command::access).max().unwrap_or(Read),
                commands.iter().any(Command::is_write),
                false,
            ),
            // A function may change what it touches; it runs off the
            // request workers, as its time is its author's to spend.
            Command::Call { .. } => m(51, "call", Write, true, true),
        }
    }

    /// The sessions the command touches, for a transaction's claim on
    /// their shards.
    pub fn touches(&self) -> Touches<'_> {
        use Touches::{All, Nothing, One, Two, Unsure};
        match self {
            Command::Create { id, .. }
            | Command::Destroy { id }
            | Command::DestroyIf { id, .. }
            | Command::Take { id }
            | Command::Expire { id, .. }
            | Command::IncrBy { id, .. }
            | Command::IncrByFloat { id, .. }
            | Command::Exists { id }
            | Command::Info { id }
            | Command::Export { id }
            | Command::Get { id, .. }
            | Command::Set { id, .. }
            | Command::Del { id, .. }
            | Command::GetAll { id }
            | Command::SetAll { id, .. }
            | Command::GetData { id, .. }
            | Command::SetData { id, .. }
            | Command::Store { id, .. }
            | Command::Append { id, .. }
            | Command::Item { id, .. }
            | Command::IncrData { id, .. }
            | Command::Inc { id, .. }
            | Command::Timeout { id, .. }
            | Command::Ttl { id }
            | Command::PTtl { id }
            | Command::Touch { id }
            | Command::Unlock { id, .. }
            | Command::LockOwned { id, .. }
            | Command::UnlockOwned { id, .. }
            | Command::LockOwner { id }
            | Command::Commit { id, .. }
            | Command::Close { id, .. } => One(id),
            Command::Regenerate {
                id,
                new_id: Some(new_id),
            } => Two(id, new_id),
            Command::RandStr { .. } | Command::Ping { .. } | Command::Echo { .. } => Nothing,
            Command::Count { .. } | Command::ServerInfo | Command::FlushAll => All,
            // A random new id; a walk; a wait; a nested transaction.
            Command::Uniq { .. }
            | Command::Regenerate { new_id: None, .. }
            | Command::List { .. }
            | Command::Scan { .. }
            | Command::Find { .. }
            | Command::ListVar { .. }
            | Command::FindPage { .. }
            | Command::ListVarPage { .. }
            | Command::KeyScan { .. }
            | Command::Keys
            | Command::Lock { .. }
            | Command::Open { .. }
            | Command::Exec { .. }
            | Command::Call { .. } => Unsure,
        }
    }

    /// The command's place in [`Command::NAMES`] (for per-command tables).
    pub fn index(&self) -> usize {
        self.meta().index
    }

    /// Whether the command looks across sessions (its work grows with the
    /// store), so a door runs it off the request workers.
    pub fn is_heavy(&self) -> bool {
        self.meta().heavy
    }

    /// The command's name, as metrics label it (`get_data`, `lock`, ...).
    pub fn name(&self) -> &'static str {
        self.meta().name
    }

    /// The access level the command needs.
    pub fn access(&self) -> Access {
        self.meta().access
    }

    /// Whether the command changes what is stored, so that under
    /// `fsync always` its reply waits for the disk. Reads only refresh
    /// expiry, which need not wait.
    pub fn is_write(&self) -> bool {
        self.meta().write
    }
}

/// What [`Command::meta`] says of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Its place in [`Command::NAMES`].
    pub index: usize,
    /// Its name in metrics and statistics.
    pub name: &'static str,
    /// What the caller's role must allow.
    pub access: Access,
    /// Whether it changes what is stored (its reply waits for the disk
    /// under `fsync always`).
    pub write: bool,
    /// Whether it walks across sessions (run off the request workers).
    pub heavy: bool,
}

#[cfg(test)]
mod name_tests {
    use super::*;

    /// One of every command (the test below fails if one is missing).
    fn every_command() -> Vec<Command> {
        let id = || SessionId::new(Bytes::from_static(b"s"));
        let b = || Bytes::from_static(b"x");
        vec![
            Command::Create {
                id: id(),
                class: None,
                data: None,
                timeout_ms: None,
            },
            Command::Uniq {
                len: None,
                class: None,
                data: None,
                timeout_ms: None,
            },
            Command::Destroy { id: id() },
            Command::Exists { id: id() },
            Command::Info { id: id() },
            Command::Export { id: id() },
            Command::Count { class: None },
            Command::List { class: None },
            Command::Scan {
                cursor: b(),
                count: 1,
                class: None,
            },
            Command::Get {
                id: id(),
                name: b(),
                default: None,
            },
            Command::Set {
                id: id(),
                name: b(),
                value: b(),
            },
            Command::Del {
                id: id(),
                name: b(),
            },
            Command::GetAll { id: id() },
            Command::SetAll {
                id: id(),
                pairs: vec![],
            },
            Command::GetData {
                id: id(),
                touch: false,
            },
            Command::SetData {
                id: id(),
                data: b(),
            },
            Command::Store {
                id: id(),
                data: b(),
                timeout_ms: None,
                flags: None,
                condition: StoreIf::Always,
                reply: StoreReply::Ok,
                key_form: 0,
            },
            Command::Append {
                id: id(),
                data: b(),
                front: false,
            },
            Command::Item {
                id: id(),
                timeout_ms: None,
            },
            Command::IncrData {
                id: id(),
                delta: 1,
                decr: false,
                initial: None,
            },
            Command::Inc {
                id: id(),
                name: b(),
                by: 1,
            },
            Command::Find {
                name: b(),
                value: b(),
            },
            Command::ListVar { name: b() },
            Command::Timeout {
                id: id(),
                timeout_ms: None,
            },
            Command::Ttl { id: id() },
            Command::PTtl { id: id() },
            Command::Touch { id: id() },
            Command::Lock {
                id: id(),
                mode: LockMode::Write,
                wait_ms: 0,
                lease_ms: None,
            },
            Command::Unlock { id: id(), key: 1 },
            Command::LockOwned {
                id: id(),
                owner: b(),
                lease_ms: None,
                wait_ms: None,
            },
            Command::UnlockOwned {
                id: id(),
                owner: None,
            },
            Command::LockOwner { id: id() },
            Command::Commit { id: id(), key: 1 },
            Command::Open {
                id: id(),
                mode: LockMode::Read,
                wait_ms: 0,
                lease_ms: None,
                create: false,
            },
            Command::Close {
                id: id(),
                key: 1,
                data: None,
                sets: vec![],
            },
            Command::Regenerate {
                id: id(),
                new_id: None,
            },
            Command::RandStr { len: 1 },
            Command::Ping { message: None },
            Command::Echo { message: b() },
            Command::ServerInfo,
            Command::FlushAll,
            Command::FindPage {
                name: b(),
                value: b(),
                cursor: b(),
                count: 1,
            },
            Command::ListVarPage {
                name: b(),
                cursor: b(),
                count: 1,
            },
            Command::KeyScan {
                cursor: 0,
                count: 1,
            },
            Command::DestroyIf {
                id: id(),
                data: b(),
            },
            Command::Take { id: id() },
            Command::Expire {
                id: id(),
                timeout_ms: None,
                when: ExpireIf::Always,
            },
            Command::IncrBy {
                id: id(),
                by: 1,
                key_form: 0,
            },
            Command::IncrByFloat {
                id: id(),
                by: b(),
                key_form: 0,
            },
            Command::Exec {
                watched: vec![],
                commands: vec![],
            },
            Command::Keys,
            Command::Call {
                func: crate::script::Func::Plugin(b()),
                ids: vec![id()],
                args: vec![],
            },
        ]
    }

    #[test]
    fn every_command_has_its_own_index_and_the_name_there() {
        let all = every_command();
        assert_eq!(all.len(), Command::NAMES.len(), "one sample per command");
        let mut seen = std::collections::BTreeSet::new();
        for cmd in &all {
            let m = cmd.meta();
            assert!(seen.insert(m.index), "index {} twice ({cmd:?})", m.index);
            assert_eq!(Command::NAMES[m.index], m.name, "{cmd:?}");
        }
        assert_eq!(seen.len(), Command::NAMES.len());
        let unique: std::collections::BTreeSet<_> = Command::NAMES.iter().collect();
        assert_eq!(unique.len(), Command::NAMES.len(), "a name twice");
    }

    #[test]
    fn what_a_command_needs_follows_its_fields() {
        let id = || SessionId::new(Bytes::from_static(b"s"));
        let read = Command::Timeout {
            id: id(),
            timeout_ms: None,
        };
        let set = Command::Timeout {
            id: id(),
            timeout_ms: Some(1),
        };
        assert_eq!((read.access(), read.is_write()), (Access::Read, false));
        assert_eq!((set.access(), set.is_write()), (Access::Write, true));
        let shared = Command::Lock {
            id: id(),
            mode: LockMode::Read,
            wait_ms: 0,
            lease_ms: None,
        };
        assert_eq!((shared.access(), shared.is_write()), (Access::Read, false));
        assert_eq!(Command::FlushAll.access(), Access::Admin);
        assert!(Command::FlushAll.is_heavy() && Command::FlushAll.is_write());
    }
}
