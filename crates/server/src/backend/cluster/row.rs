//! A session as a `sessiond_session` row and its `sessiond_var` index
//! rows, and back.

use std::collections::BTreeMap;

use blake2::{Blake2b256, Digest};
use bytes::Bytes;
use sessiond_core::fields::IndexFields;
use sessiond_core::{Session, SessionId, NEVER};

use super::db::DbRow;
use super::pool::DbError;

/// How a time or timeout that never runs out is stored (`bigint`).
const NEVER_SQL: i64 = i64::MAX;

/// A u64 as a `bigint` (never runs out stays so; the rest are ms since
/// the epoch or counters, far below 2^63).
pub(crate) fn to_sql(v: u64) -> i64 {
    if v == NEVER {
        NEVER_SQL
    } else {
        i64::try_from(v).unwrap_or(NEVER_SQL - 1)
    }
}

/// A `bigint` as a u64.
pub(crate) fn from_sql(v: i64) -> u64 {
    if v == NEVER_SQL {
        NEVER
    } else {
        u64::try_from(v).unwrap_or(0)
    }
}

/// A session row as read: its revision and the session.
pub(crate) struct Loaded {
    pub(crate) rev: i64,
    pub(crate) session: Session,
    /// Until when its lock is held, as the lock row says (0: not held, or
    /// not read).
    pub(crate) held_until_ms: u64,
}

/// Reads one row of [`super::statements::SESSION_COLUMNS`].
pub(crate) fn decode(row: &DbRow) -> Result<(SessionId, Loaded), DbError> {
    decode_at(row, 0)
}

/// Reads [`super::statements::SESSION_COLUMNS`] from column `at` on.
pub(crate) fn decode_at(row: &DbRow, at: usize) -> Result<(SessionId, Loaded), DbError> {
    let id = row.bytes(at)?;
    let rev = row.i64(at + 1)?;
    let version = from_sql(row.i64(at + 2)?);
    let created = from_sql(row.i64(at + 3)?);
    let accessed = from_sql(row.i64(at + 4)?);
    let timeout = from_sql(row.i64(at + 5)?);
    let flags = u32::try_from(row.i64(at + 6)?).unwrap_or(0);
    let key_form = row.i16(at + 7)?;
    let class = row.opt_bytes(at + 8)?;
    let data = row.bytes(at + 9)?;
    let vars = match row.opt_bytes(at + 10)? {
        Some(b) => {
            decode_vars(&b).ok_or_else(|| DbError::Failed("a damaged variables column".into()))?
        }
        None => BTreeMap::new(),
    };
    let mut session = Session::restored(
        class.map(Bytes::from),
        Bytes::from(data),
        vars,
        flags,
        created,
        accessed,
        timeout,
        version,
    );
    session.key_form = u8::try_from(key_form).unwrap_or(0);
    Ok((
        SessionId::new(Bytes::from(id)),
        Loaded {
            rev,
            session,
            held_until_ms: 0,
        },
    ))
}

