//! The pure-PHP client (clients/php) against a real sessiond: the
//! `Sessiond\Client` API and every msession_* function of msession.php, each
//! in a PHP script that exits non-zero on the first failed check. The
//! session handler is tested with PHP's session machinery in
//! tests/it/php_handlers.rs.

use crate::common;

use std::process::Command;

use common::TestServer;

const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/php/tests");

fn php_available() -> bool {
    common::process::tool_available(Command::new("php").arg("-v"), "php-cli")
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
    // msession_plugin() calls a real plugin function.
    let plugins = common::TempDir::new("php-plugins");
    std::fs::write(
        plugins.0.join("visits.lua"),
        r#"sessiond.register("visit", function(s, page)
             s:set("last_page", page)
             return s:incr("pages")
           end)"#,
    )
    .unwrap();
    let s = TestServer::start_with(sessiond_server::Config {
        storage: sessiond_server::Storage::Memory,
        plugins_dir: plugins.0.clone(),
        ..sessiond_server::Config::default()
    })
    .await;
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
    assert_eq!(
        c.get("legacy2", "last_page").await.unwrap().as_deref(),
        Some(&b"/cart"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sessions_import_without_logging_anyone_out() {
    if !php_available() {
        return;
    }
    let s = TestServer::start().await;
    // PHP's "2;/path" layout: two levels of one-character directories.
    let dir = common::TempDir::new("php-files");
    let nested = dir.0.join("a").join("b");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("sess_abc123"), "user_id|i:42;").unwrap();
    std::fs::write(dir.0.join("sess_top"), "").unwrap();
    std::fs::write(dir.0.join("not_a_session"), "x").unwrap();
    let old = dir.0.join("sess_stale");
    std::fs::write(&old, "user_id|i:7;").unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(touched.success());
    let import = |addr: String, path: std::path::PathBuf| {
        let out = Command::new("php")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/clients/php/tools/import_files.php"
            ))
            .arg(path)
            .arg(addr)
            .arg("1440")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let addr = format!("tcp://{}", s.addr);
    let (a, p) = (addr.clone(), dir.0.clone());
    let first = tokio::task::spawn_blocking(move || import(a, p))
        .await
        .unwrap();
    assert_eq!(first, "imported 2, already present 0, expired 1, failed 0");
    let mut c = s.client().await;
    assert_eq!(
        c.get("abc123", "user_id").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert!(c.exists("top").await.unwrap());
    assert!(!c.exists("stale").await.unwrap());
    // Idempotent: a second run changes nothing.
    let p = dir.0.clone();
    let again = tokio::task::spawn_blocking(move || import(addr, p))
        .await
        .unwrap();
    assert_eq!(again, "imported 0, already present 2, expired 1, failed 0");
}
