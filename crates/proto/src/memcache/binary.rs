//! memcached's binary protocol: a 24-byte header (magic, opcode, key and
//! extras lengths, body length, opaque, CAS), then extras, key and value.
//! Quiet opcodes answer only what matters (a get's hit, a store's failure).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    Answer, FrameError, Keys, Meta, Op, Parsed, Protocol, Request, Status, Store, StoreKind,
    MAX_KEY_LEN,
};
use crate::Limits;

pub(super) const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const HEADER: usize = 24;
/// Room for extras and key on top of the largest value.
const OVERHEAD: usize = 512;

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCREMENT: u8 = 0x05;
const DECREMENT: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const REPLACEQ: u8 = 0x13;
const DELETEQ: u8 = 0x14;
const INCREMENTQ: u8 = 0x15;
const DECREMENTQ: u8 = 0x16;
const QUITQ: u8 = 0x17;
const FLUSHQ: u8 = 0x18;
const APPENDQ: u8 = 0x19;
const PREPENDQ: u8 = 0x1a;
const VERBOSITY: u8 = 0x1b;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
const SASL_LIST_MECHS: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;
const SASL_STEP: u8 = 0x22;
const GATK: u8 = 0x23;
const GATKQ: u8 = 0x24;

/// The quiet twin of each opcode that has one, and whether the pair is a
/// get (whose quiet form drops misses rather than successes).
fn loud(opcode: u8) -> (u8, bool) {
    match opcode {
        GETQ => (GET, true),
        GETKQ => (GETK, true),
        GATQ => (GAT, true),
        GATKQ => (GATK, true),
        SETQ => (SET, true),
        ADDQ => (ADD, true),
        REPLACEQ => (REPLACE, true),
        DELETEQ => (DELETE, true),
        INCREMENTQ => (INCREMENT, true),
        DECREMENTQ => (DECREMENT, true),
        QUITQ => (QUIT, true),
        FLUSHQ => (FLUSH, true),
        APPENDQ => (APPEND, true),
        PREPENDQ => (PREPEND, true),
        op => (op, false),
    }
}

fn frame_error(message: &str) -> FrameError {
    FrameError {
        protocol: Protocol::Binary,
        message: message.to_string(),
    }
}

pub(super) fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Parsed>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[0] != REQUEST_MAGIC {
        return Err(frame_error("Invalid arguments: bad request magic"));
    }
    let opcode = buf[1];
    let key_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let extras_len = usize::from(buf[4]);
    let body_len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let opaque = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
    let cas = u64::from_be_bytes([
        buf[16], buf[17], buf[18], buf[19], buf[20], buf[21], buf[22], buf[23],
    ]);
    if key_len + extras_len > body_len {
        return Err(frame_error(
            "Invalid arguments: key and extras exceed the body",
        ));
    }
    let (base, quiet) = loud(opcode);
    let meta = Meta {
        protocol: Protocol::Binary,
        quiet,
        show_cas: true,
        opcode,
        opaque,
        with_key: matches!(base, GETK | GATK),
    };
    if body_len > limits.max_bulk_len.saturating_add(OVERHEAD) {
        let here = (buf.len() - HEADER).min(body_len);
        buf.advance(HEADER + here);
        return Ok(Some(Parsed::Refused {
            meta,
            status: Status::TooLarge,
            message: String::new(),
            skip: body_len - here,
        }));
    }
    if buf.len() < HEADER + body_len {
        return Ok(None);
    }
    buf.advance(HEADER);
    // A copy of exactly the body, not a slice of the connection's buffer:
    // a stored value would otherwise keep that whole buffer alive.
    let mut body = Bytes::copy_from_slice(&buf[..body_len]);
    buf.advance(body_len);
    let extras = body.split_to(extras_len);
    let key = body.split_to(key_len);
    let value = body;
    let invalid = |message: &str| Parsed::Refused {
        meta,
        status: Status::Invalid,
        message: message.to_string(),
        skip: 0,
    };
    if key.len() > MAX_KEY_LEN {
        return Ok(Some(invalid(
            "Invalid arguments: key longer than 250 bytes",
        )));
    }
    // The body bound above leaves room for a key and extras; the value on
    // its own is held to the same limit as on every other door.
    if value.len() > limits.max_bulk_len {
        return Ok(Some(Parsed::Refused {
            meta,
            status: Status::TooLarge,
            message: String::new(),
            skip: 0,
        }));
    }
    let shape = |want_extras: usize, want_key: bool, want_value: bool| {
        extras.len() == want_extras
            && (key.is_empty() != want_key)
            && (want_value || value.is_empty())
    };
    let op = match base {
        GET | GETK if shape(0, true, false) => Op::Get {
            keys: Keys::One(key),
            touch: None,
        },
        GAT | GATK if shape(4, true, false) => Op::Get {
            keys: Keys::One(key),
            touch: Some(i64::from(be32(&extras, 0))),
        },
        SET | ADD | REPLACE if shape(8, true, true) => Op::Store(Store {
            kind: match (base, cas) {
                (ADD, _) => StoreKind::Add,
                (_, 0) if base == SET => StoreKind::Set,
                (_, 0) => StoreKind::Replace,
                (_, cas) => StoreKind::Cas(cas),
            },
            key,
            flags: be32(&extras, 0),
            exptime: i64::from(be32(&extras, 4)),
            data: value,
        }),
        APPEND | PREPEND if shape(0, true, true) => Op::Store(Store {
            kind: if base == APPEND {
                StoreKind::Append
            } else {
                StoreKind::Prepend
            },
            key,
            flags: 0,
            exptime: 0,
            data: value,
        }),
        DELETE if shape(0, true, false) => Op::Delete { key },
        INCREMENT | DECREMENT if shape(20, true, false) => {
            let delta = be64(&extras, 0);
            let initial = be64(&extras, 8);
            let exptime = be32(&extras, 16);
            Op::Incr {
                key,
                delta,
                decr: base == DECREMENT,
                // All ones: fail on a missing item rather than create it.
                initial: (exptime != u32::MAX).then_some((initial, i64::from(exptime))),
            }
        }
        TOUCH if shape(4, true, false) => Op::Touch {
            key,
            exptime: i64::from(be32(&extras, 0)),
        },
        FLUSH if (extras.is_empty() || extras.len() == 4) && key.is_empty() && value.is_empty() => {
            Op::FlushAll
        }
        VERBOSITY if shape(4, false, false) => Op::Verbosity,
        NOOP if shape(0, false, false) => Op::Noop,
        VERSION if shape(0, false, false) => Op::Version,
        QUIT if shape(0, false, false) => Op::Quit,
        STAT if extras.is_empty() && value.is_empty() => Op::Stats {
            group: (!key.is_empty()).then_some(key),
        },
        SASL_LIST_MECHS => Op::SaslList,
        SASL_AUTH => Op::SaslAuth {
            mechanism: key,
            token: value,
        },
        SASL_STEP => Op::SaslStep,
        GET | GETK | GAT | GATK | SET | ADD | REPLACE | APPEND | PREPEND | DELETE | INCREMENT
        | DECREMENT | TOUCH | FLUSH | VERBOSITY | NOOP | VERSION | QUIT | STAT => {
            return Ok(Some(invalid("Invalid arguments")));
        }
        _ => {
            return Ok(Some(Parsed::Refused {
                meta,
                status: Status::UnknownCommand,
                message: String::new(),
                skip: 0,
            }))
        }
    };
    Ok(Some(Parsed::Request(Request { op, meta })))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// One response packet.
