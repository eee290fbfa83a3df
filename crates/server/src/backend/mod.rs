//! The stores behind the request path: the embedded engine (in
//! `sessiond-core`, with `persist/`) and the cluster's database.

pub(crate) mod cluster;
