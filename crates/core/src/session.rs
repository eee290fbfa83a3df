//! The session record.

use std::collections::BTreeMap;

use bytes::Bytes;

/// One session: an unstructured blob plus named variables, with sliding
/// expiry (`accessed + timeout`).
#[derive(Debug, Clone)]
pub struct Session {
    /// The unstructured blob: msession `set_data`, PHP's serialized `$_SESSION`.
    pub data: Bytes,
    /// Opaque client flags (the memcached item flags).
    pub flags: u32,
    /// How a door spells the key that created the session, so a listing
    /// gives it back as written (the Redis door: 0 = its first prefix, 1 =
    /// no prefix, 2 + i = its i-th prefix). Opaque to the engine.
    pub key_form: u8,
    /// Whether `data` has fields the shard's field index holds, so a write
    /// or removal of data without any need not read the old data again.
    pub(crate) indexed: bool,
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
    /// Class, variables and PHP entries: most sessions (a blob under a
    /// key) have none, so they cost one pointer until one is set.
    extra: Option<Box<Extra>>,
}

/// The parts of a session that many sessions never use.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// An application-chosen class (msession's `classname`), for COUNT/LIST.
    class: Option<Bytes>,
    /// Per-variable fields: msession `set`/`get`, HTTP_SessionServer `put`/`get`.
    vars: BTreeMap<Bytes, Bytes>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.class.is_none() && self.vars.is_empty()
    }
}

/// What [`Session::vars`] lends out for a session without variables.
static NO_VARS: BTreeMap<Bytes, Bytes> = BTreeMap::new();

impl Session {
    pub(crate) fn new(now: u64, timeout_ms: u64, version: u64) -> Self {
        Self {
            data: Bytes::new(),
            flags: 0,
            key_form: 0,
            indexed: false,
            created_ms: now,
            accessed_ms: now,
            timeout_ms,
            version,
            queued_ms: now.saturating_add(timeout_ms),
            logged_ms: now,
            extra: None,
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
        let mut s = Self {
            data,
            flags,
            key_form: 0,
            indexed: false,
            created_ms,
            accessed_ms,
            timeout_ms,
            version,
            queued_ms: accessed_ms.saturating_add(timeout_ms),
            logged_ms: accessed_ms,
            extra: None,
        };
        s.set_class(class);
        if !vars.is_empty() {
            *s.vars_mut() = vars;
        }
        s
    }

    /// The session's class, if it has one.
    pub fn class(&self) -> Option<&Bytes> {
        self.extra.as_ref()?.class.as_ref()
    }

    /// The explicitly set variables.
    pub fn vars(&self) -> &BTreeMap<Bytes, Bytes> {
        self.extra.as_ref().map_or(&NO_VARS, |e| &e.vars)
    }

    /// The fields of `data` (PHP entries, JSON or msgpack fields; none
    /// for other data), read from it each time: they are never stored.
    pub fn fields(&self) -> Vec<(Bytes, Bytes)> {
        crate::fields::fields(&self.data).unwrap_or_default()
    }

    pub(crate) fn set_class(&mut self, class: Option<Bytes>) {
        if class.is_some() || self.extra.is_some() {
            self.extra_mut().class = class;
            self.shrink();
        }
    }

    /// The variables, to change. Call [`Self::shrink`] after removing any.
    pub(crate) fn vars_mut(&mut self) -> &mut BTreeMap<Bytes, Bytes> {
        &mut self.extra_mut().vars
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Lets go of the extra parts once nothing is left in them.
    pub(crate) fn shrink(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    /// What the session counts for under a byte quota: its data, its
    /// variables' names and values, and its class.
    pub fn bytes(&self) -> usize {
        self.data.len()
            + self.class().map_or(0, |c| c.len())
            + self
                .vars()
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }

    /// A variable: one set explicitly, else a field of the data.
    pub fn var(&self, name: &[u8]) -> Option<Bytes> {
        match self.vars().get(name) {
            Some(v) => Some(v.clone()),
            None => crate::fields::field(&self.data, name),
        }
    }

    /// Every variable: the explicit ones, then the fields of the data they
    /// do not shadow.
    pub fn all_vars(&self) -> Vec<(Bytes, Bytes)> {
        let vars = self.vars();
        let mut all: Vec<(Bytes, Bytes)> =
            vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.extend(
            self.fields()
                .into_iter()
                .filter(|(k, _)| !vars.contains_key(k)),
        );
        all
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
        self.class() == o.class()
            && self.data == o.data
            && self.vars() == o.vars()
            && self.flags == o.flags
            && self.created_ms == o.created_ms
            && self.accessed_ms == o.accessed_ms
            && self.timeout_ms == o.timeout_ms
            && self.version == o.version
            && self.key_form == o.key_form
    }
}

impl Eq for Session {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_session_stays_small_and_gives_back_its_extra_parts() {
        // The common session (a blob under a key) is what a million-session
        // store is made of: keep it within two cache lines.
        assert!(std::mem::size_of::<Session>() <= 96);
        let mut s = Session::new(0, 1000, 1);
        assert!(s.extra.is_none() && s.vars().is_empty() && s.class().is_none());
        s.vars_mut().insert(Bytes::from("a"), Bytes::from("1"));
        s.set_class(Some(Bytes::from("shop")));
        assert_eq!(s.var(b"a"), Some(Bytes::from("1")));
        assert_eq!(s.class(), Some(&Bytes::from("shop")));
        s.vars_mut().clear();
        s.shrink();
        assert!(s.extra.is_some(), "the class still needs it");
        s.set_class(None);
        assert!(s.extra.is_none());
        // Fields of the data are read from it, never kept.
        s.data = Bytes::from("user|i:42;");
        assert_eq!(s.var(b"user"), Some(Bytes::from("42")));
        assert!(s.extra.is_none());
        s.vars_mut()
            .insert(Bytes::from("user"), Bytes::from("shadow"));
        assert_eq!(s.var(b"user"), Some(Bytes::from("shadow")));
        assert_eq!(
            s.all_vars(),
            vec![(Bytes::from("user"), Bytes::from("shadow"))]
        );
    }
}
