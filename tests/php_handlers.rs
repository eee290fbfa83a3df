//! Real PHP against a real sessiond: PHP's own session machinery with the
//! phpredis save handler (`session.save_handler = redis`), run as separate
//! `php` processes the way web requests are.
//!
//! Needs `php` with the redis extension (Debian: php-cli php-redis); CI
//! installs them and requires them, elsewhere the tests skip when absent.

mod common;

use std::process::Command;

use common::TestServer;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/session_cli.php");

/// Whether php with the redis extension is here; in CI it must be.
fn php_redis_available() -> bool {
    let ok = Command::new("php")
        .args(["-r", "exit(extension_loaded('redis') ? 0 : 1);"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI needs php-cli and php-redis"
    );
    ok
}

fn php_redis(port: u16, args: &[&str]) -> String {
    let out = Command::new("php")
        .args([
            "-d",
            "session.save_handler=redis",
            "-d",
            &format!("session.save_path=tcp://127.0.0.1:{port}"),
            "-d",
            "session.use_strict_mode=1",
            "-d",
            "session.gc_maxlifetime=600",
            "-d",
            "redis.session.locking_enabled=1",
            // Poll every 2 ms and never give up, so contention cannot drop an
            // increment; sessiond answers each try at once either way.
            "-d",
            "redis.session.lock_retries=-1",
            "-d",
            "redis.session.lock_wait_time=2000",
            SCRIPT,
        ])
        .args(args)
        .output()
        .expect("run php");
    assert!(
        out.status.success(),
        "php {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phpredis_sessions_survive_across_processes_and_doors() {
    if !php_redis_available() {
        return;
    }
    let s = TestServer::start().await;
    let port = s.addr.port();
    // Strict mode: an id the server does not know is replaced by a new one.
    let id = php_redis(
        port,
        &["write", "unknownid0000000000000000", "user_id", "42"],
    );
    assert_ne!(id, "unknownid0000000000000000");
    assert_eq!(php_redis(port, &["read", &id, "user_id"]), "42");

    // The same session through the native door.
    let mut c = s.client().await;
    assert_eq!(
        c.get(&id, "user_id").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(c.find("user_id", "42").await.unwrap(), vec![id.clone()]);

    // Regenerate: the old id is gone, the data moved.
    let new = tokio::task::spawn_blocking({
        let id = id.clone();
        move || php_redis(port, &["regenerate", &id])
    })
    .await
    .unwrap();
    assert_ne!(new, id);
    assert_eq!(php_redis(port, &["read", &new, "user_id"]), "42");
    assert!(!c.exists(&id).await.unwrap());

    // A native destroy logs the user out of PHP.
    c.destroy(&new).await.unwrap();
    assert_ne!(
        php_redis(port, &["start", &new]),
        new,
        "strict mode drops the destroyed id"
    );

    // session_destroy from PHP.
    let id = php_redis(port, &["write", "x", "k", "v"]);
    php_redis(port, &["destroy", &id]);
    assert!(!c.exists(&id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_php_processes_increment_exactly_400_times() {
    if !php_redis_available() {
        return;
    }
    let s = TestServer::start().await;
    let port = s.addr.port();
    let id = php_redis(port, &["write", "seed", "n", "0"]);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let id = id.clone();
            std::thread::spawn(move || php_redis(port, &["incr", &id, "50"]))
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), "done");
    }
    assert_eq!(php_redis(port, &["read", &id, "n"]), "400");
    let mut c = s.client().await;
    assert_eq!(c.get(&id, "n").await.unwrap().as_deref(), Some(&b"400"[..]));
}
