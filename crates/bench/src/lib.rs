//! `sessiond bench`: a load generator for session servers. It drives
//! sessiond, Redis and memcached with the same workloads over their own
//! protocols (RESP, memcached text and binary), closed-loop or at a fixed
//! rate, and reports transactions per second and latency percentiles from
//! an HDR-style histogram, as a table or as JSON.
//!
//! A *transaction* is one unit of the workload: one GET or SET for `raw`,
//! one PHP request's full sequence (lock, read, write, unlock) for the
//! cycles.

pub mod data;
pub mod echo;
mod handoff;
pub mod histogram;
pub mod keys;
mod report;
mod run;
mod sql;
mod stall;
pub mod wire;
pub mod workload;

pub use report::{Latency, Report};
pub use run::{run, RunArgs};
pub use stall::{stall, StallArgs, StallReport};

/// Why a run could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    /// The server's bytes made no sense for the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered, but not as the workload expects.
    #[error("{0}")]
    Reply(String),
    #[error("invalid options: {0}")]
    Options(String),
}
