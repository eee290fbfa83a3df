//! Python's redis-py (from PyPI; `.ci/run` installs it) against sessiond
//! on the default configuration, as the stores built on it use it: see
//! tests/python/redis_py_store.py for what is asserted.

use crate::common;

use std::process::Command;

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
    let port = s.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([SCRIPT, "127.0.0.1", &port])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
