//! The one reply type every door translates back into its protocol.

use bytes::Bytes;

/// What a command answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success with nothing to say.
    Ok,
    /// A short status word, such as `PONG`.
    Status(&'static str),
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
}
