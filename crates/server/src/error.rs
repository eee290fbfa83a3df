//! Errors of the server layer.

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read the configuration file {path}: {source}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse the configuration {path}: {message}")]
    ParseConfig { path: String, message: String },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(String),
    /// The data directory holds damage that start-up may not cut.
    #[error("the data directory needs repair: {0}")]
    NeedsRepair(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The cluster's database cannot be used (storage = "postgres").
    #[error("database: {0}")]
    Database(String),
    #[error("I/O error on the listener: {0}")]
    Io(#[from] std::io::Error),
}
