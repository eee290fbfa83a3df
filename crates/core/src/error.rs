//! The one error type of the engine.
//!
//! Every codec maps these onto its protocol's idiom; [`Error::code`] is the
//! stable, machine-readable part (the RESP error prefix).

use crate::id::SessionId;
use crate::lock::LockMode;

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The session does not exist (or has expired).
    #[error("no session '{0}'")]
    NoSession(SessionId),
    /// `CREATE` or `REGENERATE` named an id that is taken.
    #[error("session '{0}' already exists")]
    Exists(SessionId),
    /// The lock could not be had within the wait.
    #[error("session '{id}' is locked for {mode} (waited {waited_ms} ms)")]
    Locked {
        id: SessionId,
        mode: LockMode,
        waited_ms: u64,
    },
    /// The session was destroyed while this client waited for its lock.
    #[error("session '{0}' was destroyed while waiting for its lock")]
    DestroyedWhileWaiting(SessionId),
    /// A lock key that does not (or no longer) hold the session's lock.
    #[error(
        "lock key {key} does not hold session '{id}': it was released, its lease expired, or it was never granted"
    )]
    StaleKey { id: SessionId, key: u64 },
    /// A write presented a key that holds only a read lock.
    #[error("lock key {key} holds session '{id}' for reading only; lock it with MODE write to change it")]
    ReadOnlyLock { id: SessionId, key: u64 },
    /// `INC` on a variable that is not a decimal integer.
    #[error("variable '{name}' of session '{id}' is not an integer")]
    NotInteger { id: SessionId, name: String },
    /// `INCRDATA` (memcached `incr`/`decr`) on data that is not an unsigned
    /// decimal number.
    #[error("the data of session '{0}' is not an unsigned decimal number")]
    NotNumeric(SessionId),
    /// Redis's words for INCR on data that is no integer.
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    /// Redis's words for INCR past the 64-bit range.
    #[error("increment or decrement would overflow")]
    IncrOverflow,
    /// Redis's words for INCRBYFLOAT on data (or an increment) that is no
    /// number.
    #[error("value is not a valid float")]
    NotAFloat,
    /// Redis's words for INCRBYFLOAT reaching infinity.
    #[error("increment would produce NaN or Infinity")]
    NotFinite,
    /// `INC` would leave the 64-bit signed range.
    #[error("increment of variable '{name}' of session '{id}' would overflow")]
    Overflow { id: SessionId, name: String },
    /// An argument is out of its allowed range or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A hard limit was reached.
    #[error("{what} is {got}, over the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        got: u64,
        limit: u64,
    },
    /// A listing has more results than one reply may hold.
    #[error("more than {limit} results in one reply (limits.max_reply_items): page through them with {instead}")]
    TooManyResults { limit: u64, instead: &'static str },
    /// The operating system's random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// The connection has not authenticated, and the server has users.
    #[error("authentication required: authenticate with a user and password first")]
    NotAuthenticated,
    /// The user's role does not allow the command.
    #[error("this user's role ({role}) does not allow {what}")]
    NotPermitted {
        role: &'static str,
        what: &'static str,
    },
    /// The store behind the node (a cluster's database) cannot answer now;
    /// nothing was changed, or the change is unknown and safe to retry.
    #[error("the database is unavailable, try again: {0}")]
    Unavailable(String),
    /// A call named a function that is not loaded.
    #[error("{0}")]
    NoFunction(String),
    /// A function failed (its error, or a limit it ran into): nothing it
    /// did was kept.
    #[error("function '{function}' failed, nothing it did was kept: {message}")]
    Script { function: String, message: String },
    /// An error a Redis script raised or returned (`{err = "..."}`,
    /// `redis.call` refused), sent as the script gave it, its first word
    /// the code, as Redis does; nothing the script did was kept.
    #[error("{0}")]
    Raised(String),
    /// A call tried in place on a request worker ran past its short slice
    /// (nothing of it was kept): the server runs it again off the workers.
    /// Never answered to a client.
    #[error("internal: the call is to run off the request workers")]
    NotInPlace,
}

