//! What a run found, as a table for people and JSON for scripts.

use std::fmt::Write;

use crate::histogram::Histogram;
use crate::run::RunArgs;
use crate::wire::Proto;
use crate::workload::{Cycle, Polling, Workload};

/// Latency percentiles, in µs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50: us(h.quantile(0.5)),
            p90: us(h.quantile(0.9)),
            p99: us(h.quantile(0.99)),
            p999: us(h.quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One run's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub workload: Workload,
    pub cycle: Option<Cycle>,
    pub proto: Proto,
    pub label: String,
    pub addr: String,
    pub conns: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub size: usize,
    pub keys: u64,
    pub popularity: String,
    /// Measured seconds (after warm-up); for `load`, how long loading took.
    pub seconds: f64,
    /// Transactions completed in the measured window.
    pub transactions: u64,
    /// Round trips (requests) in the window, lock polls included.
    pub requests: u64,
    pub tx_per_s: f64,
    pub req_per_s: f64,
    pub latency_us: Latency,
    /// Time from the first lock request to holding the lock.
    pub lock_wait_us: Option<Latency>,
    /// Transactions that gave up on the lock after the client's retries.
    pub lock_failures: u64,
    /// Error replies (and connections ended by one).
    pub errors: u64,
    pub failed_connections: usize,
    pub first_error: Option<String>,
    /// How the imitated client polls for its lock.
    pub polling: Option<Polling>,
    /// `--count`: writes acknowledged over the whole run.
    pub acked_writes: Option<u64>,
    /// `--count`: acknowledged writes the sessions' counts do not show
    /// (negative: the counts show more than was acknowledged).
    pub lost_updates: Option<i64>,
}

impl Report {
    pub(crate) fn load(args: &RunArgs, proto: Proto, keys: u64, secs: f64) -> Self {
        let zero = Latency::of(&Histogram::new());
        Self {
            workload: Workload::Load,
            cycle: None,
            proto,
            label: args.label.clone(),
            addr: args.addr.clone(),
            conns: args.conns.clamp(1, 4),
            pipeline: 64,
            rate: None,
            size: args.size,
            keys,
            popularity: args.popularity.clone(),
            seconds: secs,
            transactions: keys,
            requests: keys,
            tx_per_s: keys as f64 / secs.max(1e-9),
            req_per_s: keys as f64 / secs.max(1e-9),
            latency_us: zero,
            lock_wait_us: None,
            lock_failures: 0,
            errors: 0,
            failed_connections: 0,
            first_error: None,
            polling: None,
            acked_writes: None,
            lost_updates: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let name = serde_json::to_value(self.workload)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let proto = serde_json::to_value(self.proto)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.label)
        };
        let _ = writeln!(
            s,
            "{name} over {proto} to {}{label}: {} conns, pipeline {}, {} sessions of {} B, {:.1} s",
            self.addr, self.conns, self.pipeline, self.keys, self.size, self.seconds
        );
        if self.workload == Workload::Load {
            let _ = writeln!(
                s,
                "  loaded {} sessions: {:.0} /s",
                self.keys, self.tx_per_s
            );
            return s;
        }
        let _ = writeln!(
            s,
            "  {:>12.0} transactions/s   {:>12.0} requests/s",
            self.tx_per_s, self.req_per_s
        );
        let row = |s: &mut String, what: &str, l: &Latency| {
            let _ = writeln!(
                s,
                "  {what:<12} µs  p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  p99.9 {:>8.1}  max {:>9.1}",
                l.p50, l.p90, l.p99, l.p999, l.max
            );
        };
        row(&mut s, "latency", &self.latency_us);
        if let Some(l) = &self.lock_wait_us {
            row(&mut s, "lock wait", l);
        }
        let _ = writeln!(
            s,
            "  errors {}, lock failures {}, failed connections {}",
            self.errors, self.lock_failures, self.failed_connections
        );
        if let (Some(acked), Some(lost)) = (self.acked_writes, self.lost_updates) {
            let _ = writeln!(
                s,
                "  writes acknowledged {acked}, lost updates {lost} ({:.2} %)",
                lost as f64 * 100.0 / acked.max(1) as f64
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(s, "  first error: {e}");
        }
        s
    }
}
