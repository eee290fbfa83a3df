//! `storage = "mysql"`: the cluster on MySQL 8 or MariaDB 10.6+ (being
//! built: the client is here, the backend on it comes next).

#![allow(dead_code)]

pub(crate) mod client;
pub(crate) mod wire;
