//! The on-disk record format shared by the log and the snapshot.
//!
//! A file starts with an 8-byte magic that names its kind and format. Then
//! frames. Format 2 (written since the `repair` release):
//!
//! ```text
//! len: u32 LE | crc32(payload): u32 LE | crc32(len, crc): u32 LE | payload
//! ```
//!
//! Format 1 (still read) lacks the third word. The header's own checksum is
//! what lets a reader find the next record after a damaged one: at every
//! byte it can tell in O(1), with a 2^-32 false-positive rate, whether a
//! frame starts there, without reading a payload the length claims.
//!
//! ```text
//! payload = tag: u8, then the fields of that record
//! bytes   = len: u32 LE, then the bytes
//! ```
//!
//! A frame whose length runs past the end of the file, or whose CRC does not
//! match, is damage. Damage with no valid frame after it is a torn tail (a
//! crash mid-append); anything else is not, and only `sessiond repair`
//! salvages past it (see `files.rs` and docs/durability.md).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};
use sessiond_core::{Mutation, Session, SessionId};

/// Magic of a log file in the format written today.
pub const LOG_MAGIC: &[u8; 8] = b"SDLOG002";
/// Magic of a snapshot file in the format written today.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SDSNAP02";
const LOG_MAGIC_V1: &[u8; 8] = b"SDLOG001";
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"SDSNAP01";
/// The frame header written today: length, payload CRC, header CRC.
const HEADER_V2: usize = 12;
const HEADER_V1: usize = 8;
/// No record is larger than this; a length above it is corruption.
pub const MAX_RECORD: usize = 1 << 30;

/// How a file's frames are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Length and payload CRC (files written before `repair` existed).
    V1,
    /// Length, payload CRC and a CRC of those two.
    V2,
}

impl Format {
    /// The format a file's magic announces, for a snapshot or a log.
    pub fn of(magic: &[u8], snapshot: bool) -> Option<Format> {
        let (v1, v2) = if snapshot {
            (SNAPSHOT_MAGIC_V1, SNAPSHOT_MAGIC)
        } else {
            (LOG_MAGIC_V1, LOG_MAGIC)
        };
        if magic == v2 {
            Some(Format::V2)
        } else if magic == v1 {
            Some(Format::V1)
        } else {
            None
        }
    }

    /// Bytes of a frame header.
    pub fn header_len(self) -> usize {
        match self {
            Format::V1 => HEADER_V1,
            Format::V2 => HEADER_V2,
        }
    }

    /// Reads a frame header: the payload's length and CRC. A length that is
    /// zero or impossible, or (in format 2) a header whose own CRC does not
    /// match, is an error: no frame starts here.
    pub fn header(self, h: &[u8]) -> Result<(usize, u32), RecordError> {
        if h.len() < self.header_len() {
            return Err(RecordError::Truncated);
        }
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if self == Format::V2 && crc32fast::hash(&h[..8]) != word(8) {
            return Err(RecordError::BadHeader);
        }
        let len = word(0) as usize;
        if len == 0 || len > MAX_RECORD {
            return Err(RecordError::BadLength(len as u64));
        }
        Ok((len, word(4)))
    }
}

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const SET_VARS: u8 = 3;
const DEL_VAR: u8 = 4;
const SET_DATA: u8 = 5;
const TIMEOUT: u8 = 6;
const TOUCH: u8 = 7;
const FENCING_KEYS: u8 = 8;
const END: u8 = 9;
/// A `PUT` whose session keeps a key form other than 0 (a Redis key
/// written without the first prefix): the same fields, then the form.
/// Sessions of form 0 are written as `PUT`, as before forms existed.
const PUT_KEYED: u8 = 10;

/// Whether `t` is the tag of a record (a cheap test while resynchronising).
pub fn is_tag(t: u8) -> bool {
    (PUT..=END).contains(&t)
}

/// A record as stored: a mutation, or the end marker of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Mutation(Mutation),
    /// Closes a snapshot: it holds exactly `sessions` sessions.
    End {
        sessions: u64,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the file ends inside a record")]
    Truncated,
    #[error("record length {0} is impossible")]
    BadLength(u64),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("frame header checksum mismatch")]
    BadHeader,
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Appends one framed record to `out`, in the format written today.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::Mutation(m) => encode_mutation(m, out),
        Record::End { sessions } => framed(out, |out| {
            out.put_u8(END);
            out.put_u64_le(*sessions);
        }),
    }
}

/// [`encode`] of `Record::Mutation(m)`, without the record's copy of `m`.
pub fn encode_mutation(m: &Mutation, out: &mut Vec<u8>) {
    framed(out, |out| encode_payload(m, out));
}

