//! How Redis keys map onto sessions: a configured prefix (phpredis's
//! `PHPREDIS_SESSION:` by default) is stripped to the session id, and a
//! `…_LOCK` key is that session's lock.

use bytes::Bytes;
use sessiond_core::SessionId;

use crate::prefixes::Prefixes;

/// How the Redis door reads keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    prefixes: Prefixes,
}

impl Default for RedisKeys {
    fn default() -> Self {
        Self::new(vec![Bytes::from_static(b"PHPREDIS_SESSION:")])
    }
}

/// What a door's key names (the Redis and memcached doors alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A session's data.
    Session(SessionId),
    /// A session's lock (phpredis's `<key>_LOCK`, php-memcached's
    /// `lock.<id>`).
    Lock(SessionId),
}

/// The suffix phpredis appends to a session key to make its lock key.
pub const LOCK_SUFFIX: &[u8] = b"_LOCK";

impl RedisKeys {
    /// Prefixes in any order; the longest that matches wins.
    pub fn new(prefixes: Vec<Bytes>) -> Self {
        Self {
            prefixes: Prefixes::new(prefixes),
        }
    }

    /// The session (or lock) a key names. A key that matches no prefix is a
    /// session whose id is the whole key.
    pub fn map(&self, key: &[u8]) -> Key {
        let id = self.prefixes.strip(key);
        match id.strip_suffix(LOCK_SUFFIX) {
            Some(base) if !base.is_empty() => Key::Lock(SessionId::copy_from_slice(base)),
            _ => Key::Session(SessionId::copy_from_slice(id)),
        }
    }

    /// How `key` is spelled, kept in the session it creates
    /// ([`Prefixes::form_of`]).
    pub fn form_of(&self, key: &[u8]) -> u8 {
        self.prefixes.form_of(key)
    }

    /// The key a session is listed under by `KEYS` and `SCAN`: as the
    /// Redis door created it, else the longest prefix and the id; either
    /// maps back to the same session.
    pub fn key_of(&self, form: u8, id: &[u8]) -> Bytes {
        self.prefixes.spell(form, id)
    }
}

/// Redis's glob: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`. Iterative with
/// one backtrack point, so no pattern can make it explode.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[at] == '['`; returns
/// whether it matched and where the pattern goes on.
fn class(pattern: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let &x = pattern.get(i)?;
        match x {
            b']' => return Some((matched != negate, i + 1)),
            b'\\' => {
                matched |= pattern.get(i + 1)? == &c;
                i += 2;
            }
            _ if pattern.get(i + 1) == Some(&b'-')
                && pattern.get(i + 2).is_some_and(|&e| e != b']') =>
            {
                let (lo, hi) = (x.min(pattern[i + 2]), x.max(pattern[i + 2]));
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            _ => {
                matched |= x == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_sessions_and_locks() {
        let k = RedisKeys::default();
        assert_eq!(
            k.map(&Bytes::from_static(b"PHPREDIS_SESSION:abc")),
            Key::Session(SessionId::new(Bytes::from("abc")))
        );
        assert_eq!(
            k.map(&Bytes::from_static(b"PHPREDIS_SESSION:abc_LOCK")),
            Key::Lock(SessionId::new(Bytes::from("abc")))
        );
        assert_eq!(
            k.map(&Bytes::from_static(b"plain")),
            Key::Session(SessionId::new(Bytes::from("plain")))
        );
        assert_eq!(
            k.map(&Bytes::from_static(b"_LOCK")),
            Key::Session(SessionId::new(Bytes::from("_LOCK")))
        );
        assert_eq!(k.key_of(0, b"abc"), Bytes::from("PHPREDIS_SESSION:abc"));
        let custom = RedisKeys::new(vec![Bytes::from("a:"), Bytes::from("a:b:")]);
        assert_eq!(
            custom.map(&Bytes::from_static(b"a:b:x")),
            Key::Session(SessionId::new(Bytes::from("x"))),
            "longest prefix wins"
        );
    }

    #[test]
    fn glob_like_redis() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"PHPREDIS_SESSION:*", b"PHPREDIS_SESSION:abc"));
        assert!(!glob_match(b"PHPREDIS_SESSION:*", b"other"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!glob_match(
            b"*a*b*c*d",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaabc"
        ));
        assert!(!glob_match(b"[abc", b"a"));
    }
}
