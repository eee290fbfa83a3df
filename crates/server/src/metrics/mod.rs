//! The server's counters and histograms, kept in atomics so that counting
//! never takes a lock on the hot path, and their rendering as Prometheus
//! text (`/metrics`).
//!
//! Per tenant (a tenant's users see only their own): commands by name and
//! door, errors by code, command latency, lock waits. Per listener
//! (server-wide): connections and bytes. Per tenant's files: persistence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use sessiond_core::{Command, Error};

use crate::door::Door;

mod families;
mod histogram;
mod memcache;

pub(crate) use families::Families;
pub(crate) use histogram::Histogram;
pub(crate) use memcache::McStats;

/// The protocol a command came in by: the RESP listener speaks both the
/// native protocol and Redis's, so commands are told apart by protocol,
/// not by listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Native = 0,
    Redis = 1,
    Memcache = 2,
    Line = 3,
    Http = 4,
}

impl Proto {
    pub(crate) const ALL: [Proto; 5] = [
        Proto::Native,
        Proto::Redis,
        Proto::Memcache,
        Proto::Line,
        Proto::Http,
    ];

    /// What a connection of `door` speaks until a request says otherwise
    /// (the RESP listener's requests may be native or Redis).
    pub(crate) fn first(door: Door) -> Self {
        match door {
            Door::Resp => Proto::Native,
            Door::Line => Proto::Line,
            Door::Memcache => Proto::Memcache,
            Door::Http => Proto::Http,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Proto::Native => "native",
            Proto::Redis => "redis",
            Proto::Memcache => "memcache",
            Proto::Line => "line",
            Proto::Http => "http",
        }
    }
}

/// How many contended sessions a tenant remembers (the most waited-on are
/// what `ctl top` and the dashboard show); past it, the table starts over.
const HOT_CAPACITY: usize = 1024;

/// A tenant's counters.
pub(crate) struct TenantMetrics {
    commands: [[AtomicU64; Command::NAMES.len()]; Proto::ALL.len()],
    errors: [[AtomicU64; Error::CODES.len()]; Proto::ALL.len()],
    latency: [Histogram; Proto::ALL.len()],
    /// Lock requests that had to queue.
    pub(crate) lock_waits: AtomicU64,
    /// Queued lock requests that gave up (wait over, client gone, shutdown).
    pub(crate) lock_wait_failures: AtomicU64,
    /// Lock requests queued right now.
    pub(crate) lock_waiting: AtomicI64,
    /// How long queued lock requests waited.
    pub(crate) lock_wait: Histogram,
    /// Lock waits per session id since the table last started over.
    hot: Mutex<HashMap<Bytes, u64>>,
}

impl Default for TenantMetrics {
    fn default() -> Self {
        Self {
            commands: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| Histogram::default()),
            lock_waits: AtomicU64::new(0),
            lock_wait_failures: AtomicU64::new(0),
            lock_waiting: AtomicI64::new(0),
            lock_wait: Histogram::default(),
            hot: Mutex::new(HashMap::new()),
        }
    }
}

impl TenantMetrics {
    /// Counts one command (by its index in [`Command::NAMES`]), its
    /// outcome and how long the engine took.
    pub(crate) fn command(&self, proto: Proto, index: usize, took_us: u64, error: Option<&Error>) {
        let p = proto as usize;
        self.commands[p][index].fetch_add(1, Ordering::Relaxed);
        self.latency[p].observe_us(took_us);
        if let Some(e) = error {
            self.error(proto, e);
        }
    }

