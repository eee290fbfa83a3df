//! Bounds every parser enforces, so no allocation is ever sized by an
//! unchecked number from a client.

/// Hard limits on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest inline (telnet-style) command line, in bytes.
    pub max_inline_len: usize,
    /// Largest single argument (bulk string), in bytes.
    pub max_bulk_len: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Largest whole request (all arguments and framing), in bytes.
    pub max_request_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inline_len: 64 * 1024,
            max_bulk_len: 16 * 1024 * 1024,
            max_args: 64 * 1024,
            max_request_len: 64 * 1024 * 1024,
        }
    }
}
