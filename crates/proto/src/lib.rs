//! Sans-I/O codecs for sessiond.
//!
//! Bytes in → a command, "need more bytes", or an error; [`Reply`] in → bytes.
//! Nothing here touches a socket or a runtime, so the codecs are easy to
//! unit-test and fuzz, and the Rust client shares them without depending on
//! the server.
//!
//! [`Reply`]: sessiond_core::Reply

#[doc(hidden)]
pub mod decimal;
pub mod fuzz;
mod limits;
pub mod line;
pub mod memcache;
mod names;
pub mod native;
mod prefixes;
pub mod redis;
pub mod resp;

pub use limits::Limits;
