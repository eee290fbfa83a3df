//! The protocols a client can speak, each over a [`crate::conn::link::Link`]
//! (HTTP over hyper): the RESP listener's native and Redis commands
//! (`resp`, with `info` for INFO), memcached's text and binary protocols
//! (`memcache`), HTTP_SessionServer's line protocol (`line`), and HTTP
//! (`http`: probes, metrics, the JSON API and the dashboard). A door turns
//! bytes into engine commands and replies back into bytes; it never runs a
//! command but through `Link::run`.

pub(crate) mod http;
pub(crate) mod info;
pub(crate) mod line;
pub(crate) mod memcache;
pub(crate) mod resp;

/// Replies are written once this much is pending, even mid-pipeline.
pub(crate) const FLUSH_AT: usize = 64 * 1024;
