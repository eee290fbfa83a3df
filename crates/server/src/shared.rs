//! What every connection shares: the tenants, the logins, the limits, the
//! listeners' allowlists and TLS, and the server-wide counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::Mutex;
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
    pub(crate) stopping: Arc<StopSignal>,
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

/// The server's stop signal for its socket connections: a flag, and the
/// wakers of the connections waiting on it. Looking at it is one atomic
/// load, and a connection registers its task's waker once (again only if
/// the waker changes), so waiting on it between requests costs nothing
/// per request — unlike a `Notify`, whose future takes its lock on every
/// poll.
pub(crate) struct StopSignal {
    fired: AtomicBool,
    waiters: Mutex<Waiters>,
}

/// Registered wakers, one slot per waiting connection; freed slots are
/// reused.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        Self {
            fired: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// Sets the flag and wakes every connection waiting on it; later
    /// waits end at once.
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self
            .waiters
            .lock()
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        // Woken outside the lock: a waker may run its task at once.
        for w in wakers {
            w.wake();
        }
    }

    /// Whether the server is stopping.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Leaves `waker` in the connection's slot (given one if it has
    /// none): the next [`StopSignal::fire`] wakes it.
    pub(crate) fn register(&self, slot: &mut Option<usize>, waker: Waker) {
        let mut waiters = self.waiters.lock();
        match *slot {
            Some(i) => waiters.slots[i] = Some(waker),
            None => {
                let i = match waiters.free.pop() {
                    Some(i) => {
                        waiters.slots[i] = Some(waker);
                        i
                    }
                    None => {
                        waiters.slots.push(Some(waker));
                        waiters.slots.len() - 1
                    }
                };
                *slot = Some(i);
            }
        }
    }

    /// Frees a connection's slot (the connection ended).
    pub(crate) fn unregister(&self, slot: usize) {
        let mut waiters = self.waiters.lock();
        waiters.slots[slot] = None;
        waiters.free.push(slot);
    }

    /// Wakers registered now.
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.waiters.lock().slots.iter().flatten().count()
    }

    /// Slots made so far (freed ones are reused).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.waiters.lock().slots.len()
    }
}

/// Fires the signal when dropped: a server that ends without its normal
/// stop (its future dropped) still ends its connections' waits.
pub(crate) struct FireOnDrop(pub(crate) Arc<StopSignal>);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        self.0.fire();
    }
}
