//! Python's redis-py and Django's session backends (from PyPI; `.ci/run`
//! installs them) against sessiond on the default configuration, as the
//! stores built on them use them: see tests/python/ for what is asserted.

use crate::common;

use std::process::Command;

use common::process::run_script;
use common::TestServer;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/redis_py_store.py"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_works_unchanged() {
    let mut probe = Command::new("python3");
    if !common::process::tool_available(
        probe.args(["-c", "import redis"]),
        "python3 with redis-py (pip install redis)",
    ) {
        return;
    }
    let s = TestServer::start().await;
    let mut script = Command::new("python3");
    script.args([SCRIPT, "127.0.0.1", &s.addr.port().to_string()]);
    let out = run_script(script).await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "ok");
}

const DJANGO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/django_sessions.py"
);

/// Django's cache session backend over its own RedisCache and
/// PyMemcacheCache, unchanged, on sessiond's default configuration: login,
/// the session read back, a one-year expiry, cycle_key, logout, and the
/// cache's get_many/set_many (a MULTI) — the same as on real redis-server
/// and memcached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_session_backends_work_unchanged() {
    let mut probe = Command::new("python3");
    if !common::process::tool_available(
        probe.args(["-c", "import django, pymemcache, redis"]),
        "python3 with Django, pymemcache and redis-py (pip install)",
    ) {
        return;
    }
    let django = |redis: u16, memcached: u16| {
        let mut script = Command::new("python3");
        script.args([DJANGO, &redis.to_string(), &memcached.to_string()]);
        script
    };
    let Some((_server, ours, real)) = common::ours_and_real(django).await else {
        return;
    };
    let json = |out: Vec<u8>| -> serde_json::Value { serde_json::from_slice(&out).expect("JSON") };
    let (ours, real) = (json(ours), json(real));
    for door in ["redis", "memcached"] {
        let seen = &ours[door];
        assert_eq!(seen["read_back"], "alice", "{door}");
        assert_eq!(seen["expiry_days"], 365, "{door}: a one-year expiry");
        assert_eq!(
            seen["new_user"], "alice",
            "{door}: cycle_key keeps the data"
        );
        assert_eq!(seen["old_gone"], serde_json::Value::Null, "{door}");
        assert_eq!(seen["after_logout"], serde_json::Value::Null, "{door}");
        assert_eq!(
            ours[door], real[door],
            "{door}: sessiond vs the real server"
        );
    }
    assert_eq!(ours["redis"]["ttl_days"], 365);
}
