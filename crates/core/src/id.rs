//! Session identifiers and the random strings they are made of.

use std::fmt;

use bytes::Bytes;

/// The URL-safe alphabet of generated ids: 64 symbols, 6 bits each.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The shortest generated id: 22 symbols of 6 bits carry 132 bits of entropy.
pub const MIN_GENERATED_LEN: usize = 22;
/// The default length of a generated id: 32 symbols, 192 bits.
pub const DEFAULT_GENERATED_LEN: usize = 32;
/// The longest random string `RANDSTR` or `UNIQ LEN` hands out.
pub const MAX_RANDOM_LEN: usize = 4096;

/// The longest id kept inside the [`SessionId`] value itself. PHP's ids
/// (26 to 32 symbols by default) and generated ones (32) fit, so looking an
/// id up compares bytes that are already in the hash table's slot instead
/// of chasing a pointer, and a stored session's id costs no allocation.
pub const INLINE_ID_LEN: usize = 38;

/// A session id: arbitrary bytes chosen by a client, or generated.
///
/// Cheap to clone: short ids are held inline (40 bytes in all), longer ones
/// are reference counted. Equality, ordering and hashing are those of the
/// bytes, whichever way they are held.
#[derive(Clone)]
pub struct SessionId(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_ID_LEN] },
    Shared(Bytes),
}

impl SessionId {
    /// Wraps raw bytes as an id. Length and alphabet checks are the engine's.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::from_slice(&bytes).unwrap_or(Self(Repr::Shared(bytes)))
    }

    /// An id copied from `bytes`, if it is short enough to be held inline.
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let len = u8::try_from(bytes.len()).ok()?;
        let mut inline = [0; INLINE_ID_LEN];
        inline.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self(Repr::Inline { len, bytes: inline }))
    }

    /// An id with the bytes of `bytes`: inline if short, else copied into
    /// an allocation of its own (so it never keeps a larger buffer alive).
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self::from_slice(bytes).unwrap_or_else(|| Self(Repr::Shared(Bytes::copy_from_slice(bytes))))
    }

    /// A fresh id of `len` URL-safe symbols from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, getrandom::Error> {
        random_string(len).map(Self::new)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    /// The id as shared bytes (a copy for a short id).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared(b) => b.clone(),
        }
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SessionId {}

impl PartialOrd for SessionId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SessionId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Display for SessionId {
    /// Prints the id for humans and error lines: printable ASCII as is,
    /// anything else escaped, long ids cut, so an error message stays on one
    /// line whatever the client sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 80;
        let bytes = self.as_bytes();
        for &b in bytes.iter().take(SHOWN) {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if bytes.len() > SHOWN {
            write!(f, "...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// `len` symbols of the URL-safe alphabet from the OS CSPRNG.
///
/// Each random byte is reduced modulo 64; 256 is a multiple of 64, so every
/// symbol is equally likely.
pub fn random_string(len: usize) -> Result<Bytes, getrandom::Error> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf)?;
    for b in &mut buf {
        *b = ALPHABET[usize::from(*b & 63)];
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_url_safe_and_distinct() {
        let a = SessionId::generate(DEFAULT_GENERATED_LEN).unwrap();
        let b = SessionId::generate(DEFAULT_GENERATED_LEN).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), DEFAULT_GENERATED_LEN);
        assert!(a.as_bytes().iter().all(|c| ALPHABET.contains(c)));
    }

    #[test]
    fn short_and_long_ids_compare_hash_and_order_by_their_bytes() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let long = vec![b'x'; INLINE_ID_LEN + 1];
        let cases: [&[u8]; 5] = [b"", b"a", b"abc", &[b'x'; INLINE_ID_LEN], &long];
        for bytes in cases {
            let inline_or_not = SessionId::new(Bytes::copy_from_slice(bytes));
            let shared = SessionId(Repr::Shared(Bytes::copy_from_slice(bytes)));
            assert_eq!(inline_or_not, shared);
            assert_eq!(hasher.hash_one(&inline_or_not), hasher.hash_one(&shared));
            assert_eq!(inline_or_not.as_bytes(), bytes);
            assert_eq!(&inline_or_not.to_bytes()[..], bytes);
            assert_eq!(SessionId::copy_from_slice(bytes), shared);
        }
        let short = SessionId::new(&b"abc"[..]);
        assert!(matches!(short.0, Repr::Inline { len: 3, .. }));
        assert!(matches!(SessionId::new(long.clone()).0, Repr::Shared(_)));
        assert!(SessionId::new(&b"ab"[..]) < SessionId::new(&b"abc"[..]));
        assert!(SessionId::new(&b"y"[..]) > SessionId::new(long.clone()));
        assert!(SessionId::new(&b"abd"[..]) < SessionId::new(long));
        assert_eq!(std::mem::size_of::<SessionId>(), 40);
    }

    #[test]
    fn display_escapes_control_bytes() {
        let id = SessionId::new(&b"a\r\nb"[..]);
        assert_eq!(id.to_string(), "a\\x0d\\x0ab");
    }
}
