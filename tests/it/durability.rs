//! Durability with the embedded log: restarts, damaged files, compaction,
//! expiry across a restart. (Crashes of the real binary: tests/it/crash.rs.)

use crate::common;

use std::sync::Arc;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::{durable, TempDir, TestServer};
use sessiond_client::{CreateOptions, LockOptions};
use sessiond_server::Fsync;

fn log_files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

async fn write_some(s: &TestServer, n: usize) {
    let mut c = s.client().await;
    for i in 0..n {
        let id = format!("s{i}");
        c.create(
            &id,
            CreateOptions {
                class: Some(b"web"),
                timeout: Some(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        c.set(&id, "user", format!("u{}", i % 7)).await.unwrap();
        c.set_data(&id, format!("data-{i}")).await.unwrap();
        c.inc(&id, "hits", 3).await.unwrap();
    }
    c.destroy("s0").await.unwrap();
    c.regenerate("s1", Some(b"s1-renamed")).await.unwrap();
    c.del("s2", "user").await.unwrap();
}

/// Checks what `write_some(n)` wrote; `others` sessions exist besides.
async fn check_some(s: &TestServer, n: usize, others: u64) {
    let mut c = s.client().await;
    assert!(!c.exists("s0").await.unwrap(), "destroy survived");
    assert!(!c.exists("s1").await.unwrap());
    assert_eq!(
        c.get("s1-renamed", "user").await.unwrap(),
        Some(Bytes::from("u1"))
    );
    assert_eq!(c.get("s2", "user").await.unwrap(), None);
    for i in 3..n {
        let id = format!("s{i}");
        assert_eq!(
            c.get_data(&id).await.unwrap(),
            Bytes::from(format!("data-{i}")),
            "{id}"
        );
        assert_eq!(c.get(&id, "hits").await.unwrap(), Some(Bytes::from("3")));
        assert_eq!(c.info(&id).await.unwrap().class.as_deref(), Some("web"));
    }
    assert_eq!(c.count(None).await.unwrap(), (n - 1) as u64 + others);
    let mut found = c.find("user", "u3").await.unwrap();
    found.sort();
    assert!(
        found.contains(&"s3".to_string()),
        "the var index is rebuilt: {found:?}"
    );
}

#[tokio::test]
async fn everything_survives_a_clean_restart() {
    let dir = TempDir::new("restart");
    let s = TestServer::start_with(durable(&dir.0, Fsync::Everysec)).await;
    write_some(&s, 40).await;
    let mut c = s.client().await;
    let key = c.lock("s5", LockOptions::default()).await.unwrap();
    drop(c);
    s.stop().await;

    let s = TestServer::start_with(durable(&dir.0, Fsync::Everysec)).await;
    check_some(&s, 40, 0).await;
    // Locks do not survive, but fencing keys never go backwards.
    let mut c = s.client().await;
    let after = c.lock("s5", LockOptions::default()).await.unwrap();
    assert!(after > key, "{after} > {key}");
    s.stop().await;
}

#[tokio::test]
async fn a_torn_or_damaged_log_tail_is_cut_and_the_rest_kept() {
    for damage in ["truncate", "flip", "garbage"] {
        let dir = TempDir::new("torn");
        let s = TestServer::start_with(durable(&dir.0, Fsync::Always)).await;
        write_some(&s, 20).await;
        let mut c = s.client().await;
        c.create("last", CreateOptions::default()).await.unwrap();
        c.set_data("last", vec![b'x'; 5000]).await.unwrap();
        drop(c);
        s.stop().await;

        let log = log_files(&dir.0, "log.").pop().unwrap();
        let len = fs::metadata(&log).unwrap().len();
        match damage {
            // Cut inside the last record (the 5000-byte SetData).
            "truncate" => OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(len - 100)
                .unwrap(),
            "flip" => {
                let mut bytes = fs::read(&log).unwrap();
                let at = bytes.len() - 50;
                bytes[at] ^= 0xff;
                fs::write(&log, bytes).unwrap();
            }
            _ => OpenOptions::new()
                .append(true)
                .open(&log)
                .unwrap()
                .write_all(b"\x10\x00\x00\x00garbage!")
                .unwrap(),
        }

        let s = TestServer::start_with(durable(&dir.0, Fsync::Always)).await;
        check_some(&s, 20, 1).await;
        let mut c = s.client().await;
        assert!(
            c.exists("last").await.unwrap(),
            "{damage}: records before the damage are kept"
        );
        let data = c.get_data("last").await.unwrap();
        match damage {
            "garbage" => assert_eq!(data.len(), 5000),
            _ => assert!(data.is_empty(), "{damage}: the damaged record is dropped"),
        }
        // And the server logs new writes after the cut.
        c.set_data("last", "after").await.unwrap();
        drop(c);
        s.stop().await;
        let s = TestServer::start_with(durable(&dir.0, Fsync::Always)).await;
        assert_eq!(
            s.client().await.get_data("last").await.unwrap(),
            Bytes::from("after"),
            "{damage}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn compaction_writes_a_snapshot_and_drops_old_logs() {
    let dir = TempDir::new("compact");
    let mut config = durable(&dir.0, Fsync::Everysec);
    config.compact_min_bytes = 64 * 1024;
    config.compact_ratio = 2;
    let s = TestServer::start_with(config.clone()).await;
    write_some(&s, 30).await;
    let mut c = s.client().await;
    // Rewrite the same sessions until the log is many times the live data.
    for round in 0..40 {
        for i in 3..30 {
            c.set_data(format!("s{i}"), format!("{round:04}-{}", "y".repeat(200)))
                .await
                .unwrap();
        }
    }
    for i in 3..30 {
        c.set_data(format!("s{i}"), format!("data-{i}"))
            .await
            .unwrap();
    }
    let mut snapshots = Vec::new();
    for _ in 0..100 {
        snapshots = log_files(&dir.0, "snapshot.");
        if !snapshots.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!snapshots.is_empty(), "a snapshot was written");
    drop(c);
    s.stop().await;
    let logs = log_files(&dir.0, "log.");
    assert!(logs.len() <= 2, "old logs removed: {logs:?}");
    let total: u64 = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        total < 400 * 1024,
        "data directory stays small: {total} bytes"
    );

    let s = TestServer::start_with(config).await;
    check_some(&s, 30, 0).await;
    s.stop().await;
}

#[tokio::test]
async fn a_deleted_snapshot_still_starts_and_keeps_the_newer_log() {
    let dir = TempDir::new("nosnap");
    let mut config = durable(&dir.0, Fsync::Everysec);
    config.compact_min_bytes = 16 * 1024;
    let s = TestServer::start_with(config.clone()).await;
    let mut c = s.client().await;
    c.create("old", CreateOptions::default()).await.unwrap();
    // Writes until the first compaction, and no further: a second one
    // would drop the first log, and with the snapshots deleted the start
    // would then (rightly) refuse. Compaction runs in the background, so
    // how many writes that takes depends on the machine's load.
    for round in 0..2_000 {
        if !log_files(&dir.0, "snapshot.").is_empty() {
            break;
        }
        c.set_data("old", format!("{round}-{}", "z".repeat(300)))
            .await
            .unwrap();
        if round >= 60 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let snapshots = log_files(&dir.0, "snapshot.");
    assert_eq!(snapshots.len(), 1, "one compaction: {snapshots:?}");
    c.create("new", CreateOptions::default()).await.unwrap();
    drop(c);
    s.stop().await;
    for snap in log_files(&dir.0, "snapshot.") {
        fs::remove_file(snap).unwrap();
    }
    let s = TestServer::start_with(config).await;
    let mut c = s.client().await;
    assert!(
        c.exists("new").await.unwrap(),
        "what the remaining log holds is kept"
    );
    s.stop().await;
}

#[tokio::test]
async fn expiry_counts_the_time_the_server_was_down() {
    // A manual clock: the downtime is a clock step, not a sleep.
    let clock = Arc::new(sessiond_core::ManualClock::new(1_000_000));
    let dir = TempDir::new("expiry");
    let config = || durable(&dir.0, Fsync::Everysec);
    let s = TestServer::start_with_clock(config(), clock.clone()).await;
    let mut c = s.client().await;
    c.create(
        "short",
        CreateOptions {
            timeout: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.create(
        "long",
        CreateOptions {
            timeout: Some(600),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    drop(c);
    s.stop().await;
    clock.advance(1000);
    let s = TestServer::start_with_clock(config(), clock.clone()).await;
    let mut c = s.client().await;
    let ttl = c.ttl("short").await.unwrap();
    assert!(ttl <= 1, "a second of downtime counted: ttl {ttl}");
    clock.advance(2000);
    assert!(!c.exists("short").await.unwrap());
    assert!(c.exists("long").await.unwrap());
    s.stop().await;
}

#[tokio::test]
async fn check_and_dump_read_a_data_directory_offline() {
    let dir = TempDir::new("inspect");
    let s = TestServer::start_with(durable(&dir.0, Fsync::Everysec)).await;
    write_some(&s, 5).await;
    s.stop().await;
    let bin = common::process::BIN;
    let d = dir.0.to_str().unwrap();

    let out = std::process::Command::new(bin)
        .args(["check", "--data-dir", d])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let out = std::process::Command::new(bin)
        .args(["dump", "--data-dir", d])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("\"id\":\"s3\""), "{text}");
    assert!(text.contains("\"data\":\"data-3\""), "{text}");
    assert!(text.contains("\"user\":\"u3\""), "{text}");

    // Damage: check says where and exits 1; dump still reads what is good.
    let log = log_files(&dir.0, "log.").pop().unwrap();
    OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"\x05\x00\x00\x00\x00\x00\x00\x00xx")
        .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--data-dir", d])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DAMAGED"));
    let before = fs::metadata(&log).unwrap().len();
    let out = std::process::Command::new(bin)
        .args(["dump", "--data-dir", d])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4);
    assert_eq!(
        fs::metadata(&log).unwrap().len(),
        before,
        "dump changes nothing on disk"
    );
}

/// A Redis key without expiry keeps none across a restart (its timeout is
/// logged like any other).
#[tokio::test]
async fn a_key_without_expiry_survives_a_restart_without_one() {
    let dir = TempDir::new("never");
    let s = TestServer::start_with(durable(&dir.0, Fsync::Everysec)).await;
    let mut c = s.client().await;
    c.call(&["SET", "forever", "v"]).await.unwrap();
    c.call(&["SET", "counted", "v", "EX", "100"]).await.unwrap();
    drop(c);
    s.stop().await;
    let s = TestServer::start_with(durable(&dir.0, Fsync::Everysec)).await;
    let mut c = s.client().await;
    use sessiond_client::RespValue as V;
    assert_eq!(c.call(&["TTL", "forever"]).await.unwrap(), V::Int(-1));
    let V::Int(ttl) = c.call(&["TTL", "counted"]).await.unwrap() else {
        panic!("no TTL")
    };
    assert!((98..=100).contains(&ttl), "{ttl}");
    // Listed as written, after the restart too.
    let V::Array(mut keys) = c.call(&["KEYS", "*"]).await.unwrap() else {
        panic!("KEYS")
    };
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        keys,
        vec![V::Bulk("counted".into()), V::Bulk("forever".into())]
    );
    s.stop().await;
}
