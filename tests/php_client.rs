//! The pure-PHP client (clients/php) against a real sessiond: the
//! `Sessiond\Client` API and every msession_* function of msession.php, each
//! in a PHP script that exits non-zero on the first failed check. The
//! session handler is tested with PHP's session machinery in
//! tests/php_handlers.rs.

mod common;

use std::process::Command;

use common::TestServer;

const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/php/tests");

fn php_available() -> bool {
    let ok = Command::new("php").arg("-v").output().is_ok();
    assert!(ok || std::env::var_os("CI").is_none(), "CI needs php-cli");
    ok
}

fn run(script: &str, args: &[String]) {
    let out = Command::new("php")
        .arg(format!("{TESTS}/{script}"))
        .args(args)
        .output()
        .expect("run php");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "{script}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_client_api_works_end_to_end() {
    if !php_available() {
        return;
    }
    let s = TestServer::start().await;
    let addr = format!("tcp://{}", s.addr);
    tokio::task::spawn_blocking(move || run("client_test.php", &[addr]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_msession_function_works_end_to_end() {
    if !php_available() {
        return;
    }
    let s = TestServer::start().await;
    let (host, port) = (s.addr.ip().to_string(), s.addr.port().to_string());
    tokio::task::spawn_blocking(move || run("msession_test.php", &[host, port]))
        .await
        .unwrap();
    // What the legacy calls left is plain sessiond state.
    let mut c = s.client().await;
    assert_eq!(
        c.get("legacy2", "cart").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
}
