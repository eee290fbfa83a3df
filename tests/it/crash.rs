//! kill -9 the real binary in the middle of writes from many connections,
//! restart it on the same data directory, and check what survived.
//!
//! - `fsync always`: every acknowledged write is there, and every value is
//!   one that was really written (no half-applied record).
//! - `fsync everysec`: what was acknowledged more than the window ago is there.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{signal, start_binary};
use common::TempDir;
use sessiond_client::{Client, CreateOptions};

const WRITERS: usize = 8;

/// Per writer: the values it sent and when each was acknowledged.
#[derive(Default)]
struct History {
    sent: u64,
    acked: Vec<(u64, Instant)>,
}

fn args(dir: &TempDir, fsync: &str) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.0.display().to_string(),
        "--fsync".into(),
        fsync.into(),
    ]
}

async fn crash_rounds(fsync: &str, rounds: u64) {
    let dir = TempDir::new(&format!("crash-{fsync}"));
    let a = args(&dir, fsync);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut seed: u64 = 0x5EED_0000 ^ rounds;
    let mut histories: Vec<Arc<Mutex<History>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    for round in 0..rounds {
        let (mut child, port) = start_binary(&a);
        let addr = format!("127.0.0.1:{port}");
        // What the previous round acknowledged must be here.
        if round > 0 {
            verify(&addr, &histories, fsync).await;
        }
        let mut c = Client::connect(&addr).await.unwrap();
        for w in 0..WRITERS {
            let id = format!("w{w}");
            if !c.exists(&id).await.unwrap() {
                c.create(&id, CreateOptions::default()).await.unwrap();
            }
        }
        histories = (0..WRITERS).map(|_| Arc::default()).collect();
        let mut tasks = Vec::new();
        for (w, h) in histories.iter().enumerate() {
            let (addr, h) = (addr.clone(), h.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&addr).await.unwrap();
                let id = format!("w{w}");
                for i in 1u64.. {
                    h.lock().unwrap().sent = i;
                    let value = format!("{i}:{}", "v".repeat(100 + (i % 50) as usize));
                    if c.set_data(&id, value).await.is_err() {
                        return;
                    }
                    h.lock().unwrap().acked.push((i, Instant::now()));
                }
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 700)).await;
        signal(&child, "-KILL");
        let killed_at = Instant::now();
        let _ = child.wait();
        for t in tasks {
            let _ = t.await;
        }
        for h in &histories {
            let mut h = h.lock().unwrap();
            assert!(
                !h.acked.is_empty(),
                "round {round}: the writers made progress"
            );
            // Keep only what the policy promises to keep.
            if fsync != "always" {
                h.acked
                    .retain(|(_, at)| *at + Duration::from_millis(1500) < killed_at);
            }
        }
    }
    let (mut child, port) = start_binary(&a);
    verify(&format!("127.0.0.1:{port}"), &histories, fsync).await;
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

