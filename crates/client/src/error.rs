//! Client errors.

use sessiond_proto::resp::{Value, ValueError};

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server's bytes were not valid RESP.
    #[error("bad reply from the server: {0}")]
    Protocol(#[from] ValueError),
    /// The server answered with an error: `code` is its first word
    /// (`NOSESSION`, `LOCKED`, `STALEKEY`, `ERR`, …).
    #[error("{code} {message}")]
    Server { code: String, message: String },
    /// The reply had an unexpected shape.
    #[error("expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
}

impl Error {
    pub(crate) fn from_reply(line: &str) -> Self {
        let (code, message) = line.split_once(' ').unwrap_or((line, ""));
        Error::Server {
            code: code.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn unexpected(expected: &'static str, got: &Value) -> Self {
        Error::Unexpected {
            expected,
            got: format!("{got:?}"),
        }
    }

    /// The server's error code, if the server refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}
