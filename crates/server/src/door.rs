//! The listeners a connection can come in by.

/// A listener: which one a connection came in by, and how the
/// configuration names it (`[tls] doors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// The native (RESP) listener, which also speaks Redis.
    Resp = 0,
    /// The HTTP_SessionServer line-protocol listener.
    Line = 1,
    /// The memcached (text and binary) listener.
    Memcache = 2,
    /// The HTTP listener (probes, metrics).
    Http = 3,
}

impl Door {
    /// Every door, in the order of the per-door tables.
    pub const ALL: [Door; 4] = [Door::Resp, Door::Line, Door::Memcache, Door::Http];

    /// The door's label in metrics (as in the configuration).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Door::Resp => "resp",
            Door::Line => "line",
            Door::Memcache => "memcache",
            Door::Http => "http",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Door::Resp => "native",
            Door::Line => "line-protocol",
            Door::Memcache => "memcached",
            Door::Http => "http",
        }
    }

    /// A refusal in this door's error idiom, for a client about to be cut off.
    pub(crate) fn refusal(self, message: &str) -> String {
        match self {
            Door::Resp => format!("-ERR {message}\r\n"),
            Door::Line => format!("err {message}\r\n"),
            Door::Memcache => format!("SERVER_ERROR {message}\r\n"),
            Door::Http => format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{message}\n",
                message.len() + 1
            ),
        }
    }
}
