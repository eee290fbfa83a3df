//! The session record.

use std::collections::BTreeMap;

use bytes::Bytes;

/// One session: an unstructured blob plus named variables, with sliding
/// expiry (`accessed + timeout`).
#[derive(Debug, Clone)]
pub struct Session {
    /// An application-chosen class (msession's `classname`), for COUNT/LIST.
    pub class: Option<Bytes>,
    /// The unstructured blob: msession `set_data`, PHP's serialized `$_SESSION`.
    pub data: Bytes,
    /// Per-variable fields: msession `set`/`get`, HTTP_SessionServer `put`/`get`.
    pub vars: BTreeMap<Bytes, Bytes>,
    /// Opaque client flags (the memcached item flags).
    pub flags: u32,
    /// When the session was created, ms since the epoch.
    pub created_ms: u64,
    /// When the session was last read or written, ms since the epoch.
    pub accessed_ms: u64,
    /// Idle time after which the session expires, in ms.
    pub timeout_ms: u64,
    /// Increases on every write; unique across sessions (the memcached CAS).
    pub version: u64,
    /// The earliest deadline this session has in its shard's expiry heap.
    pub(crate) queued_ms: u64,
    /// The last `accessed_ms` written to the log; reads log a touch only
    /// when it has fallen behind by a fair part of the timeout.
    pub(crate) logged_ms: u64,
    /// The top-level `$_SESSION` entries when `data` is a PHP session
    /// (derived from `data`, never stored on its own).
    pub(crate) php: Vec<(Bytes, Bytes)>,
}

impl Session {
    pub(crate) fn new(now: u64, timeout_ms: u64, version: u64) -> Self {
        Self {
            class: None,
            data: Bytes::new(),
            vars: BTreeMap::new(),
            flags: 0,
            created_ms: now,
            accessed_ms: now,
            timeout_ms,
            version,
            queued_ms: now.saturating_add(timeout_ms),
            logged_ms: now,
            php: Vec::new(),
        }
    }

    /// When the session expires unless touched again, ms since the epoch.
    pub fn deadline_ms(&self) -> u64 {
        self.accessed_ms.saturating_add(self.timeout_ms)
    }

    /// A session as recovered from a log or snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn restored(
        class: Option<Bytes>,
        data: Bytes,
        vars: BTreeMap<Bytes, Bytes>,
        flags: u32,
        created_ms: u64,
        accessed_ms: u64,
        timeout_ms: u64,
        version: u64,
    ) -> Self {
        Self {
            class,
            data,
            vars,
            flags,
            created_ms,
            accessed_ms,
            timeout_ms,
            version,
            queued_ms: accessed_ms.saturating_add(timeout_ms),
            logged_ms: accessed_ms,
            php: Vec::new(),
        }
    }

    /// A variable: one set explicitly, else a top-level entry of PHP-encoded
    /// data.
    pub fn var(&self, name: &[u8]) -> Option<&Bytes> {
        self.vars
            .get(name)
            .or_else(|| self.php.iter().find(|(k, _)| k == name).map(|(_, v)| v))
    }

    /// Every variable: the explicit ones, then PHP entries they do not shadow.
    pub fn all_vars(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.vars.iter().chain(
            self.php
                .iter()
                .filter(|(k, _)| !self.vars.contains_key(k))
                .map(|(k, v)| (k, v)),
        )
    }

    /// Remaining life in ms at `now`.
    pub fn ttl_ms(&self, now: u64) -> u64 {
        self.deadline_ms().saturating_sub(now)
    }
}

/// Equal when their contents and times are; bookkeeping of the expiry heap
/// and the log is not part of a session's value.
impl PartialEq for Session {
    fn eq(&self, o: &Self) -> bool {
        self.class == o.class
            && self.data == o.data
            && self.vars == o.vars
            && self.flags == o.flags
            && self.created_ms == o.created_ms
            && self.accessed_ms == o.accessed_ms
            && self.timeout_ms == o.timeout_ms
            && self.version == o.version
    }
}

impl Eq for Session {}
