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
    /// in front of an id a door did not spell.
    pub fn longest(&self) -> &[u8] {
        self.0.first().map_or(&[][..], |p| &p[..])
    }

    /// How `key` is spelled, as a session's `key_form` keeps it: 0 = the
    /// longest prefix (and every session no door spelled), 1 = no prefix,
    /// 2 + i = the i-th prefix, longest first.
    pub fn form_of(&self, key: &[u8]) -> u8 {
        match self.0.iter().position(|p| key.starts_with(p)) {
            Some(0) => 0,
            // More than 253 prefixes share the last spelling; none has.
            Some(i) => u8::try_from(i + 2).unwrap_or(u8::MAX),
            None => 1,
        }
    }

    /// The key that names session `id` spelled as `form` says
    /// ([`Prefixes::form_of`]); a form no longer configured is spelled
    /// with the longest prefix.
    pub fn spell(&self, form: u8, id: &[u8]) -> Bytes {
        let prefix = match form {
            1 => &[][..],
            f => (f as usize)
                .checked_sub(2)
                .and_then(|i| self.0.get(i))
                .map_or(self.longest(), |p| &p[..]),
        };
        let mut k = Vec::with_capacity(prefix.len() + id.len());
        k.extend_from_slice(prefix);
        k.extend_from_slice(id);
        Bytes::from(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_spelled_back_as_it_was_written() {
        let p = Prefixes::new(vec![
            Bytes::from_static(b"sess:"),
            Bytes::from_static(b"PHPREDIS_SESSION:"),
        ]);
        for key in [
            &b"PHPREDIS_SESSION:abc"[..],
            b"sess:abc",
            b"abc",
            b"other:abc",
        ] {
            let form = p.form_of(key);
            assert_eq!(&p.spell(form, p.strip(key))[..], key);
        }
        // Not spelled by a door (native, memcached): the longest prefix.
        assert_eq!(&p.spell(0, b"abc")[..], b"PHPREDIS_SESSION:abc");
        // A form whose prefix is gone from the configuration.
        assert_eq!(&p.spell(9, b"abc")[..], b"PHPREDIS_SESSION:abc");
    }
}
