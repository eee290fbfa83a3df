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
pub const INLINE_ID_LEN: usize = 34;

/// A session id: arbitrary bytes chosen by a client, or generated.
///
/// Cheap to clone: short ids are held inline (40 bytes in all), longer ones
/// are reference counted. Equality and ordering are those of the bytes,
/// whichever way they are held. The id carries its hash, made once when it
/// is made: a keyed SipHash of the bytes (the key random per process, so no
/// choice of ids can bunch them up), which every look-up of the request
/// reuses ([`IdHasher`], [`SessionId::hash_code`]) instead of hashing the
/// bytes again for the shard, the sessions, the locks.
#[derive(Clone)]
pub struct SessionId(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        hash: u32,
        bytes: [u8; INLINE_ID_LEN],
    },
    Shared {
        hash: u32,
        bytes: Bytes,
    },
}

/// The keyed hash of an id's bytes (SipHash-1-3 with a key drawn once per
/// process), folded to 32 bits.
fn hash_of(bytes: &[u8]) -> u32 {
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let &(k0, k1) = KEY.get_or_init(|| {
        // std's per-process random hasher keys, drawn from the OS: two
        // of its outputs make ours (no failure path at start-up).
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        (random.hash_one(0u64), random.hash_one(1u64))
    });
    let h = siphash::<1, 3>(k0, k1, bytes);
    // Truncation is the point: both halves folded into one.
    (h ^ (h >> 32)) as u32
}

/// SipHash-C-D of `bytes` under the key (k0, k1), in one pass over 8-byte
/// words: the same function std's hashers compute, without their
/// streaming state and the length prefix a `Hash` of a slice adds
/// (an id is hashed once, whole).
fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        for _ in 0..C {
            round(v);
        }
        v[0] ^= m;
    };
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        compress(&mut v, u64::from_le_bytes(word));
    }
    // The last word: the bytes left over, and the length's low byte on top.
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = bytes.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..D {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

impl SessionId {
    /// Wraps raw bytes as an id. Length and alphabet checks are the engine's.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::from_slice(&bytes).unwrap_or_else(|| {
            Self(Repr::Shared {
                hash: hash_of(&bytes),
                bytes,
            })
        })
    }

    /// An id copied from `bytes`, if it is short enough to be held inline.
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let len = u8::try_from(bytes.len()).ok()?;
        let mut inline = [0; INLINE_ID_LEN];
        inline.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self(Repr::Inline {
            len,
            hash: hash_of(bytes),
            bytes: inline,
        }))
    }

    /// An id with the bytes of `bytes`: inline if short, else copied into
    /// an allocation of its own (so it never keeps a larger buffer alive).
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self::from_slice(bytes).unwrap_or_else(|| {
            Self(Repr::Shared {
                hash: hash_of(bytes),
                bytes: Bytes::copy_from_slice(bytes),
            })
        })
    }

    /// A fresh id of `len` URL-safe symbols from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, getrandom::Error> {
        random_string(len).map(Self::new)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Repr::Shared { bytes, .. } => bytes,
        }
    }

    /// The id as shared bytes (a copy for a short id).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared { bytes, .. } => bytes.clone(),
        }
    }

    /// The id's keyed hash, made when the id was: the same for the same
    /// bytes within this process, unpredictable to clients.
    pub fn hash_code(&self) -> u32 {
        match &self.0 {
            Repr::Inline { hash, .. } | Repr::Shared { hash, .. } => *hash,
        }
    }
}

/// The hasher of maps keyed by [`SessionId`]: it takes the hash the id
/// carries, spread over 64 bits, so a look-up hashes nothing. Only for
/// `SessionId` keys (anything else hashed with it gets a plain, unkeyed
/// mix of its bytes).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