/// The variables as one column: for each, the name's length (u32, big
/// endian), the name, the value's length, the value.
pub(crate) fn encode_vars(vars: &BTreeMap<Bytes, Bytes>) -> Option<Vec<u8>> {
    if vars.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (name, value) in vars {
        for part in [name, value] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    Some(out)
}

fn decode_vars(mut b: &[u8]) -> Option<BTreeMap<Bytes, Bytes>> {
    let mut vars = BTreeMap::new();
    let take = |b: &mut &[u8]| -> Option<Bytes> {
        let (len, rest) = b.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let part = rest.get(..len)?;
        *b = &rest[len..];
        Some(Bytes::copy_from_slice(part))
    };
    while !b.is_empty() {
        let name = take(&mut b)?;
        let value = take(&mut b)?;
        vars.insert(name, value);
    }
    Some(vars)
}

/// The key a value is found by in `sessiond_var`: the value itself up to
/// 64 bytes (after a 0 byte), else its hash (after a 1 byte).
pub(crate) fn value_key(value: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(65.min(value.len() + 1));
    if value.len() <= 64 {
        k.push(0);
        k.extend_from_slice(value);
    } else {
        k.push(1);
        k.extend_from_slice(&Blake2b256::digest(value));
    }
    k
}

/// Longest variable name `sessiond_var` keeps as it is (B-tree keys are
/// bounded: MySQL's column is `VARBINARY(1024)`, PostgreSQL's index entries
/// some 2.7 kB).
pub(crate) const MAX_NAME_KEY: usize = 1024;

/// The key a variable's name is found by in `sessiond_var`: the name
/// itself up to [`MAX_NAME_KEY`] bytes, else a 0xff byte and its hash. A
/// short name that equals some long name's key only makes FIND read one
/// session more: every hit is checked against the session itself.
pub(crate) fn name_key(name: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if name.len() <= MAX_NAME_KEY {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut k = Vec::with_capacity(33);
    k.push(0xff);
    k.extend_from_slice(&Blake2b256::digest(name));
    std::borrow::Cow::Owned(k)
}

/// The index rows of a session: its variables (`v`), and the fields of its
/// data the operator indexes (`f`) that no variable shadows.
pub(crate) struct IndexRows {
    pub(crate) kinds: Vec<i8>,
    pub(crate) names: Vec<Vec<u8>>,
    pub(crate) keys: Vec<Vec<u8>>,
}

impl IndexRows {
    /// The rows as one string, as MySQL's procedures take them: for each,
    /// its kind (one byte), then its name and its value key, each after
    /// its length (two bytes, big endian).
    pub(crate) fn blob(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for ((kind, name), key) in self.kinds.iter().zip(&self.names).zip(&self.keys) {
            out.push(*kind as u8);
            for part in [name, key] {
                let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&part[..usize::from(len)]);
            }
        }
        out
    }
}

pub(crate) fn index_rows(session: &Session, indexed: &IndexFields) -> IndexRows {
    let mut rows = IndexRows {
        kinds: Vec::new(),
        names: Vec::new(),
        keys: Vec::new(),
    };
    let vars = session.vars();
    for (name, value) in vars {
        rows.kinds.push(b'v' as i8);
        rows.names.push(name_key(name).into_owned());
        rows.keys.push(value_key(value));
    }
    if !matches!(indexed, IndexFields::Only(n) if n.is_empty()) {
        for (name, value) in session.fields() {
            if indexed.wants(&name) && !vars.contains_key(&name) {
                rows.kinds.push(b'f' as i8);
                rows.names.push(name_key(&name).into_owned());
                rows.keys.push(value_key(&value));
            }
        }
    }
    rows
}

/// The place of `id` in the scan order: a keyed hash every node computes
/// alike, in 63 bits (a `bigint` ≥ 0, a Redis SCAN cursor).
pub(crate) fn place(key: &[u8], id: &[u8]) -> i64 {
    let mut h = Blake2b256::new();
    h.update((key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(id);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_back_as_they_went() {
        let mut vars = BTreeMap::new();
        vars.insert(Bytes::from("a"), Bytes::from(""));
        vars.insert(Bytes::from(""), Bytes::from("x\0y"));
        vars.insert(Bytes::from(vec![0xff; 300]), Bytes::from(vec![7; 70_000]));
        let b = encode_vars(&vars).expect("some");
        assert_eq!(decode_vars(&b), Some(vars));
        assert!(encode_vars(&BTreeMap::new()).is_none());
        assert_eq!(decode_vars(&b[..b.len() - 1]), None, "a cut column");
    }

    #[test]
    fn long_values_are_found_by_their_hash() {
        assert_eq!(value_key(b"42"), b"\x0042".to_vec());
        let long = vec![b'x'; 65];
        let k = value_key(&long);
        assert_eq!((k[0], k.len()), (1, 33));
        assert_ne!(value_key(&k[1..]), k, "a value cannot pass for a hash");
    }

    #[test]
    fn places_are_the_same_for_the_same_key_and_fit_a_cursor() {
        let a = place(b"k", b"abc");
        assert_eq!(a, place(b"k", b"abc"));
        assert_ne!(a, place(b"other", b"abc"));
        assert!(a >= 0);
    }
}
