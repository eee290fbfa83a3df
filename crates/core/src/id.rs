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

/// A session id: arbitrary bytes chosen by a client, or generated.
///
/// Cheap to clone (reference counted).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Bytes);

impl SessionId {
    /// Wraps raw bytes as an id. Length and alphabet checks are the engine's.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// A fresh id of `len` URL-safe symbols from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, getrandom::Error> {
        random_string(len).map(Self)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id as shared bytes.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl fmt::Display for SessionId {
    /// Prints the id for humans and error lines: printable ASCII as is,
    /// anything else escaped, long ids cut, so an error message stays on one
    /// line whatever the client sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 80;
        for &b in self.0.iter().take(SHOWN) {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.0.len() > SHOWN {
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
    fn display_escapes_control_bytes() {
        let id = SessionId::new(&b"a\r\nb"[..]);
        assert_eq!(id.to_string(), "a\\x0d\\x0ab");
    }
}