impl Error {
    /// The stable error code, used as the RESP error prefix.
    /// Every code [`Error::code`] may return, for per-code tables.
    pub const CODES: [&'static str; 11] = [
        "NOSESSION",
        "EXISTS",
        "LOCKED",
        "STALEKEY",
        "READONLY",
        "ERR",
        "LIMIT",
        "NOAUTH",
        "NOPERM",
        "TRYAGAIN",
        "NOSCRIPT",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Error::NoSession(_) | Error::DestroyedWhileWaiting(_) => "NOSESSION",
            Error::Exists(_) => "EXISTS",
            Error::Locked { .. } => "LOCKED",
            Error::StaleKey { .. } => "STALEKEY",
            Error::ReadOnlyLock { .. } => "READONLY",
            Error::NotInteger { .. }
            | Error::NotNumeric(_)
            | Error::NotAnInteger
            | Error::IncrOverflow
            | Error::NotAFloat
            | Error::NotFinite
            | Error::Overflow { .. }
            | Error::InvalidArgument(_) => "ERR",
            Error::LimitExceeded { .. } | Error::TooManyResults { .. } => "LIMIT",
            Error::Random(_) | Error::Script { .. } | Error::Raised(_) | Error::NotInPlace => "ERR",
            Error::NoFunction(_) => "NOSCRIPT",
            Error::NotAuthenticated => "NOAUTH",
            Error::NotPermitted { .. } => "NOPERM",
            Error::Unavailable(_) => "TRYAGAIN",
        }
    }
}

impl Error {
    /// The HTTP status that answers this error on the JSON API. Every
    /// variant is listed: a new one does not compile until it has one.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::NoSession(_) | Error::DestroyedWhileWaiting(_) => 404,
            Error::NotAuthenticated => 401,
            Error::NotPermitted { .. } => 403,
            // The session's state, not the request, is in the way.
            Error::Exists(_)
            | Error::Locked { .. }
            | Error::StaleKey { .. }
            | Error::ReadOnlyLock { .. } => 409,
            Error::LimitExceeded { .. } => 413,
            Error::NotInteger { .. }
            | Error::NotNumeric(_)
            | Error::NotAnInteger
            | Error::IncrOverflow
            | Error::NotAFloat
            | Error::NotFinite
            | Error::Overflow { .. }
            | Error::InvalidArgument(_)
            // Asked for more than one reply may hold: ask for pages.
            | Error::TooManyResults { .. } => 400,
            Error::Random(_) | Error::NotInPlace => 500,
            Error::NoFunction(_) => 404,
            // The function's own refusal, or its running out of a limit:
            // the request was understood, and nothing was changed.
            Error::Script { .. } | Error::Raised(_) => 422,
            Error::Unavailable(_) => 503,
        }
    }
}

impl From<getrandom::Error> for Error {
    fn from(e: getrandom::Error) -> Self {
        Error::Random(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn every_code_is_in_the_table() {
        let id = SessionId::new(Bytes::from_static(b"s"));
        let all = [
            Error::NoSession(id.clone()),
            Error::Exists(id.clone()),
            Error::Locked {
                id: id.clone(),
                mode: LockMode::Write,
                waited_ms: 1,
            },
            Error::DestroyedWhileWaiting(id.clone()),
            Error::StaleKey {
                id: id.clone(),
                key: 1,
            },
            Error::ReadOnlyLock {
                id: id.clone(),
                key: 1,
            },
            Error::NotInteger {
                id: id.clone(),
                name: "n".into(),
            },
            Error::NotNumeric(id.clone()),
            Error::Overflow {
                id,
                name: "n".into(),
            },
            Error::InvalidArgument("x".into()),
            Error::LimitExceeded {
                what: "x",
                got: 2,
                limit: 1,
            },
            Error::TooManyResults {
                limit: 1,
                instead: "x",
            },
            Error::Random("x".into()),
            Error::NotAuthenticated,
            Error::NotPermitted {
                role: "readonly",
                what: "x",
            },
            Error::Unavailable("x".into()),
            Error::NoFunction("x".into()),
            Error::Script {
                function: "f".into(),
                message: "x".into(),
            },
            Error::Raised("ERR x".into()),
            Error::NotInPlace,
        ];
        for e in &all {
            assert!(
                Error::CODES.contains(&e.code()),
                "{} is not in CODES",
                e.code()
            );
        }
        for code in Error::CODES {
            assert!(
                all.iter().any(|e| e.code() == code),
                "{code} is never returned"
            );
        }
    }
}