/// Builds [`IdHasher`]s: `HashMap<SessionId, V, IdHash>`.
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// An odd constant with well mixed bits (2^64 / φ).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u32(&mut self, n: u32) {
        // The low bits pick the bucket, the top 7 the tag: an odd multiplier
        // keeps the low bits a permutation of the hash's and fills the top.
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(SPREAD);
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
    /// The hash made with the id (equal bytes, equal hash).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u32(self.hash_code());
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

    /// The one-pass SipHash is SipHash: with 2 and 4 rounds it gives what
    /// std's (deprecated, SipHash-2-4) `SipHasher` does, for every length
    /// around the word boundaries.
    #[test]
    #[allow(deprecated)]
    fn the_id_hash_is_siphash() {
        use std::hash::Hasher;
        let bytes: Vec<u8> = (0..=80u8).map(|i| i.wrapping_mul(37)).collect();
        for (k0, k1) in [
            (0, 0),
            (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908),
            (u64::MAX, 7),
        ] {
            for len in 0..bytes.len() {
                let mut std = std::hash::SipHasher::new_with_keys(k0, k1);
                std.write(&bytes[..len]);
                assert_eq!(
                    siphash::<2, 4>(k0, k1, &bytes[..len]),
                    std.finish(),
                    "{len}"
                );
            }
        }
        // The SipHash paper's example: key 00..0f, message 00..0e.
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(
            siphash::<2, 4>(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908, &message),
            0xa129_ca61_49be_45e5
        );
    }

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
            let shared = SessionId(Repr::Shared {
                hash: hash_of(bytes),
                bytes: Bytes::copy_from_slice(bytes),
            });
            assert_eq!(inline_or_not, shared);
            assert_eq!(hasher.hash_one(&inline_or_not), hasher.hash_one(&shared));
            let by_id = IdHash::default();
            assert_eq!(by_id.hash_one(&inline_or_not), by_id.hash_one(&shared));
            assert_eq!(inline_or_not.as_bytes(), bytes);
            assert_eq!(&inline_or_not.to_bytes()[..], bytes);
            assert_eq!(SessionId::copy_from_slice(bytes), shared);
        }
        let short = SessionId::new(&b"abc"[..]);
        assert!(matches!(short.0, Repr::Inline { len: 3, .. }));
        assert!(matches!(
            SessionId::new(long.clone()).0,
            Repr::Shared { .. }
        ));
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

/// The bytes a session id may be made of: a set of ASCII characters,
/// written as characters and `a-z` ranges (`"A-Za-z0-9,-"`; a `-` first or
/// last stands for itself), and optionally ([`IdChars::with_utf8`]) any
/// non-ASCII UTF-8 character that is not a control or space character. Ids
/// sessiond generates always fit the default.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdChars {
    allowed: [u64; 2],
    /// When the ASCII set is one run of characters (the default's `!-~`
    /// is): its first byte and the offset of its last from it, so a check
    /// is one comparison a byte.
    run: Option<(u8, u8)>,
    /// Whether ids may also hold non-ASCII UTF-8 characters (but no control
    /// or space characters): Django's cache tests and pymemcache send them.
    utf8: bool,
    /// The spelling it was read from, shown in errors and printed back
    /// (bounded: [`IdChars::parse`] refuses anything long).
    spelling: [u8; IdChars::MAX_SPELLING],
    spelling_len: u8,
}

impl IdChars {
    const MAX_SPELLING: usize = 128;

    /// Every printable ASCII character but space: ids cannot break a line
    /// of any protocol or a log line.
    pub fn printable() -> Self {
        Self::parse("!-~")
            .unwrap_or_else(|_| unreachable!("a valid default"))
            .with_utf8(true)
    }

