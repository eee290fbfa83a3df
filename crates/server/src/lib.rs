//! The sessiond network server: listeners, the connection loop, configuration
//! and graceful shutdown, around the engine of `sessiond-core`.
//!
//! Tests and the binary run the same path: bind a listener, then
//! [`run`] (or [`Server::run`]) until a shutdown future resolves.

// The layers, each using only those declared before it (tests/layers.rs
// keeps it so; one comment per layer keeps rustfmt from sorting them).

// Leaves: the listeners' names, start-up errors, the blocking pool.
mod door;
mod error;
mod offload;
// Counters, and the data directory (which times its fsyncs with them).
mod metrics;
mod persist;
// Server-side functions (Lua plugins).
mod scripts;
// Who may come in: limits, allowlists, users and roles, TLS.
mod access;
// The configuration file.
mod config;
// The cluster's database, and the tenants on either store.
mod backend;
mod tenant;
// What every connection shares.
mod shared;
// A connection, and the one request path every door's commands take.
mod conn;
// The protocols.
mod doors;
// The accept loop and start-up, which nothing uses.
mod server;

pub use access::allowlist::Cidr;
pub use access::auth::{
    check_hash, hash_password, HashError, Role, UserConfig, DEFAULT_TENANT, DEFAULT_USER,
};
pub use access::tls::TlsConfig;
pub use backend::cluster::migrate_database;
pub use config::{Config, LimitsConfig, Listen, LogLevel};
pub use door::Door;
pub use error::ServerError;
pub use persist::{
    check, dump, repair, CompactionPolicy, Fsync, Persistence, RecoveryReport, Storage,
};
pub use scripts::ScriptLimits;
pub use server::{run, Doors, Server};
pub use tenant::Tenant;

/// Fuzzing harness for the configuration reader (fuzz/ and the property
/// tests): any text either fails to parse, or parses into a configuration
/// that validates or not and prints back as TOML that reads the same
/// (less the database password).
#[doc(hidden)]
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let _ = config.validate();
        let printed = config.to_toml();
        let again = Config::from_toml(&printed);
        // Printed without the database password, the rest as it was.
        let mut shown = config.clone();
        shown.database_url = config::without_password(&config.database_url);
        assert_eq!(again.ok().as_ref(), Some(&shown), "{printed}");
    }
}
