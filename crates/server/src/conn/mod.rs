//! A client connection as every socket door holds it ([`link::Link`]): the
//! stream (plain or TLS), its timeouts and the stop signal, group commit of
//! replies under `fsync always`, and the one request path every door's
//! commands take (`Link::run`).

pub(crate) mod durable;
pub(crate) mod link;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod stretch;
pub(crate) mod watchdog;
