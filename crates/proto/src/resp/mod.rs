//! RESP, the Redis serialization protocol (RESP2, and RESP3 after `HELLO 3`),
//! with inline commands so `telnet`, `nc` and `redis-cli` all work.

mod encode;
mod request;
mod value;

pub use encode::{encode_bulk, encode_error, encode_reply, error_parts, Protocol};
pub use request::{parse_request, parse_request_spans, with_args, Discard, FrameError, Request};
pub use value::{encode_command, parse_value, Value, ValueError};
