//! The sessiond engine: sessions, a sharded store, sliding expiry, locks with
//! fencing keys and leases, and a secondary index over session variables.
//!
//! Synchronous and free of I/O: protocols turn bytes into a [`Command`], call
//! [`Engine::execute`], and turn the [`Reply`] or [`Error`] back into bytes.

mod client;
pub mod clock;
mod command;
mod engine;
mod error;
pub mod fields;
pub mod id;
mod index;
mod journal;
mod lock;
pub mod php;
mod reply;
pub mod script;
mod session;
mod store;

pub use client::ClientHandle;
pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Access, Command, ExpireIf, Meta, StoreIf, StoreReply, Touches};
pub use engine::{
    not_in_transaction, AfterGrant, Engine, EngineConfig, EngineStats, Figures, Lent, Outcome,
    PendingLock, TickReport, MAX_CALL_SESSIONS,
};
pub use error::Error;
pub use id::{IdChars, IdHash, IdHasher, SessionId};
pub use journal::{Mutation, MutationLog, KEY_BLOCK};
pub use lock::{lock_bytes, Grant, LockMode, LockWait};
pub use reply::{InfoSection, Reply};
pub use session::Session;

/// A timeout (or lock lease) that never runs out: a Redis key without
/// expiry. TTL answers -1 for it.
pub const NEVER: u64 = u64::MAX;
