//! Prometheus text: every family's type and help once, before its series.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::Histogram;

/// Prometheus text being written: each family's `# HELP`/`# TYPE` once,
/// before its first series, whichever order series come in.
#[derive(Default)]
pub(crate) struct Families {
    /// Series per family, in the order families first appeared.
    pub(super) order: Vec<&'static str>,
    series: HashMap<&'static str, String>,
}

/// What every metric family is: its type and help text.
pub(crate) fn describe(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "sessions" => (
            "gauge",
            "Live sessions held (expired ones not yet reaped included).",
        ),
        "session_bytes" => (
            "gauge",
            "Bytes of session data, variables and classes held.",
        ),
        "locks" => (
            "gauge",
            "Lock entries held: ids locked or awaited, whether or not a session exists under them.",
        ),
        "lock_bytes" => (
            "gauge",
            "Bytes the lock entries take (ids, holders, waiters, owner secrets); counted in max_bytes_per_tenant.",
        ),
        "expired_sessions_total" => ("counter", "Sessions removed because they expired."),
        "lease_expiries_total" => ("counter", "Lock leases that ran out."),
        "refused_unlocks_total" => (
            "counter",
            "Lock-key deletes refused because the caller did not hold the lock (a stale holder, another connection).",
        ),
        "capped_timeouts_total" => (
            "counter",
            "Session timeouts asked for over max_timeout_s and set to it (capped, never refused).",
        ),
        "capped_leases_total" => (
            "counter",
            "Lock leases asked for over max_lease_ms and set to it (capped, never refused).",
        ),
        "commands_total" => (
            "counter",
            "Commands answered, all doors (refused ones included).",
        ),
        "commands_by_name_total" => ("counter", "Commands run, by door (protocol) and command."),
        "errors_total" => (
            "counter",
            "Error replies, by door (protocol) and error code.",
        ),
        "command_duration_seconds" => (
            "histogram",
            "Time the engine took per command, by door (lock and disk waits not included).",
        ),
        "lock_waits_total" => (
            "counter",
            "Lock requests that had to queue behind another holder.",
        ),
        "lock_wait_failures_total" => (
            "counter",
            "Queued lock requests that did not get the lock (wait over, client gone, shutdown).",
        ),
        "lock_waiting" => ("gauge", "Lock requests queued right now."),
        "lock_wait_seconds" => ("histogram", "How long queued lock requests waited."),
        "log_records_total" => (
            "counter",
            "Mutation records appended to the tenant's log since start.",
        ),
        "log_bytes" => ("gauge", "Bytes in the tenant's current log file."),
        "snapshot_bytes" => ("gauge", "Bytes in the tenant's newest snapshot."),
        "log_pending_records" => (
            "gauge",
            "Records appended but not yet durable per the fsync policy.",
        ),
        "fsync_duration_seconds" => ("histogram", "Time each fsync of the log took."),
        "snapshot_duration_seconds" => ("histogram", "Time each snapshot (compaction) took."),
        "connections" => ("gauge", "Open client connections, by listener."),
        "connections_accepted_total" => ("counter", "Client connections accepted, by listener."),
        "connections_rejected_total" => {
            ("counter", "Connections refused by the connection limits.")
        }
        "allowlist_denied_total" => (
            "counter",
            "Connections closed for an address on no allowlist.",
        ),
        "tls_handshake_failures_total" => ("counter", "TLS handshakes that failed or timed out."),
        "plugin_functions" => ("gauge", "Plugin functions loaded."),
        "plugin_load_errors_total" => (
            "counter",
            "Plugin files that failed to load (their previous versions stayed).",
        ),
        "plugin_calls_total" => (
            "counter",
            "Calls of a plugin function (every Redis EVAL script as function=\"(eval)\").",
        ),
        "plugin_errors_total" => (
            "counter",
            "Calls of a plugin function that failed (nothing they did was kept).",
        ),
        "plugin_call_microseconds_total" => (
            "counter",
            "Time spent in calls of a plugin function, microseconds.",
        ),
        "auth_failures_total" => ("counter", "Logins refused for a wrong user or password."),
        "auth_throttled_total" => (
            "counter",
            "Logins refused unchecked: too many failures from the address.",
        ),
        "received_bytes_total" => ("counter", "Bytes read from clients, by listener."),
        "sent_bytes_total" => ("counter", "Bytes written to clients, by listener."),
        "output_limit_disconnects_total" => (
            "counter",
            "Connections cut off for not reading their replies past max_output_buffer, by listener.",
        ),
        "resident_memory_bytes" => ("gauge", "Resident memory of the server process."),
        "uptime_seconds" => ("gauge", "Seconds since the server started."),
        "db_connections" => (
            "gauge",
            "Open connections of this node's database pool (postgres storage).",
        ),
        "db_pool_size" => ("gauge", "Connections the node's database pool may open."),
        "db_requests_in_flight" => (
            "gauge",
            "Requests sent to the database and not yet answered (the pool in use).",
        ),
        "db_waits_total" => (
            "counter",
            "Database requests that waited before they could be sent: for the transactions' connection, or for a connection to open.",
        ),
        "db_request_duration_seconds" => (
            "histogram",
            "Time each database request took, waits included, failed ones too.",
        ),
        "db_errors_total" => (
            "counter",
            "Database requests that failed: refused, connection lost, or timed out.",
        ),
        "db_timeouts_total" => (
            "counter",
            "Database requests not answered within database_timeout_ms.",
        ),
        "db_connects_total" => (
            "counter",
            "Database connections opened, the first ones and every reconnect.",
        ),
        "db_connect_failures_total" => ("counter", "Attempts to connect to the database that failed."),
        "db_in_touch" => (
            "gauge",
            "1 while the node's last heartbeat reached the database (/readyz answers 200), else 0.",
        ),
        "cluster_node_alive" => (
            "gauge",
            "Every node registered in the database: 1 if its heartbeat is current, as this node last read.",
        ),
        "lock_handoffs_total" => (
            "counter",
            "Locks this node's writes handed to a queued waiter, by where the waiter is (this_node, other_node).",
        ),
        "lock_wakeups_heard_total" => (
            "counter",
            "Wake-ups (NOTIFY) this node heard for its queued lock requests.",
        ),
        _ => return None,
    })
}

impl Families {
    fn entry(&mut self, name: &'static str) -> &mut String {
        if !self.series.contains_key(name) {
            self.order.push(name);
        }
        self.series.entry(name).or_default()
    }

    /// One sample of family `name` (documented in [`describe`]).
    pub(crate) fn series(&mut self, name: &'static str, labels: &str, value: u64) {
        let s = self.entry(name);
        if labels.is_empty() {
            let _ = writeln!(s, "sessiond_{name} {value}");
        } else {
            let _ = writeln!(s, "sessiond_{name}{{{labels}}} {value}");
        }
    }

    /// One labelled histogram of family `name`.
    pub(crate) fn histogram(&mut self, name: &'static str, labels: &str, h: &Histogram) {
        h.render(self.entry(name), name, labels);
    }

    /// The whole text, each family under its `# HELP` and `# TYPE`.
    pub(crate) fn finish(self) -> String {
        let mut out = String::new();
        for name in self.order {
            let (kind, help) = describe(name).unwrap_or(("untyped", ""));
            let _ = writeln!(out, "# HELP sessiond_{name} {help}");
            let _ = writeln!(out, "# TYPE sessiond_{name} {kind}");
            if let Some(s) = self.series.get(name) {
                out.push_str(s);
            }
        }
        out
    }
}
