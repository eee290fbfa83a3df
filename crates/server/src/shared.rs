//! What every connection shares: the tenants, the logins, the limits, the
//! listeners' allowlists and TLS, and the server-wide counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sessiond_proto::Limits;
use tokio_rustls::TlsAcceptor;

use crate::access::admission::Admission;
use crate::access::allowlist::Cidr;
use crate::access::auth::Auth;
use crate::backend::cluster::Cluster;
use crate::config::Timeouts;
use crate::metrics::DoorCounters;
use crate::tenant::Tenants;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) tenants: Arc<Tenants>,
    pub(crate) auth: Auth,
    pub(crate) limits: Limits,
    pub(crate) started: Instant,
    pub(crate) port: u16,
    pub(crate) connected: AtomicUsize,
    pub(crate) redis_keys: Arc<sessiond_proto::redis::RedisKeys>,
    /// Fired when the server stops: what a socket door's connection
    /// waits on between requests.
    pub(crate) stopping: Arc<crate::conn::watchdog::StopSignal>,
    pub(crate) memcache_keys: sessiond_proto::memcache::McKeys,
    pub(crate) timeouts: Timeouts,
    pub(crate) admission: Arc<Admission>,
    /// Per door: the client addresses it accepts (empty: any).
    pub(crate) allow: [Vec<Cidr>; 4],
    /// Connections closed because their address is on no allowlist.
    pub(crate) denied: AtomicU64,
    /// Per door: TLS, if that door speaks it.
    pub(crate) tls: [Option<TlsAcceptor>; 4],
    /// TLS handshakes that failed or did not finish in time.
    pub(crate) tls_failures: AtomicU64,
    /// Per door: connections and bytes.
    pub(crate) doors: [DoorCounters; 4],
    /// The cluster's database, under `postgres` storage.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The plugins, when `plugins_dir` is set.
    pub(crate) scripts: Arc<crate::scripts::Scripts>,
}

impl Shared {
    /// Connections accepted since start, every door.
    pub(crate) fn accepted_total(&self) -> u64 {
        self.doors
            .iter()
            .map(|d| d.accepted.load(Ordering::Relaxed))
            .sum()
    }
}
