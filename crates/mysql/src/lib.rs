//! A MySQL/MariaDB client of sessiond's own: the cluster backend's
//! `storage = "mysql"` (docs/cluster.md, "MySQL and MariaDB") and the
//! load generator's SQL baselines (`sessiond bench run --workload
//! for-update`, `write-through`) speak to the database through it.
//! Its own crate so both can: the server links the load generator.

mod client;
mod wire;

pub use client::{Client, Opts, Param, ResultSet, Statement};
pub use wire::{MyError, Value};
