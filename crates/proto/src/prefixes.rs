//! Key prefixes a door strips to find a session id (phpredis's
//! `PHPREDIS_SESSION:`, php-memcached's `memc.sess.key.`).

use bytes::Bytes;

/// Configured prefixes, longest first so the most specific one wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefixes(Vec<Bytes>);

impl Prefixes {
    /// Prefixes in any order; empty ones are ignored.
    pub fn new(mut prefixes: Vec<Bytes>) -> Self {
        prefixes.retain(|p| !p.is_empty());
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Self(prefixes)
    }

    /// `key` without the longest prefix it starts with (all of it if none).
    pub fn strip<'a>(&self, key: &'a [u8]) -> &'a [u8] {
        self.0
            .iter()
            .find_map(|p| key.strip_prefix(&p[..]))
            .unwrap_or(key)
    }

    /// The longest prefix (empty if there is none): what listings put back
    /// in front of an id.
    pub fn longest(&self) -> &[u8] {
        self.0.first().map_or(&[][..], |p| &p[..])
    }
}
