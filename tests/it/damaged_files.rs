//! Damage that is not a torn tail: start-up refuses and changes nothing;
//! `sessiond repair` keeps every sound record and the server then starts.
//! (Torn tails, cut at start-up: tests/it/durability.rs.)

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{durable, process, TempDir, TestServer};
use sessiond_client::CreateOptions;
use sessiond_server::{Config, Fsync};

/// Every file of `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = files(dir)
        .into_keys()
        .filter(|n| n.starts_with(prefix) && !n.contains(".damaged"))
        .map(|n| dir.join(n))
        .collect();
    v.sort();
    v
}

fn flip(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    b[at] ^= 0x10;
    fs::write(p, b).unwrap();
}

/// `n` sessions `s<i>`, each written with its data in one record.
async fn populate(config: Config, n: usize) {
    let s = TestServer::start_with(config).await;
    let mut c = s.client().await;
    for i in 0..n {
        let data = format!("data-{i}-{}", "p".repeat(40));
        c.create(
            format!("s{i}"),
            CreateOptions {
                data: Some(data.as_bytes()),
                timeout: Some(3600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    drop(c);
    s.stop().await;
}

/// How many of `s0..s<n>` are present with their own data; panics on a
/// session with wrong data (a salvage must never invent or garble).
async fn present(config: Config, n: usize) -> usize {
    let s = TestServer::start_with(config).await;
    let mut c = s.client().await;
    let mut found = 0;
    for i in 0..n {
        let id = format!("s{i}");
        if c.exists(&id).await.unwrap() {
            let want = format!("data-{i}-{}", "p".repeat(40));
            assert_eq!(c.get_data(&id).await.unwrap(), want.as_bytes(), "{id}");
            found += 1;
        }
    }
    drop(c);
    s.stop().await;
    found
}

/// Runs the real binary's `serve` on `dir`, which must refuse to start;
/// returns what it printed.
fn refused(dir: &Path) -> String {
    let port = process::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut child = process::Running(
        Command::new(process::BIN)
            .args(["serve", "--listen-resp", &listen])
            .args(["--listen-memcache", "off", "--listen-http", "off"])
            .args(["--listen-line", "off"])
            .args(["--data-dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sessiond started on a damaged directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "start-up must refuse");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    stderr
}

fn tool(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(process::BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Refusal names the file and says what to run; nothing on disk changes;
/// `check` agrees and points at `repair`; `repair` fixes it.
fn refuse_then_repair(dir: &Path, file: &Path) -> String {
    let before = files(dir);
    let msg = refused(dir);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(msg.contains(&name), "names the file: {msg}");
    assert!(msg.contains("byte"), "names the offset: {msg}");
    assert!(msg.contains("sessiond repair --data-dir"), "{msg}");
    assert!(msg.contains("Nothing was changed"), "{msg}");
    assert_eq!(files(dir), before, "start-up changed nothing on disk");

    let d = dir.to_str().unwrap();
    let (code, out) = tool(&["check", "--data-dir", d]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REFUSES"), "{out}");
    assert!(out.contains("sessiond repair"), "{out}");
    assert_eq!(files(dir), before, "check changed nothing");

    let (code, out) = tool(&["repair", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("moved aside"), "{out}");
    assert!(
        dir.join(format!("{name}.damaged")).exists(),
        "the damaged file is kept aside: {out}"
    );
    let (code, after) = tool(&["check", "--data-dir", d]);
    assert_eq!(code, Some(0), "a repaired directory checks clean: {after}");
    out
}

#[tokio::test]
async fn a_flipped_bit_mid_log_refuses_start_and_repair_keeps_every_later_record() {
    let dir = TempDir::new("midlog");
    let config = durable(&dir.0, Fsync::Always);
    populate(config.clone(), 300).await;
    let log = named(&dir.0, "log.").pop().unwrap();
    let len = fs::metadata(&log).unwrap().len() as usize;
    flip(&log, len / 3);

    let out = refuse_then_repair(&dir.0, &log);
    assert!(out.contains("after the damage"), "{out}");
    let n = present(config.clone(), 300).await;
    assert_eq!(n, 299, "all but the damaged record's session: {out}");
    // And the repaired directory goes on logging.
    let s = TestServer::start_with(config.clone()).await;
    s.client()
        .await
        .create("new", CreateOptions::default())
        .await
        .unwrap();
    s.stop().await;
    let s = TestServer::start_with(config).await;
    assert!(s.client().await.exists("new").await.unwrap());
    s.stop().await;
}

#[tokio::test]
async fn a_flipped_bit_in_a_log_header_refuses_start_and_repair_loses_nothing() {
    let dir = TempDir::new("header");
    let config = durable(&dir.0, Fsync::Always);
    populate(config.clone(), 50).await;
    let log = named(&dir.0, "log.").pop().unwrap();
    flip(&log, 3);

    refuse_then_repair(&dir.0, &log);
    assert_eq!(present(config, 50).await, 50, "a header holds no session");
}

/// Writes until a snapshot exists; returns its path.
async fn with_snapshot(config: Config, n: usize) -> PathBuf {
    populate(config.clone(), n).await;
    let s = TestServer::start_with(config.clone()).await;
    let mut c = s.client().await;
    // Rewrite one filler session until the log outgrows the live data.
    c.create("filler", CreateOptions::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0u32;
    while named(&config.data_dir, "snapshot.").is_empty() {
        assert!(Instant::now() < deadline, "no snapshot written");
        c.set_data("filler", format!("{round}-{}", "f".repeat(500)))
            .await
            .unwrap();
        round += 1;
        if round.is_multiple_of(50) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c.destroy("filler").await.unwrap();
    drop(c);
    s.stop().await;
    named(&config.data_dir, "snapshot.").pop().unwrap()
}

#[tokio::test]
async fn a_damaged_snapshot_falls_back_to_the_older_generation_it_keeps() {
    let dir = TempDir::new("fallback");
    let mut config = durable(&dir.0, Fsync::Everysec);
    config.compact_min_bytes = 16 * 1024;
    let snap = with_snapshot(config.clone(), 200).await;
    assert!(
        !named(&dir.0, "log.00000001").is_empty(),
        "the generation before the snapshot is kept"
    );
    let len = fs::metadata(&snap).unwrap().len() as usize;
    flip(&snap, len / 2);
    let before = files(&dir.0);
    // Starts, from the older generation, with everything.
    assert_eq!(present(config.clone(), 200).await, 200);
    let after = files(&dir.0);
    assert_eq!(
        after.get(snap.file_name().unwrap().to_str().unwrap()),
        before.get(snap.file_name().unwrap().to_str().unwrap()),
        "the damaged snapshot is left as it was"
    );
    let (code, out) = tool(&["check", "--data-dir", dir.0.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("falling back"), "{out}");
}

#[tokio::test]
async fn a_damaged_or_truncated_snapshot_with_no_older_copy_refuses_start() {
    for damage in ["flip", "truncate"] {
        let dir = TempDir::new("snapshot");
        let mut config = durable(&dir.0, Fsync::Everysec);
        config.compact_min_bytes = 16 * 1024;
        let snap = with_snapshot(config.clone(), 200).await;
        // What the next compaction would leave: the older generation gone.
        let gen_of = |p: &Path| -> u64 {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.rsplit('.').next().unwrap().parse().unwrap()
        };
        let newest = gen_of(&snap);
        for p in named(&dir.0, "log.")
            .into_iter()
            .chain(named(&dir.0, "snapshot."))
        {
            if gen_of(&p) < newest {
                fs::remove_file(p).unwrap();
            }
        }
        let len = fs::metadata(&snap).unwrap().len();
        match damage {
            "flip" => flip(&snap, len as usize / 2),
            _ => fs::OpenOptions::new()
                .write(true)
                .open(&snap)
                .unwrap()
                .set_len(len / 2)
                .unwrap(),
        }

        let out = refuse_then_repair(&dir.0, &snap);
        let n = present(config, 200).await;
        match damage {
            "flip" => assert_eq!(n, 199, "all but the damaged record's: {out}"),
            _ => assert!(
                (80..120).contains(&n),
                "the first half is kept: {n} sessions: {out}"
            ),
        }
    }
}
