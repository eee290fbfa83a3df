//! `/metrics`: every counter a login may see, as Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::scope::Scope;
use crate::backend::cluster::Cluster;
use crate::door::Door;
use crate::metrics::{resident_memory_bytes, Families};
use crate::shared::Shared;

/// `/metrics`: Prometheus text format, names prefixed `sessiond_`.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>, scope: Scope) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&shared, &scope),
    )
        .into_response()
}

fn render(shared: &Shared, scope: &Scope) -> String {
    let mut f = Families::default();
    for t in &scope.tenants {
        let s = t.engine().stats();
        let label = format!("tenant=\"{}\"", t.name());
        f.series("sessions", &label, s.sessions);
        f.series("session_bytes", &label, s.bytes);
        f.series("locks", &label, s.locks);
        f.series("lock_bytes", &label, s.lock_bytes);
        f.series("expired_sessions_total", &label, s.expired_sessions);
        f.series("lease_expiries_total", &label, s.expired_leases);
        f.series("refused_unlocks_total", &label, s.refused_unlocks);
        f.series("capped_timeouts_total", &label, s.capped_timeouts);
        f.series("capped_leases_total", &label, s.capped_leases);
        f.series("commands_total", &label, t.metrics.commands_total());
        t.metrics.render(&mut f, t.name());
        if let Some(p) = t.persistence() {
            f.series("log_records_total", &label, p.appended());
            f.series("log_bytes", &label, p.log_bytes());
            f.series("snapshot_bytes", &label, p.snapshot_bytes());
            f.series("log_pending_records", &label, p.pending());
            f.histogram("fsync_duration_seconds", &label, p.fsyncs());
            f.histogram("snapshot_duration_seconds", &label, p.snapshots());
        }
    }
    if scope.server_wide {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for door in Door::ALL {
            let c = &shared.doors[door as usize];
            let label = format!("door=\"{}\"", door.label());
            f.series(
                "connections",
                &label,
                u64::try_from(c.open.load(Ordering::Relaxed)).unwrap_or(0),
            );
            f.series("connections_accepted_total", &label, load(&c.accepted));
            f.series("received_bytes_total", &label, load(&c.bytes_in));
            f.series("sent_bytes_total", &label, load(&c.bytes_out));
            f.series(
                "output_limit_disconnects_total",
                &label,
                load(&c.output_cutoffs),
            );
        }
        let (failed, throttled) = shared.auth.refusals();
        f.series(
            "connections_rejected_total",
            "",
            load(&shared.admission.rejected),
        );
        f.series("allowlist_denied_total", "", load(&shared.denied));
        f.series(
            "tls_handshake_failures_total",
            "",
            load(&shared.tls_failures),
        );
        f.series("auth_failures_total", "", failed);
        f.series("auth_throttled_total", "", throttled);
        if let Some(rss) = resident_memory_bytes() {
            f.series("resident_memory_bytes", "", rss);
        }
        f.series("uptime_seconds", "", shared.started.elapsed().as_secs());
        if let Some(c) = &shared.cluster {
            cluster(&mut f, c);
        }
        {
            let s = &shared.scripts;
            f.series("plugin_functions", "", s.function_count() as u64);
            f.series("plugin_load_errors_total", "", load(&s.load_errors));
            // Function names are letters, digits, '_', '.' and '-'; every
            // Redis script counts as "(eval)".
            for (name, st) in s.stats() {
                let label = format!("function=\"{name}\"");
                f.series("plugin_calls_total", &label, load(&st.calls));
                f.series("plugin_errors_total", &label, load(&st.errors));
                f.series("plugin_call_microseconds_total", &label, load(&st.micros));
            }
        }
    }
    f.finish()
}

/// The node's database pool, its view of the cluster, and its lock
/// hand-offs.
fn cluster(f: &mut Families, c: &Cluster) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let s = c.pool_stats();
    let (open, size) = c.connections();
    f.series("db_connections", "", open as u64);
    f.series("db_pool_size", "", size as u64);
    f.series(
        "db_requests_in_flight",
        "",
        u64::try_from(s.in_flight.load(Ordering::Relaxed)).unwrap_or(0),
    );
    f.series("db_waits_total", "", load(&s.waits));
    f.histogram("db_request_duration_seconds", "", &s.latency);
    f.series("db_errors_total", "", load(&s.errors));
    f.series("db_timeouts_total", "", load(&s.timeouts));
    f.series("db_connects_total", "", load(&s.connects));
    f.series("db_connect_failures_total", "", load(&s.connect_failures));
    f.series("db_in_touch", "", u64::from(c.in_touch()));
    for (name, alive) in c.nodes() {
        let label = format!("node=\"{}\"", escape(&name));
        f.series("cluster_node_alive", &label, u64::from(alive));
    }
    f.series(
        "lock_handoffs_total",
        "to=\"this_node\"",
        load(&s.handoffs_here),
    );
    f.series(
        "lock_handoffs_total",
        "to=\"other_node\"",
        load(&s.handoffs_away),
    );
    f.series("lock_wakeups_heard_total", "", load(&s.wakeups_heard));
}

/// A label value as Prometheus text writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
