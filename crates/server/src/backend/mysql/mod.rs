//! A MySQL/MariaDB client of sessiond's own, for `storage = "mysql"`
//! (docs/cluster.md, "MySQL and MariaDB").

pub(crate) mod client;
pub(crate) mod wire;
