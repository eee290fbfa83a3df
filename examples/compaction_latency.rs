//! Request latency while a compaction runs, against latency without one.
//!
//! Starts the real server (log storage, `fsync everysec`) in this process
//! with N preloaded sessions of 1 KiB, drives 20 connections of
//! `SESSION.SETDATA` for 12 s, and in the middle compacts (snapshot of all
//! live sessions while the writes go on). Reports the worst and p99.9
//! latency of requests that overlapped the compaction and of those that did
//! not.
//!
//! `cargo run --release --example compaction_latency [N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sessiond_client::Client;
use sessiond_core::{Command, SessionId};
use sessiond_server::{Config, Fsync, Server, Storage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let dir = std::env::temp_dir().join(format!("sessiond-compaction-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        storage: Storage::Log,
        data_dir: dir.clone(),
        fsync: Fsync::Everysec,
        compact_min_bytes: u64::MAX, // only the compaction below
        ..Config::default()
    };
    let server = Server::open(config)?;
    let engine = server.engine().clone();
    let persist = server.persistence().cloned().ok_or("no persistence")?;
    let client = engine.connect();
    let blob = Bytes::from(vec![b'd'; 1024]);
    for i in 0..n {
        let id = SessionId::new(Bytes::from(format!("s{i}")));
        engine.execute(
            &client,
            Command::Create {
                id,
                class: None,
                data: Some(blob.clone()),
                timeout_ms: None,
            },
        )?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(listener, async {
        let _ = stop_rx.await;
    }));

    let start = Instant::now();
    let run_for = Duration::from_secs(12);
    let mut tasks = Vec::new();
    for t in 0..20u64 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut samples = Vec::new();
            let mut state = 0x2545_F491_4F6C_DD1D ^ (t + 1);
            let mut value = vec![b'w'; 1024];
            let mut written = 0u64;
            while start.elapsed() < run_for {
                // A different value every time: an identical rewrite is
                // answered without a log record and would measure nothing.
                written += 1;
                value[..16].copy_from_slice(format!("{t:04}{written:012}").as_bytes());
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = format!("s{}", state % n as u64);
                let t0 = Instant::now();
                c.set_data(&id, &value).await?;
                samples.push((t0.duration_since(start), t0.elapsed()));
            }
            Ok::<_, sessiond_client::Error>(samples)
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let p = Arc::clone(&persist);
    let c0 = start.elapsed();
    let bytes = tokio::task::spawn_blocking(move || p.compact()).await??;
    let c1 = start.elapsed();
    let mut during = Vec::new();
    let mut outside = Vec::new();
    for t in tasks {
        for (at, lat) in t.await?? {
            if at + lat >= c0 && at <= c1 {
                during.push(lat);
            } else {
                outside.push(lat);
            }
        }
    }
    let _ = stop_tx.send(());
    served.await??;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{n} sessions of 1 KiB; compaction wrote {} MiB in {:.2} s while 20 connections wrote",
        bytes >> 20,
        (c1 - c0).as_secs_f64()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9}",
        "requests (µs)", "count", "p99", "p99.9", "max"
    );
    for (name, v) in [
        ("during the compaction", &mut during),
        ("outside it", &mut outside),
    ] {
        v.sort();
        let q = |x: f64| v[((v.len() as f64 - 1.0) * x) as usize].as_secs_f64() * 1e6;
        println!(
            "{name:<26} {:>9} {:>9.0} {:>9.0} {:>9.0}",
            v.len(),
            q(0.99),
            q(0.999),
            q(1.0)
        );
    }
    Ok(())
}
