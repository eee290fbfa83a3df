//! How memcached keys map onto sessions: a configured prefix
//! (php-memcached's `memc.sess.key.` by default, its `memcached.sess_prefix`)
//! is stripped to the session id, and `lock.<id>` is that session's lock.

use bytes::Bytes;
use sessiond_core::SessionId;

use crate::prefixes::Prefixes;
use crate::redis::Key;

/// What php-memcached puts before a session id to name its lock.
pub const LOCK_PREFIX: &[u8] = b"lock.";

/// How the memcached door reads keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McKeys {
    prefixes: Prefixes,
}

impl Default for McKeys {
    fn default() -> Self {
        Self::new(vec![Bytes::from_static(b"memc.sess.key.")])
    }
}

impl McKeys {
    /// Prefixes in any order; the longest that matches wins.
    pub fn new(prefixes: Vec<Bytes>) -> Self {
        Self {
            prefixes: Prefixes::new(prefixes),
        }
    }

    /// The session (or lock) a key names. A key that matches no prefix is a
    /// session whose id is the whole key (or, after `lock.`, its lock).
    pub fn map(&self, key: &[u8]) -> Key {
        let rest = self.prefixes.strip(key);
        match rest.strip_prefix(LOCK_PREFIX) {
            Some(id) if !id.is_empty() => Key::Lock(SessionId::copy_from_slice(id)),
            _ => Key::Session(SessionId::copy_from_slice(rest)),
        }
    }
}