fn packet(
    out: &mut BytesMut,
    meta: &Meta,
    status: u16,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    out.put_u8(RESPONSE_MAGIC);
    out.put_u8(meta.opcode);
    out.put_u16(u16::try_from(key.len()).unwrap_or(u16::MAX));
    out.put_u8(u8::try_from(extras.len()).unwrap_or(u8::MAX));
    out.put_u8(0);
    out.put_u16(status);
    out.put_u32(u32::try_from(extras.len() + key.len() + value.len()).unwrap_or(u32::MAX));
    out.put_u32(meta.opaque);
    out.put_u64(cas);
    out.put_slice(extras);
    out.put_slice(key);
    out.put_slice(value);
}

fn status_code(status: Status) -> (u16, &'static str) {
    match status {
        Status::NotFound => (0x0001, "Not found"),
        Status::Exists => (0x0002, "Data exists for key."),
        Status::TooLarge => (0x0003, "Too large."),
        Status::Invalid => (0x0004, "Invalid arguments"),
        Status::NotStored => (0x0005, "Not stored."),
        Status::NonNumeric => (0x0006, "Non-numeric server-side value for incr or decr"),
        Status::UnknownCommand => (0x0081, "Unknown command"),
        Status::ServerError => (0x0084, "Internal error"),
        Status::AuthError => (0x0020, "Auth failure."),
    }
}

pub(super) fn encode(answer: &Answer, meta: &Meta, out: &mut BytesMut) {
    let is_get = matches!(loud(meta.opcode).0, GET | GETK | GAT | GATK);
    if meta.quiet {
        let drop = match answer {
            Answer::Fail(Status::NotFound, _) => is_get,
            Answer::Fail(..) => false,
            _ => !is_get,
        };
        if drop || meta.opcode == QUITQ {
            return;
        }
    }
    match answer {
        Answer::Hits(hits) => {
            for h in hits {
                let key: &[u8] = if meta.with_key { &h.key } else { &[] };
                packet(out, meta, 0, h.cas, &h.flags.to_be_bytes(), key, &h.data);
            }
        }
        Answer::Stored { cas } => packet(out, meta, 0, *cas, &[], &[], &[]),
        Answer::Deleted | Answer::Touched | Answer::Ok => packet(out, meta, 0, 0, &[], &[], &[]),
        Answer::Number { value, cas } => packet(out, meta, 0, *cas, &[], &[], &value.to_be_bytes()),
        Answer::Version(v) => packet(out, meta, 0, 0, &[], &[], v.as_bytes()),
        Answer::Sasl(v) => packet(out, meta, 0, 0, &[], &[], v.as_bytes()),
        Answer::Stats(stats) => {
            for (name, value) in stats {
                packet(out, meta, 0, 0, &[], name.as_bytes(), value.as_bytes());
            }
            packet(out, meta, 0, 0, &[], &[], &[]);
        }
        Answer::Fail(status, message) => {
            let (code, text) = status_code(*status);
            let body = if message.is_empty() {
                text
            } else {
                message.as_str()
            };
            packet(out, meta, code, 0, &[], &[], body.as_bytes());
        }
    }
}

/// A request header and body, for tests and clients.
pub fn request(
    opcode: u8,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + extras.len() + key.len() + value.len());
    out.put_u8(REQUEST_MAGIC);
    out.put_u8(opcode);
    out.put_u16(u16::try_from(key.len()).unwrap_or(u16::MAX));
    out.put_u8(u8::try_from(extras.len()).unwrap_or(u8::MAX));
    out.put_u8(0);
    out.put_u16(0);
    out.put_u32(u32::try_from(extras.len() + key.len() + value.len()).unwrap_or(u32::MAX));
    out.put_u32(opaque);
    out.put_u64(cas);
    out.put_slice(extras);
    out.put_slice(key);
    out.put_slice(value);
    out.freeze()
}
