//! Who may hold a connection: at most `max_connections` in all and
//! `max_connections_per_ip` from one source address. A connection over
//! either limit is told so in its door's error idiom and closed at once;
//! the ones already open never notice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// The connection limits and what is open now.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    /// Connections refused by a limit since start (Redis's
    /// `rejected_connections`).
    pub(crate) rejected: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_connections_per_ip` are open from this address.
    FullForAddress,
}

impl Refusal {
    /// What the client reads before the server hangs up.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Full => "max number of clients reached",
            Refusal::FullForAddress => "max number of clients from this address reached",
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
            rejected: AtomicU64::new(0),
        }
    }

    /// A place for a connection from `ip`, if the limits leave one.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let ip = canonical(ip);
        let mut open = self.open.lock();
        let refusal = if open.total >= self.max_total {
            Some(Refusal::Full)
        } else if open.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            Some(Refusal::FullForAddress)
        } else {
            None
        };
        if let Some(r) = refusal {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now, every door (HTTP included).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// An IPv4 client on a dual-stack socket arrives as `::ffff:a.b.c.d`; it is
/// the same address as `a.b.c.d`.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_count_in_all_and_per_address_and_free_on_drop() {
        let a = Arc::new(Admission::new(3, 2));
        let p1 = a.admit(ip("10.0.0.1")).unwrap();
        let p2 = a.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            a.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::FullForAddress,
            "the mapped IPv6 form is the same address"
        );
        let p3 = a.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Full);
        assert_eq!(a.rejected.load(Ordering::Relaxed), 2);
        drop(p1);
        let p4 = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.open(), 3);
        drop((p2, p3, p4));
        assert_eq!(a.open(), 0);
        assert!(a.open.lock().per_ip.is_empty(), "no address is remembered");
    }
}