    /// Reads a spelling like `"A-Za-z0-9,-"`.
    pub fn parse(spelling: &str) -> Result<Self, String> {
        let bytes = spelling.as_bytes();
        if bytes.is_empty() || bytes.len() > Self::MAX_SPELLING {
            return Err(format!(
                "an id alphabet is 1 to {} characters, like \"A-Za-z0-9,-\"",
                Self::MAX_SPELLING
            ));
        }
        if let Some(&b) = bytes.iter().find(|&&b| !(0x21..=0x7e).contains(&b)) {
            return Err(format!(
                "an id alphabet holds printable ASCII only, not byte {b:#04x}"
            ));
        }
        let mut allowed = [0u64; 2];
        let mut i = 0;
        while i < bytes.len() {
            let (lo, hi) = match bytes.get(i + 1..i + 3) {
                Some([b'-', hi]) => {
                    i += 3;
                    (bytes[i - 3], *hi)
                }
                _ => {
                    i += 1;
                    (bytes[i - 1], bytes[i - 1])
                }
            };
            if lo > hi {
                return Err(format!(
                    "the range {}-{} in the id alphabet runs backwards",
                    lo as char, hi as char
                ));
            }
            for b in lo..=hi {
                allowed[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        let mut s = [0u8; Self::MAX_SPELLING];
        s[..bytes.len()].copy_from_slice(bytes);
        let has = |b: u8| allowed[usize::from(b >> 6)] & (1 << (b & 63)) != 0;
        let run = (0..128u8).find(|&b| has(b)).and_then(|lo| {
            let hi = (lo..128).take_while(|&b| has(b)).last().unwrap_or(lo);
            // One run only if nothing above it is allowed.
            (hi..128).skip(1).all(|b| !has(b)).then_some((lo, hi - lo))
        });
        Ok(Self {
            allowed,
            run,
            utf8: false,
            spelling: s,
            spelling_len: bytes.len() as u8,
        })
    }

    /// The same alphabet, with non-ASCII UTF-8 characters allowed or not.
    pub fn with_utf8(mut self, utf8: bool) -> Self {
        self.utf8 = utf8;
        self
    }

    /// Whether non-ASCII UTF-8 characters are allowed.
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// Whether every byte of `id` is in the alphabet.
    pub fn allows(&self, id: &[u8]) -> bool {
        if let Some((lo, span)) = self.run {
            // No early exit: the loop runs over the whole id in vector
            // steps. A byte outside the run is looked at again below
            // (it may be an allowed non-ASCII character).
            let outside = id
                .iter()
                .fold(false, |out, &b| out | (b.wrapping_sub(lo) > span));
            if !outside {
                return true;
            }
        }
        let ascii = |b: u8| b < 128 && self.allowed[usize::from(b >> 6)] & (1 << (b & 63)) != 0;
        if id.is_ascii() {
            return id.iter().all(|&b| ascii(b));
        }
        // Non-ASCII: valid UTF-8, with no control or space character.
        self.utf8
            && std::str::from_utf8(id).is_ok_and(|text| {
                text.chars().all(|c| match u8::try_from(c) {
                    Ok(b) if b < 128 => ascii(b),
                    _ => !c.is_control() && !c.is_whitespace(),
                })
            })
    }

    /// The spelling it was read from.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.spelling[..usize::from(self.spelling_len)]).unwrap_or("")
    }
}

impl Default for IdChars {
    fn default() -> Self {
        Self::printable()
    }
}

impl fmt::Debug for IdChars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdChars({:?})", self.as_str())
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    #[test]
    fn utf8_ids_are_allowed_but_never_control_or_space_characters() {
        let chars = IdChars::default();
        assert!(chars.allows("caché:ключ:キー".as_bytes()));
        for refused in ["a\u{85}b", "a\u{2028}b", "a\u{3000}b", "a b", "a\u{7f}"] {
            assert!(!chars.allows(refused.as_bytes()), "{refused:?}");
        }
        assert!(!chars.allows(&[b'a', 0xff, b'b']), "not UTF-8");
        let ascii = IdChars::default().with_utf8(false);
        assert!(!ascii.allows("caché".as_bytes()));
        assert!(ascii.allows(b"cache"));
    }
}

#[cfg(test)]
mod id_chars_tests {
    use super::*;

    #[test]
    fn alphabets_read_ranges_and_single_characters() {
        let php = IdChars::parse("A-Za-z0-9,-").unwrap();
        assert!(php.allows(b"abcXYZ019,-"));
        assert!(!php.allows(b"a b") && !php.allows(b"a_b") && !php.allows("é".as_bytes()));
        let d = IdChars::default();
        assert!(d.allows(b"PHPREDIS_SESSION:abc~!") && !d.allows(b"a b") && !d.allows(b"a\r\n"));
        assert!(d.allows(SessionId::generate(32).unwrap().as_bytes()));
        assert_eq!(php.as_str(), "A-Za-z0-9,-");
        for bad in ["", "z-a", "a b", "\u{e9}"] {
            assert!(IdChars::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdChars::parse(&"a".repeat(129)).is_err());
    }

    /// The one-run shortcut answers as the per-character set does.
    #[test]
    fn a_one_run_alphabet_checks_as_the_set_does() {
        assert!(IdChars::parse("!-~").unwrap().run.is_some());
        assert!(IdChars::parse("a-c").unwrap().run.is_some());
        assert!(IdChars::parse("A-Za-z0-9,-").unwrap().run.is_none());
        for spelling in ["!-~", "a-z", "a-c", "!", "~", "A-Za-z0-9,-", "0-9a", "ab"] {
            for utf8 in [false, true] {
                let chars = IdChars::parse(spelling).unwrap().with_utf8(utf8);
                let set = IdChars { run: None, ..chars };
                for b in 0..=255u8 {
                    for id in [
                        vec![b],
                        vec![b'a', b],
                        vec![b; 40],
                        [&[b'~'; 33][..], &[b]].concat(),
                    ] {
                        assert_eq!(chars.allows(&id), set.allows(&id), "{spelling} {id:?}");
                    }
                }
                for id in ["é", "aé~", "a\u{3000}"] {
                    assert_eq!(
                        chars.allows(id.as_bytes()),
                        set.allows(id.as_bytes()),
                        "{id}"
                    );
                }
            }
        }
    }
}
