//! The memcached door: the text and binary protocols, sans I/O.
//!
//! An item is a session: its value is the session's data, its exptime the
//! session's timeout, its CAS the session's version, its flags kept with
//! it. Keys map onto sessions per [`McKeys`]: php-memcached's
//! `memc.sess.key.` prefix is stripped to the session id, and its lock key
//! (`lock.<id>`, added with `add`, removed with `delete`) is that session's
//! lock, shared with `SESSION.LOCK` and the Redis door.
//!
//! A connection speaks one protocol, chosen by its first byte (`0x80` is
//! the binary request magic), as memcached does. Both parsers turn bytes
//! into a [`Request`]; [`encode`] turns an [`Answer`] back into the bytes
//! of the request's protocol.

mod binary;
mod keys;
#[cfg(test)]
mod tests;
mod text;

use bytes::{BufMut, Bytes, BytesMut};

pub use binary::request as binary_request;
pub use keys::{McKeys, LOCK_PREFIX};
pub use text::{put_hit, quick, Quick};

use crate::Limits;

/// The longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;

/// memcached's boundary between relative exptimes (seconds from now) and
/// absolute ones (a Unix time): 30 days.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// The two wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Text,
    Binary,
}

impl Protocol {
    /// The protocol a connection speaks, from its first byte.
    pub fn detect(first: u8) -> Self {
        if first == binary::REQUEST_MAGIC {
            Protocol::Binary
        } else {
            Protocol::Text
        }
    }
}

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item's CAS is still this.
    Cas(u64),
}

/// A storage command: `set`, `add`, `replace`, `append`, `prepend`, `cas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub kind: StoreKind,
    pub key: Bytes,
    pub flags: u32,
    pub exptime: i64,
    pub data: Bytes,
}

/// The keys of a get: most name one, held without a vector.
#[derive(Debug, Clone)]
pub enum Keys {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Keys {
    /// The keys, in request order.
    pub fn as_slice(&self) -> &[Bytes] {
        match self {
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// Equal when they hold the same keys in the same order, however held.
impl PartialEq for Keys {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Keys {}

impl IntoIterator for Keys {
    type Item = Bytes;
    type IntoIter = KeysIter;

    fn into_iter(self) -> KeysIter {
        let (one, many) = match self {
            Keys::One(k) => (Some(k), Vec::new()),
            Keys::Many(v) => (None, v),
        };
        one.into_iter().chain(many)
    }
}

/// The keys of a get, by value.
pub type KeysIter = std::iter::Chain<std::option::IntoIter<Bytes>, std::vec::IntoIter<Bytes>>;

/// What a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `get`/`gets`/`gat`/`gats` (text, many keys) or the binary get family
    /// (one key). `touch`: the new exptime (get-and-touch).
    Get {
        keys: Keys,
        touch: Option<i64>,
    },
    Store(Store),
    Delete {
        key: Bytes,
    },
    /// `incr`/`decr`; binary may create a missing item from `initial`.
    Incr {
        key: Bytes,
        delta: u64,
        decr: bool,
        initial: Option<(u64, i64)>,
    },
    Touch {
        key: Bytes,
        exptime: i64,
    },
    FlushAll,
    Version,
    Stats {
        group: Option<Bytes>,
    },
    Verbosity,
    Noop,
    Quit,
    /// Binary SASL: which mechanisms the server offers.
    SaslList,
    /// Binary SASL: log in with `mechanism` (only `PLAIN`: the token is
    /// `authzid NUL user NUL password`).
    SaslAuth {
        mechanism: Bytes,
        token: Bytes,
    },
    /// Binary SASL: a further step (PLAIN has none).
    SaslStep,
}

/// One request, with what its reply needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub meta: Meta,
}

/// How a request's reply is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub protocol: Protocol,
    /// Text `noreply`, or a binary quiet opcode.
    pub quiet: bool,
    /// Text `gets`/`gats`: show the CAS.
    pub show_cas: bool,
    /// Binary: the request's opcode and opaque, echoed back.
    pub opcode: u8,
    pub opaque: u32,
    /// Binary `getk`/`getkq`/`gatk`/`gatkq`: return the key.
    pub with_key: bool,
}

impl Meta {
    /// A text request's: a reply, no CAS shown.
    pub fn text() -> Self {
        Self {
            protocol: Protocol::Text,
            quiet: false,
            show_cas: false,
            opcode: 0,
            opaque: 0,
            with_key: false,
        }
    }
}

/// Why a request failed, in the terms both protocols share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    NotFound,
    Exists,
    NotStored,
    TooLarge,
    Invalid,
    NonNumeric,
    UnknownCommand,
    ServerError,
    /// Not logged in, or the login failed.
    AuthError,
}

impl Status {
    /// An engine error in memcached's terms: its status, and the message
    /// (memcached says nothing more for a miss, a conflict or a number
    /// that is not one). Every variant is listed: a new one does not
    /// compile until it has its status.
    pub fn of(e: &sessiond_core::Error) -> (Status, String) {
        use sessiond_core::Error as E;
        match e {
            E::NoSession(_) | E::DestroyedWhileWaiting(_) => (Status::NotFound, String::new()),
            E::NotAuthenticated => (Status::AuthError, "unauthenticated".into()),
            E::NotPermitted { .. } => (Status::AuthError, e.to_string()),
            E::NotNumeric(_) | E::NotAnInteger | E::NotAFloat => {
                (Status::NonNumeric, String::new())
            }
            E::Locked { .. } => (Status::Exists, String::new()),
            E::InvalidArgument(_) | E::LimitExceeded { .. } => (Status::Invalid, e.to_string()),
            E::Exists(_)
            | E::StaleKey { .. }
            | E::ReadOnlyLock { .. }
            | E::NotInteger { .. }
            | E::Overflow { .. }
            | E::IncrOverflow
            | E::NotFinite
            | E::TooManyResults { .. }
            | E::Random(_)
            | E::Unavailable(_)
            | E::NoFunction(_)
            | E::Raised(_)
            | E::NotInPlace
            | E::Script { .. } => (Status::ServerError, e.to_string()),
        }
    }
}

/// One item returned by a get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub key: Bytes,
    pub flags: u32,
    pub cas: u64,
    pub data: Bytes,
}

