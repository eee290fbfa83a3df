//! The integration tests: one binary (linked once), one module per concern.
//! Each starts the real server (in process through `common::TestServer`,
//! or the `sessiond` binary through `common::process`) on loopback ports
//! and talks to it with real clients. Tests that need a tool the Rust
//! toolchain does not bring say they are skipped, unless `CI` is set
//! (`.ci/run` installs every tool; there a missing one fails the test).
//!
//! `tests/stall.rs` is the one test kept apart: it bounds latencies, and
//! must not share the two CI cores with the rest.

mod common;

mod abuse;
mod auth;
mod binary;
mod cluster;
mod crash;
mod ctl_import;
mod damaged_files;
mod dashboard;
mod docs;
mod durability;
mod expiry;
mod heavy_commands;
mod http;
mod line_protocol;
mod lock_quotas;
mod locks;
mod many_connections;
mod memcache_door;
mod native_commands;
mod node_clients;
mod openapi;
mod php_client;
mod php_handlers;
mod plugins;
mod python_clients;
mod raw_resp;
mod redis_compare;
mod redis_door;
mod redis_scripts;
mod tls;
