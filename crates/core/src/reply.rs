//! The one reply type every door translates back into its protocol.

use bytes::Bytes;

use crate::id::SessionId;

/// What a command answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success with nothing to say.
    Ok,
    /// A short status word, such as `PONG`.
    Status(&'static str),
    /// A status line of any text: a Redis script's `{ok = "…"}` (without
    /// CR or LF; the encoder blanks them).
    StatusText(Bytes),
    /// Nothing there (an absent variable).
    Nil,
    /// A number.
    Int(i64),
    /// A string of bytes.
    Bulk(Bytes),
    /// A list.
    Array(Vec<Reply>),
    /// Key/value pairs, in order.
    Map(Vec<(Reply, Reply)>),
    /// Named sections of `field: value` lines (Redis `INFO` shape).
    Info(Vec<InfoSection>),
    // Typed answers a door takes apart (RESP encodes each flat, as noted).
    /// A session's blob, flags and version (`Command::Item`); RESP: the
    /// array `[data, flags, version]`.
    Item {
        data: Bytes,
        flags: u32,
        version: u64,
    },
    /// A counter's new value and the session's version
    /// (`Command::IncrData`); RESP: `[value as text, version]`.
    Counter { value: u64, version: u64 },
    /// The session's version after a store (memcached's CAS); RESP: an
    /// integer.
    Version(u64),
    /// A lock's fencing key; RESP: an integer.
    Key(u64),
    /// Session ids (`List`, `Find`); RESP: an array of bulk strings.
    Ids(Vec<SessionId>),
    /// One page of ids and the cursor to go on from (`0`: done) (`Scan`,
    /// `FindPage`, `KeyScan`); RESP: `[cursor, [ids]]`.
    Page { cursor: Bytes, ids: Vec<SessionId> },
    /// Sessions as the Redis door lists them (`KeyScan`, `Keys`): a page's
    /// cursor (`0`: done) and each id with its key form
    /// ([`crate::Session::key_form`]); RESP: `[cursor, [ids]]`.
    Keys {
        cursor: Bytes,
        keys: Vec<(SessionId, u8)>,
    },
    /// A transaction's results, one per command, refusals among them
    /// (`Command::Exec`); None when a watched session changed and nothing
    /// ran. RESP: an array with error entries, or nil.
    Exec(Option<Vec<Result<Reply, crate::Error>>>),
}

/// One section of an [`Reply::Info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoSection {
    pub name: &'static str,
    pub fields: Vec<(String, String)>,
}

impl Reply {
    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Self {
        Reply::Bulk(b.into())
    }

    /// A bulk string from static text.
    pub fn text(s: &'static str) -> Self {
        Reply::Bulk(Bytes::from_static(s.as_bytes()))
    }

    /// `OPEN`'s answer: the lock's key, the session's data and variables.
    pub fn opened(key: u64, session: &crate::session::Session) -> Self {
        Reply::Array(vec![
            Reply::Key(key),
            Reply::Bulk(session.data.clone()),
            vars_reply(session.vars()),
        ])
    }
}

/// Variables as a map reply.
pub(crate) fn vars_reply(vars: &std::collections::BTreeMap<Bytes, Bytes>) -> Reply {
    Reply::Map(
        vars.iter()
            .map(|(k, v)| (Reply::Bulk(k.clone()), Reply::Bulk(v.clone())))
            .collect(),
    )
}