/// What the door answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Get hits (misses are left out; text ends with `END`).
    Hits(Vec<Hit>),
    Stored {
        cas: u64,
    },
    Deleted,
    Touched,
    Number {
        value: u64,
        cas: u64,
    },
    /// `OK` (flush_all, verbosity).
    Ok,
    Version(String),
    Stats(Vec<(String, String)>),
    /// A binary SASL answer: the mechanisms, or `Authenticated`.
    Sasl(&'static str),
    Fail(Status, String),
}

/// What [`parse`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request.
    Request(Request),
    /// A request the door answers with an error without running it (bad
    /// arguments, an oversized value); the connection goes on. `skip` more
    /// bytes (an oversized value not yet received) are to be discarded as
    /// they arrive.
    Refused {
        meta: Meta,
        status: Status,
        message: String,
        skip: usize,
    },
}

/// A framing error: the stream cannot be trusted any further, so the
/// connection is answered once and closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameError {
    pub protocol: Protocol,
    pub message: String,
}

/// Takes one request off the front of `buf`. `Ok(None)`: not a whole one
/// yet (nothing is consumed). Every length is bounded by `limits`.
pub fn parse(
    buf: &mut BytesMut,
    protocol: Protocol,
    limits: &Limits,
) -> Result<Option<Parsed>, FrameError> {
    match protocol {
        Protocol::Text => text::parse(buf, limits),
        Protocol::Binary => binary::parse(buf, limits),
    }
}

/// Writes the reply to a request, or nothing when the request was quiet and
/// the answer is one quiet requests leave out.
pub fn encode(answer: &Answer, meta: &Meta, out: &mut BytesMut) {
    match meta.protocol {
        Protocol::Text => text::encode(answer, meta, out),
        Protocol::Binary => binary::encode(answer, meta, out),
    }
}

/// The reply to a framing error, before the connection closes.
pub fn encode_frame_error(e: &FrameError, out: &mut BytesMut) {
    let meta = Meta {
        protocol: e.protocol,
        ..Meta::text()
    };
    encode(
        &Answer::Fail(Status::Invalid, e.message.clone()),
        &meta,
        out,
    );
}

/// When an exptime says an item expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// 0: the session's default (memcached: never; sessions always expire).
    Default,
    /// In this many ms.
    InMs(u64),
    /// Already past: the item is gone as soon as it is stored.
    Past,
}

/// Reads an exptime as memcached does: up to 30 days it counts seconds
/// from now, above that it is a Unix time; negative is already past.
/// Exactly so, even where a client surely meant seconds: libmemcached's
/// `memcached_exist` (php-memcached's strict-mode check) adds an empty
/// item with 2,678,400 (31 days) and relies on it expiring at once.
/// The clock (`now_unix_s`, seconds) is read only for a Unix time.
pub fn expiry(exptime: i64, now_unix_s: impl FnOnce() -> i64) -> Expiry {
    match exptime {
        0 => Expiry::Default,
        e if e < 0 => Expiry::Past,
        e if e <= REALTIME_MAXDELTA => Expiry::InMs(e.unsigned_abs().saturating_mul(1000)),
        e => match now_unix_s() {
            now if e > now => Expiry::InMs((e - now).unsigned_abs().saturating_mul(1000)),
            _ => Expiry::Past,
        },
    }
}

fn put_line(out: &mut BytesMut, parts: &[&[u8]]) {
    for p in parts {
        out.put_slice(p);
    }
    out.put_slice(b"\r\n");
}
