//! `INFO` on the RESP door: Redis-shaped sections (`# Name` then
//! `field:value` lines), so tools that parse Redis's `INFO` parse ours.
//! Figures about sessions are the connection's tenant's; connection and
//! byte counters are the server's.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use sessiond_core::InfoSection;
use sessiond_proto::redis::REDIS_VERSION;

use crate::metrics::resident_memory_bytes;
use crate::shared::Shared;
use crate::tenant::Tenant;

/// How many contended sessions `INFO contention` lists.
const CONTENDED: usize = 10;

/// Sections left out of a bare `INFO` (as Redis leaves out its
/// `commandstats`); `INFO all` or naming them shows them.
const NOT_BY_DEFAULT: [&str; 3] = ["Commandstats", "Errorstats", "Contention"];

/// Every section for a connection of `tenant`, the engine's own
/// (`Sessions`) among them, narrowed to those `wanted` names (none:
/// the default set; `all`/`everything`: every one).
pub(crate) fn sections(
    shared: &Shared,
    tenant: &Tenant,
    engine: Vec<InfoSection>,
    wanted: &[Bytes],
) -> Vec<InfoSection> {
    let field = |k: &str, v: String| (k.to_string(), v);
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let m = &tenant.metrics;
    let stats = tenant.engine().stats();
    // The engine's own count reaps expired sessions first: exact.
    let sessions = engine
        .iter()
        .flat_map(|s| s.fields.iter())
        .find(|(k, _)| k == "sessions")
        .map_or(stats.sessions.to_string(), |(_, v)| v.clone());
    let (bytes_in, bytes_out) = shared.doors.iter().fold((0, 0), |(i, o), d| {
        (i + load(&d.bytes_in), o + load(&d.bytes_out))
    });
    let config = tenant.engine().config();
    let rss = resident_memory_bytes().unwrap_or(0);
    let uptime = shared.started.elapsed().as_secs();

    let mut all = vec![
        InfoSection {
            name: "Server",
            fields: vec![
                // The Redis release whose replies the Redis door follows:
                // clients read it to decide what they may send.
                field("redis_version", REDIS_VERSION.into()),
                field("sessiond_version", env!("CARGO_PKG_VERSION").to_string()),
                field("redis_mode", "standalone".into()),
                field("os", std::env::consts::OS.into()),
                field("arch_bits", (usize::BITS).to_string()),
                field("process_id", std::process::id().to_string()),
                field("tcp_port", shared.port.to_string()),
                field("uptime_in_seconds", uptime.to_string()),
                field("uptime_in_days", (uptime / 86_400).to_string()),
            ],
        },
        // One server, no cluster: clients that ask (redis-py, ioredis)
        // stay in standalone mode.
        InfoSection {
            name: "Cluster",
            fields: vec![field("cluster_enabled", "0".into())],
        },
        InfoSection {
            name: "Clients",
            fields: vec![
                field(
                    "connected_clients",
                    shared.connected.load(Ordering::Relaxed).to_string(),
                ),
                field(
                    "blocked_clients",
                    m.lock_waiting.load(Ordering::Relaxed).max(0).to_string(),
                ),
                field(
                    "allowlist_denied_connections",
                    load(&shared.denied).to_string(),
                ),
                field(
                    "tls_handshake_failures",
                    load(&shared.tls_failures).to_string(),
                ),
                field(
                    "acl_access_denied_auth",
                    shared.auth.refusals().0.to_string(),
                ),
                field("auth_throttled", shared.auth.refusals().1.to_string()),
                field("tenant", tenant.name().to_string()),
            ],
        },
        InfoSection {
            name: "Memory",
            fields: vec![
                field("used_memory", (stats.bytes + stats.lock_bytes).to_string()),
                field("used_memory_human", human(stats.bytes + stats.lock_bytes)),
                field("used_memory_sessions", stats.bytes.to_string()),
                field("used_memory_locks", stats.lock_bytes.to_string()),
                field("used_memory_rss", rss.to_string()),
                field("used_memory_rss_human", human(rss)),
                field("maxmemory", config.max_bytes.to_string()),
                field("maxmemory_human", human(config.max_bytes)),
                field("maxmemory_policy", "noeviction".into()),
            ],
        },
        persistence(tenant),
        InfoSection {
            name: "Stats",
            fields: vec![
                field(
                    "total_connections_received",
                    shared.accepted_total().to_string(),
                ),
                field("total_commands_processed", m.commands_total().to_string()),
                field("total_net_input_bytes", bytes_in.to_string()),
                field("total_net_output_bytes", bytes_out.to_string()),
                field(
                    "rejected_connections",
                    load(&shared.admission.rejected).to_string(),
                ),
                field("expired_keys", stats.expired_sessions.to_string()),
                field("evicted_keys", "0".into()),
                field("expired_leases", stats.expired_leases.to_string()),
                field("total_error_replies", m.errors_total().to_string()),
                field("lock_waits", load(&m.lock_waits).to_string()),
                field(
                    "lock_wait_failures",
                    load(&m.lock_wait_failures).to_string(),
                ),
                field("lock_wait_avg_usec", m.lock_wait.mean_us().to_string()),
            ],
        },
        InfoSection {
            name: "Commandstats",
            fields: m
                .by_command()
                .into_iter()
                .map(|(name, n)| (format!("cmdstat_{name}"), format!("calls={n}")))
                .collect(),
        },
        InfoSection {
            name: "Errorstats",
            fields: m
                .by_error()
                .into_iter()
                .map(|(code, n)| (format!("errorstat_{code}"), format!("count={n}")))
                .collect(),
        },
        InfoSection {
            name: "Contention",
            fields: m
                .hot(CONTENDED)
                .into_iter()
                .enumerate()
                .map(|(i, (id, waits))| {
                    (
                        format!("contended_{i}"),
                        // The id last: it may hold commas and equals signs.
                        format!("waits={waits},id={}", String::from_utf8_lossy(&id)),
                    )
                })
                .collect(),
        },
    ];
    all.extend(engine);
    all.push(InfoSection {
        name: "Keyspace",
        // `expires`: the keys with one, as Redis counts them.
        fields: vec![field(
            "db0",
            format!(
                "keys={sessions},expires={},avg_ttl=0",
                sessions
                    .parse::<u64>()
                    .unwrap_or(stats.sessions)
                    .saturating_sub(stats.persistent)
            ),
        )],
    });
    let names: Vec<String> = wanted
        .iter()
        .map(|w| String::from_utf8_lossy(w).to_ascii_lowercase())
        .collect();
    let every = names.iter().any(|n| n == "all" || n == "everything");
    let default = names.is_empty() || names.iter().any(|n| n == "default");
    all.retain(|s| {
        every
            || (default && !NOT_BY_DEFAULT.contains(&s.name))
            || names.iter().any(|n| n.eq_ignore_ascii_case(s.name))
    });
    all
}

fn persistence(tenant: &Tenant) -> InfoSection {
    let field = |k: &str, v: String| (k.to_string(), v);
    let mut fields = vec![field("loading", "0".into())];
    match tenant.persistence() {
        None => {
            fields.push(field("storage", "memory".into()));
            fields.push(field("aof_enabled", "0".into()));
        }
        Some(p) => {
            let fsyncs = p.fsyncs();
            let snaps = p.snapshots();
            fields.extend([
                field("storage", "log".into()),
                field("aof_enabled", "1".into()),
                field("fsync", p.fsync().name().into()),
                field("aof_current_size", p.log_bytes().to_string()),
                field("log_records", p.appended().to_string()),
                field("log_pending_records", p.pending().to_string()),
                field("fsyncs", fsyncs.count().to_string()),
                field("fsync_avg_usec", fsyncs.mean_us().to_string()),
                field("snapshot_bytes", p.snapshot_bytes().to_string()),
                field("snapshots", snaps.count().to_string()),
                field("snapshot_avg_msec", (snaps.mean_us() / 1000).to_string()),
            ]);
        }
    }
    InfoSection {
        name: "Persistence",
        fields,
    }
}

/// Bytes as Redis's `*_human` fields show them (`1.50M`).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_read_like_redis() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }
}
