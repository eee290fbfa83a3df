//! A tenant's Redis script cache: what `SCRIPT LOAD` and `EVAL` keep for
//! `EVALSHA`, by SHA1. Bounded in scripts and bytes: past either, the
//! oldest go (a client then gets `NOSCRIPT` and sends the script again with
//! `EVAL`, as every Redis client library does).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

/// Most scripts one tenant's cache keeps.
pub(crate) const MAX_SCRIPTS: usize = 10_000;
/// Most bytes of source one tenant's cache keeps.
pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct ScriptCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_sha: HashMap<Bytes, Bytes>,
    /// Oldest first.
    order: VecDeque<Bytes>,
    bytes: usize,
}

impl ScriptCache {
    /// Keeps `source` under `sha` (lower-case hex).
    pub(crate) fn insert(&self, sha: Bytes, source: Bytes) {
        let mut c = self.inner.lock();
        if c.by_sha.contains_key(&sha) {
            return;
        }
        c.bytes += source.len();
        c.order.push_back(sha.clone());
        c.by_sha.insert(sha, source);
        while c.by_sha.len() > MAX_SCRIPTS || (c.bytes > MAX_BYTES && c.by_sha.len() > 1) {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(s) = c.by_sha.remove(&old) {
                c.bytes -= s.len();
            }
        }
    }

    /// The source of `sha` (any case), if kept.
    pub(crate) fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = Bytes::from(sha.to_ascii_lowercase());
        self.inner.lock().by_sha.get(&sha).cloned()
    }

    /// `SCRIPT FLUSH`.
    pub(crate) fn clear(&self) {
        *self.inner.lock() = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_past_the_bounds() {
        let c = ScriptCache::default();
        for i in 0..MAX_SCRIPTS + 2 {
            c.insert(Bytes::from(format!("{i:040x}")), Bytes::from("return 1"));
        }
        assert!(c.get(format!("{:040x}", 0).as_bytes()).is_none());
        assert!(c.get(format!("{:040x}", 1).as_bytes()).is_none());
        assert!(c.get(format!("{:040x}", 2).as_bytes()).is_some());
        assert!(c
            .get(format!("{:040X}", MAX_SCRIPTS + 1).as_bytes())
            .is_some());
        let big = Bytes::from(vec![b' '; MAX_BYTES / 2 + 1]);
        c.insert(Bytes::from("a"), big.clone());
        c.insert(Bytes::from("b"), big);
        assert!(c.get(b"a").is_none() && c.get(b"b").is_some());
        c.clear();
        assert!(c.get(b"b").is_none());
    }
}
