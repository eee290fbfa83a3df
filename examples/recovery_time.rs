//! Recovery time and data-directory size for N sessions of SIZE bytes
//! (defaults: 1,000,000 × 1 KiB), through the real persistence code on
//! real files.
//!
//! 1. Writes N sessions through the engine with the log installed
//!    (`fsync no`), then closes the directory: the log holds N records.
//! 2. Recovers it into a fresh engine from the log alone, timed.
//! 3. Compacts (snapshot + fresh log), closes, recovers again, timed.
//!
//! `cargo run --release --example recovery_time [N] [SIZE]`

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sessiond_core::{Command, Engine, EngineConfig, SessionId, SystemClock};
use sessiond_server::{CompactionPolicy, Fsync, Persistence};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(EngineConfig::default(), Arc::new(SystemClock)))
}

/// Recovers `dir` into a fresh engine, timed.
fn recover(
    dir: &std::path::Path,
    policy: CompactionPolicy,
    from: &str,
) -> Result<Arc<Persistence>, Box<dyn std::error::Error>> {
    let e = engine();
    let t = Instant::now();
    let (p, r) = Persistence::open(dir, Fsync::No, policy, &e)?;
    println!(
        "recovered {} sessions from {from} in {:.2} s",
        r.live_sessions,
        t.elapsed().as_secs_f64()
    );
    Ok(p)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("sessiond-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Never compact on its own: this program decides when.
    let manual = CompactionPolicy {
        min_log_bytes: u64::MAX,
        ratio: 1,
    };

    let e = engine();
    let (p, _) = Persistence::open(&dir, Fsync::No, manual, &e)?;
    let client = e.connect();
    let blob = Bytes::from(vec![b'd'; size]);
    let t = Instant::now();
    for i in 0..n {
        let id = SessionId::new(Bytes::from(format!("session-{i:010}")));
        e.execute(
            &client,
            Command::Create {
                id,
                class: None,
                data: Some(blob.clone()),
                timeout_ms: None,
            },
        )?;
    }
    p.shutdown();
    let live = (n * (size + 18)) as u64;
    println!(
        "wrote {n} sessions of {size} bytes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let size_line = |what: &str| {
        println!(
            "{what}: {} MiB on disk ({:.2}x live data)",
            dir_bytes(&dir) >> 20,
            dir_bytes(&dir) as f64 / live as f64
        )
    };
    size_line("log only");
    drop((p, e));

    let p = recover(&dir, manual, "the log")?;
    let t = Instant::now();
    p.compact()?;
    println!("compaction took {:.2} s", t.elapsed().as_secs_f64());
    p.shutdown();
    size_line("after compaction");
    drop(p);

    recover(&dir, manual, "the snapshot")?.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