/// Appends the frame of the payload `put` writes: its length and
/// checksums, then it.
fn framed(out: &mut Vec<u8>, put: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_V2]);
    put(out);
    let payload = &out[at + HEADER_V2..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    let head = crc32fast::hash(&out[at..at + 8]);
    out[at + 8..at + 12].copy_from_slice(&head.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32_le(u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.put_slice(b);
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(Bytes, Bytes)]) {
    out.put_u32_le(u32::try_from(pairs.len()).unwrap_or(u32::MAX));
    for (n, v) in pairs {
        put_bytes(out, n);
        put_bytes(out, v);
    }
}

fn encode_payload(m: &Mutation, out: &mut Vec<u8>) {
    match m {
        Mutation::Put { id, session: s } => {
            out.put_u8(if s.key_form == 0 { PUT } else { PUT_KEYED });
            put_bytes(out, id.as_bytes());
            match s.class() {
                Some(c) => {
                    out.put_u8(1);
                    put_bytes(out, c);
                }
                None => out.put_u8(0),
            }
            put_bytes(out, &s.data);
            out.put_u32_le(u32::try_from(s.vars().len()).unwrap_or(u32::MAX));
            for (n, v) in s.vars() {
                put_bytes(out, n);
                put_bytes(out, v);
            }
            out.put_u32_le(s.flags);
            out.put_u64_le(s.created_ms);
            out.put_u64_le(s.accessed_ms);
            out.put_u64_le(s.timeout_ms);
            out.put_u64_le(s.version);
            if s.key_form != 0 {
                out.put_u8(s.key_form);
            }
        }
        Mutation::Remove { id } => {
            out.put_u8(REMOVE);
            put_bytes(out, id.as_bytes());
        }
        Mutation::SetVars {
            id,
            pairs,
            version,
            accessed_ms,
        } => {
            out.put_u8(SET_VARS);
            put_bytes(out, id.as_bytes());
            put_pairs(out, pairs);
            out.put_u64_le(*version);
            out.put_u64_le(*accessed_ms);
        }
        Mutation::DelVar {
            id,
            name,
            version,
            accessed_ms,
        } => {
            out.put_u8(DEL_VAR);
            put_bytes(out, id.as_bytes());
            put_bytes(out, name);
            out.put_u64_le(*version);
            out.put_u64_le(*accessed_ms);
        }
        Mutation::SetData {
            id,
            data,
            version,
            accessed_ms,
        } => {
            out.put_u8(SET_DATA);
            put_bytes(out, id.as_bytes());
            put_bytes(out, data);
            out.put_u64_le(*version);
            out.put_u64_le(*accessed_ms);
        }
        Mutation::Timeout {
            id,
            timeout_ms,
            accessed_ms,
        } => {
            out.put_u8(TIMEOUT);
            put_bytes(out, id.as_bytes());
            out.put_u64_le(*timeout_ms);
            out.put_u64_le(*accessed_ms);
        }
        Mutation::Touch { id, accessed_ms } => {
            out.put_u8(TOUCH);
            put_bytes(out, id.as_bytes());
            out.put_u64_le(*accessed_ms);
        }
        Mutation::FencingKeys { up_to } => {
            out.put_u8(FENCING_KEYS);
            out.put_u64_le(*up_to);
        }
    }
}

/// Reads the frame at the start of `buf`: the record and the bytes it took.
#[cfg(test)]
pub fn decode(format: Format, buf: &[u8]) -> Result<(Record, usize), RecordError> {
    let (len, crc) = format.header(buf)?;
    let at = format.header_len();
    let Some(payload) = buf.get(at..at + len) else {
        return Err(RecordError::Truncated);
    };
    Ok((decode_payload(payload, crc)?, at + len))
}

/// Reads a frame's payload, checking it against the header's `crc`.
pub fn decode_payload(payload: &[u8], crc: u32) -> Result<Record, RecordError> {
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::BadChecksum);
    }
    let mut r = Reader { buf: payload };
    let record = r.record()?;
    if !r.buf.is_empty() {
        return Err(RecordError::Malformed("trailing bytes"));
    }
    Ok(record)
}

