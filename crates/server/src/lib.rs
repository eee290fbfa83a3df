//! The sessiond network server: listeners, the connection loop, configuration
//! and graceful shutdown, around the engine of `sessiond-core`.
//!
//! Tests and the binary run the same path: bind a listener, then
//! [`run`] (or [`Server::run`]) until a shutdown future resolves.

mod admission;
mod allowlist;
mod auth;
mod config;
mod connection;
mod error;
mod http;
mod info;
mod line;
mod link;
mod memcache;
mod metrics;
mod offload;
mod persist;
mod server;
mod stream;
mod tenant;
mod tls;

pub use allowlist::Cidr;
pub use auth::{
    check_hash, hash_password, HashError, Role, UserConfig, DEFAULT_TENANT, DEFAULT_USER,
};
pub use config::{Config, LimitsConfig, Listen, LogLevel};
pub use error::ServerError;
pub use persist::{
    check, dump, repair, CompactionPolicy, Fsync, Persistence, RecoveryReport, Storage,
};
pub use server::{run, Door, Doors, Server};
pub use tenant::Tenant;
pub use tls::TlsConfig;

/// Fuzzing harness for the configuration reader (fuzz/ and the property
/// tests): any text either fails to parse, or parses into a configuration
/// that validates or not and prints back as TOML that reads the same.
#[doc(hidden)]
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let _ = config.validate();
        let printed = config.to_toml();
        let again = Config::from_toml(&printed);
        assert_eq!(again.ok().as_ref(), Some(&config), "{printed}");
    }
}