async fn verify(addr: &str, histories: &[Arc<Mutex<History>>], fsync: &str) {
    let mut c = Client::connect(addr).await.unwrap();
    for (w, h) in histories.iter().enumerate() {
        let data = c.get_data(format!("w{w}")).await.unwrap();
        let h = h.lock().unwrap();
        let text = String::from_utf8(data.to_vec()).unwrap();
        let (n, pad) = text.split_once(':').unwrap_or(("0", ""));
        let n: u64 = n.parse().unwrap();
        if n > 0 {
            assert_eq!(
                pad.len(),
                100 + (n % 50) as usize,
                "w{w}: value {n} is whole"
            );
        }
        let must = h.acked.last().map_or(0, |&(i, _)| i);
        assert!(
            n >= must,
            "fsync {fsync}: w{w} has {n}, but {must} was acknowledged"
        );
        assert!(
            n <= h.sent,
            "w{w} has {n}, more than was ever sent ({})",
            h.sent
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_fsync_always_loses_no_acknowledged_write() {
    crash_rounds("always", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_fsync_everysec_loses_at_most_the_window() {
    crash_rounds("everysec", 3).await;
}

/// A plugin function's changes under `fsync always`, through kill -9: each
/// call moves one unit between two variables and counts itself, so a call
/// kept in part would break `a + b = 1000` or `n = 1000 - a`. Every
/// acknowledged call is there, and no call is there half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_function_call_whole() {
    let dir = TempDir::new("crash-plugins");
    let plugins = dir.0.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(
        plugins.join("move.lua"),
        r#"sessiond.register("move", function(s, i)
             local a = tonumber(s:get("a") or "1000")
             local n = s:incr("n")
             s:set("a", tostring(a - 1))
             s:set("b", tostring(1000 - (a - 1)))
             s:set("last", i)
             return n
           end)"#,
    )
    .unwrap();
    let data = dir.0.join("data");
    let a = [
        "--data-dir",
        data.to_str().unwrap(),
        "--fsync",
        "always",
        "--plugins-dir",
        plugins.to_str().unwrap(),
    ];
    let mut acked: Vec<u64> = vec![0; WRITERS];
    let mut sent: Vec<u64> = vec![0; WRITERS];
    for round in 0..3u64 {
        let (mut child, port) = start_binary(&a);
        let addr = format!("127.0.0.1:{port}");
        let mut c = Client::connect(&addr).await.unwrap();
        if round > 0 {
            check_moves(&mut c, &acked, &sent).await;
        }
        for w in 0..WRITERS {
            let id = format!("m{w}");
            if !c.exists(&id).await.unwrap() {
                c.create(&id, CreateOptions::default()).await.unwrap();
            }
        }
        let histories: Vec<Arc<Mutex<History>>> = (0..WRITERS).map(|_| Arc::default()).collect();
        let mut tasks = Vec::new();
        for (w, h) in histories.iter().enumerate() {
            let (addr, h) = (addr.clone(), h.clone());
            let from = sent[w];
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(&addr).await.unwrap();
                let id = format!("m{w}");
                for i in from + 1.. {
                    h.lock().unwrap().sent = i;
                    let call = c
                        .call(&["SESSION.PLUGIN", &id, "move", &i.to_string()])
                        .await;
                    if call.is_err() {
                        return;
                    }
                    h.lock().unwrap().acked.push((i, Instant::now()));
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 300 * round)).await;
        signal(&child, "-KILL");
        let _ = child.wait();
        for t in tasks {
            let _ = t.await;
        }
        for (w, h) in histories.iter().enumerate() {
            let h = h.lock().unwrap();
            assert!(!h.acked.is_empty(), "round {round}: m{w} made progress");
            acked[w] = h.acked.last().map_or(acked[w], |&(i, _)| i);
            sent[w] = sent[w].max(h.sent);
        }
    }
    let (mut child, port) = start_binary(&a);
    let mut c = Client::connect(format!("127.0.0.1:{port}")).await.unwrap();
    check_moves(&mut c, &acked, &sent).await;
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// Each `m{w}` holds every call acknowledged (`last` at least `acked`,
/// never past `sent`), and only whole calls: `n` calls moved `n` units.
async fn check_moves(c: &mut Client, acked: &[u64], sent: &[u64]) {
    for w in 0..WRITERS {
        let id = format!("m{w}");
        let (n, a) = (var(c, &id, "n").await, var(c, &id, "a").await);
        let (b, last) = (var(c, &id, "b").await, var(c, &id, "last").await);
        if n == 0 {
            assert_eq!((a, b, last), (0, 0, 0), "m{w}: no call, no change");
            continue;
        }
        assert_eq!(a + b, 1000, "m{w}: a={a} b={b}: a call kept in part");
        assert_eq!(n, 1000 - a, "m{w}: n={n} a={a}: a call kept in part");
        assert!(
            last as u64 >= acked[w],
            "m{w}: call {} was acknowledged, the last kept is {last}",
            acked[w]
        );
        assert!(last as u64 <= sent[w], "m{w}: {last} was never sent");
    }
}

/// Variable `name` of session `id` as a number (absent: 0).
async fn var(c: &mut Client, id: &str, name: &str) -> i64 {
    c.get(id, name)
        .await
        .unwrap()
        .map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap())
}