    /// Counts an error answered without the engine (a refused login, or a
    /// lock wait that ended in one).
    pub(crate) fn error(&self, proto: Proto, e: &Error) {
        if let Some(c) = Error::CODES.iter().position(|&c| c == e.code()) {
            self.errors[proto as usize][c].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A lock request on session `id` starts to queue.
    pub(crate) fn wait_started(&self, id: &[u8]) {
        self.lock_waits.fetch_add(1, Ordering::Relaxed);
        self.lock_waiting.fetch_add(1, Ordering::Relaxed);
        let mut hot = self.hot.lock();
        if hot.len() >= HOT_CAPACITY && !hot.contains_key(id) {
            hot.clear();
        }
        *hot.entry(Bytes::copy_from_slice(id)).or_insert(0) += 1;
    }

    /// The queued request ended after `waited`; `granted` if it got the lock.
    pub(crate) fn wait_ended(&self, waited: Duration, granted: bool) {
        self.lock_waiting.fetch_sub(1, Ordering::Relaxed);
        self.lock_wait.observe(waited);
        if !granted {
            self.lock_wait_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `n` sessions waited on most (since the table last started over),
    /// most first.
    pub(crate) fn hot(&self, n: usize) -> Vec<(Bytes, u64)> {
        let mut all: Vec<_> = self
            .hot
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Commands run so far, all protocols.
    pub(crate) fn commands_total(&self) -> u64 {
        self.commands
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Errors answered so far, all protocols.
    pub(crate) fn errors_total(&self) -> u64 {
        self.errors
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Errors so far by code, all protocols, the non-zero ones.
    pub(crate) fn by_error(&self) -> Vec<(&'static str, u64)> {
        totals(&self.errors, &Error::CODES)
    }

    /// Commands so far by name, all protocols, the non-zero ones.
    pub(crate) fn by_command(&self) -> Vec<(&'static str, u64)> {
        totals(&self.commands, &Command::NAMES)
    }

    /// The Prometheus series of this tenant's counters.
    pub(crate) fn render(&self, out: &mut Families, tenant: &str) {
        for p in Proto::ALL {
            for (i, name) in Command::NAMES.iter().enumerate() {
                let n = self.commands[p as usize][i].load(Ordering::Relaxed);
                if n > 0 {
                    out.series(
                        "commands_by_name_total",
                        &format!(
                            "tenant=\"{tenant}\",door=\"{}\",command=\"{name}\"",
                            p.label()
                        ),
                        n,
                    );
                }
            }
            for (i, code) in Error::CODES.iter().enumerate() {
                let n = self.errors[p as usize][i].load(Ordering::Relaxed);
                if n > 0 {
                    out.series(
                        "errors_total",
                        &format!("tenant=\"{tenant}\",door=\"{}\",code=\"{code}\"", p.label()),
                        n,
                    );
                }
            }
            if self.latency[p as usize].count() > 0 {
                out.histogram(
                    "command_duration_seconds",
                    &format!("tenant=\"{tenant}\",door=\"{}\"", p.label()),
                    &self.latency[p as usize],
                );
            }
        }
        let t = format!("tenant=\"{tenant}\"");
        out.series(
            "lock_waits_total",
            &t,
            self.lock_waits.load(Ordering::Relaxed),
        );
        out.series(
            "lock_wait_failures_total",
            &t,
            self.lock_wait_failures.load(Ordering::Relaxed),
        );
        out.series(
            "lock_waiting",
            &t,
            u64::try_from(self.lock_waiting.load(Ordering::Relaxed)).unwrap_or(0),
        );
        out.histogram("lock_wait_seconds", &t, &self.lock_wait);
    }
}

/// A per-protocol table summed over the protocols: (name, total) for each
/// name with a non-zero total.
fn totals<const N: usize>(
    table: &[[AtomicU64; N]; Proto::ALL.len()],
    names: &[&'static str; N],
) -> Vec<(&'static str, u64)> {
    names
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let n = table.iter().map(|p| p[i].load(Ordering::Relaxed)).sum();
            (name, n)
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// One listener's counters (server-wide).
#[derive(Default)]
pub(crate) struct DoorCounters {
    /// Connections open now.
    pub(crate) open: AtomicI64,
    /// Connections accepted since start.
    pub(crate) accepted: AtomicU64,
    /// Bytes read from clients.
    pub(crate) bytes_in: AtomicU64,
    /// Bytes written to clients.
    pub(crate) bytes_out: AtomicU64,
    /// Connections cut off for not reading past `max_output_buffer`.
    pub(crate) output_cutoffs: AtomicU64,
}

/// Resident memory of this process, from `/proc/self/status` (Linux);
/// None elsewhere.
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::families::describe;
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_in_seconds() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_secs(20));
        let mut out = Families::default();
        out.histogram("lock_wait_seconds", "tenant=\"default\"", &h);
        let text = out.finish();
        assert!(text.contains("# TYPE sessiond_lock_wait_seconds histogram"));
        assert!(
            text.contains(
                "sessiond_lock_wait_seconds_bucket{tenant=\"default\",le=\"0.00001\"} 1\n"
            ),
            "{text}"
        );
        assert!(text
            .contains("sessiond_lock_wait_seconds_bucket{tenant=\"default\",le=\"0.00005\"} 2\n"));
        assert!(
            text.contains("sessiond_lock_wait_seconds_bucket{tenant=\"default\",le=\"10\"} 2\n")
        );
        assert!(
            text.contains("sessiond_lock_wait_seconds_bucket{tenant=\"default\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("sessiond_lock_wait_seconds_count{tenant=\"default\"} 3\n"));
        assert!(text.contains("sessiond_lock_wait_seconds_sum{tenant=\"default\"} 20.000035\n"));
    }

    #[test]
    fn hot_sessions_rank_by_waits_and_the_table_is_bounded() {
        let m = TenantMetrics::default();
        for _ in 0..3 {
            m.wait_started(b"a");
        }
        m.wait_started(b"b");
        assert_eq!(m.hot(1), vec![(Bytes::from_static(b"a"), 3)]);
        for i in 0..HOT_CAPACITY + 5 {
            m.wait_started(format!("x{i}").as_bytes());
        }
        assert!(m.hot(usize::MAX).len() <= HOT_CAPACITY);
        assert_eq!(
            m.lock_waiting.load(Ordering::Relaxed),
            (HOT_CAPACITY + 9) as i64
        );
    }

    #[test]
    fn every_family_is_described() {
        let m = TenantMetrics::default();
        m.command(Proto::Redis, 0, 3, Some(&Error::NotAuthenticated));
        m.wait_started(b"s");
        m.wait_ended(Duration::from_millis(2), false);
        let mut f = Families::default();
        m.render(&mut f, "t");
        for name in &f.order {
            assert!(describe(name).is_some(), "{name} has no help");
        }
        let text = f.finish();
        assert!(text.contains("sessiond_commands_by_name_total{tenant=\"t\",door=\"redis\",command=\"create\"} 1\n"), "{text}");
        assert!(
            text.contains("sessiond_errors_total{tenant=\"t\",door=\"redis\",code=\"NOAUTH\"} 1\n")
        );
        assert!(text.contains("sessiond_lock_wait_failures_total{tenant=\"t\"} 1\n"));
        assert!(text.contains("sessiond_lock_waiting{tenant=\"t\"} 0\n"));
    }
}
