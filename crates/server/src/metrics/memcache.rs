//! The memcached-style counters the memcached door's `stats` reports, per
//! tenant.

use std::sync::atomic::AtomicU64;

/// The memcached-style counters `stats` reports.
#[derive(Default)]
pub(crate) struct McStats {
    pub(crate) cmd_get: AtomicU64,
    pub(crate) get_hits: AtomicU64,
    pub(crate) get_misses: AtomicU64,
    pub(crate) cmd_set: AtomicU64,
    pub(crate) cmd_touch: AtomicU64,
    pub(crate) delete_hits: AtomicU64,
    pub(crate) delete_misses: AtomicU64,
}