/// A bounds-checked cursor: every length is checked against what is left
/// before anything is allocated.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Malformed("field runs past the record"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-prefixed field, borrowed from the record.
    fn field(&mut self) -> Result<&[u8], RecordError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        self.field().map(Bytes::copy_from_slice)
    }

    /// An id, copied once (inline when short) rather than through `Bytes`.
    fn id(&mut self) -> Result<SessionId, RecordError> {
        self.field().map(SessionId::copy_from_slice)
    }

    fn pairs(&mut self) -> Result<Vec<(Bytes, Bytes)>, RecordError> {
        let n = self.u32()? as usize;
        // Each pair takes at least 8 bytes: never reserve more than could fit.
        let mut pairs = Vec::with_capacity(n.min(self.buf.len() / 8));
        for _ in 0..n {
            pairs.push((self.bytes()?, self.bytes()?));
        }
        Ok(pairs)
    }

    fn record(&mut self) -> Result<Record, RecordError> {
        let m = match self.u8()? {
            tag @ (PUT | PUT_KEYED) => {
                let id = self.id()?;
                let class = match self.u8()? {
                    0 => None,
                    1 => Some(self.bytes()?),
                    _ => return Err(RecordError::Malformed("class flag")),
                };
                let data = self.bytes()?;
                let vars: BTreeMap<Bytes, Bytes> = self.pairs()?.into_iter().collect();
                let flags = self.u32()?;
                let (created, accessed, timeout, version) =
                    (self.u64()?, self.u64()?, self.u64()?, self.u64()?);
                let mut session = Session::restored(
                    class, data, vars, flags, created, accessed, timeout, version,
                );
                if tag == PUT_KEYED {
                    session.key_form = self.u8()?;
                }
                Mutation::Put { id, session }
            }
            REMOVE => Mutation::Remove { id: self.id()? },
            SET_VARS => Mutation::SetVars {
                id: self.id()?,
                pairs: self.pairs()?,
                version: self.u64()?,
                accessed_ms: self.u64()?,
            },
            DEL_VAR => Mutation::DelVar {
                id: self.id()?,
                name: self.bytes()?,
                version: self.u64()?,
                accessed_ms: self.u64()?,
            },
            SET_DATA => Mutation::SetData {
                id: self.id()?,
                data: self.bytes()?,
                version: self.u64()?,
                accessed_ms: self.u64()?,
            },
            TIMEOUT => Mutation::Timeout {
                id: self.id()?,
                timeout_ms: self.u64()?,
                accessed_ms: self.u64()?,
            },
            TOUCH => Mutation::Touch {
                id: self.id()?,
                accessed_ms: self.u64()?,
            },
            FENCING_KEYS => Mutation::FencingKeys { up_to: self.u64()? },
            END => {
                return Ok(Record::End {
                    sessions: self.u64()?,
                })
            }
            _ => return Err(RecordError::Malformed("unknown record tag")),
        };
        Ok(Record::Mutation(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        let id = SessionId::new(Bytes::from_static(b"abc"));
        let mut vars = BTreeMap::new();
        vars.insert(Bytes::from_static(b"user"), Bytes::from_static(b"42"));
        let session = Session::restored(
            Some(Bytes::from_static(b"c")),
            Bytes::from_static(b"\0data"),
            vars,
            7,
            1,
            2,
            3,
            4,
        );
        // A Redis key written without the first prefix keeps its form.
        let mut keyed = session.clone();
        keyed.key_form = 3;
        vec![
            Record::Mutation(Mutation::Put {
                id: id.clone(),
                session,
            }),
            Record::Mutation(Mutation::Put {
                id: id.clone(),
                session: keyed,
            }),
            Record::Mutation(Mutation::Remove { id: id.clone() }),
            Record::Mutation(Mutation::SetVars {
                id: id.clone(),
                pairs: vec![(Bytes::from_static(b"a"), Bytes::from_static(b"1"))],
                version: 9,
                accessed_ms: 10,
            }),
            Record::Mutation(Mutation::DelVar {
                id: id.clone(),
                name: Bytes::from_static(b"a"),
                version: 11,
                accessed_ms: 12,
            }),
            Record::Mutation(Mutation::SetData {
                id: id.clone(),
                data: Bytes::from_static(b"blob"),
                version: 13,
                accessed_ms: 14,
            }),
            Record::Mutation(Mutation::Timeout {
                id: id.clone(),
                timeout_ms: 15,
                accessed_ms: 16,
            }),
            Record::Mutation(Mutation::Touch {
                id,
                accessed_ms: 17,
            }),
            Record::Mutation(Mutation::FencingKeys { up_to: 18 }),
            Record::End { sessions: 19 },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        let mut buf = Vec::new();
        for r in samples() {
            encode(&r, &mut buf);
        }
        let mut at = 0;
        for want in samples() {
            let (got, used) = decode(Format::V2, &buf[at..]).unwrap();
            assert_eq!(got, want);
            at += used;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn damage_is_detected_not_misread() {
        let mut buf = Vec::new();
        for r in samples() {
            encode(&r, &mut buf);
        }
        for cut in 0..buf.len() {
            // A torn tail: a prefix decodes to whole records, then stops.
            let mut at = 0;
            while let Ok((_, used)) = decode(Format::V2, &buf[at..cut]) {
                at += used;
            }
            assert!(at <= cut);
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x41;
            let mut at = 0;
            let mut n = 0;
            while let Ok((_, used)) = decode(Format::V2, &bad[at..]) {
                at += used;
                n += 1;
            }
            assert!(n < samples().len(), "a flipped byte at {i} went unnoticed");
        }
    }
}
