//! Measures lock hand-off: how long from the moment a holder sends `UNLOCK`
//! until a client queued on `SESSION.LOCK … WAIT` has its key.
//!
//! Starts a real server on a loopback port in this process, then for each
//! round: A takes the lock, B queues for it, A unlocks; B's latency is
//! measured from just before A's `UNLOCK` is written to just after B's reply
//! is read. A `PING` round trip is measured the same way for scale.
//!
//! `cargo run --release --example lock_handoff [rounds]`

use std::time::{Duration, Instant};

use sessiond_client::{Client, CreateOptions, LockOptions};
use sessiond_server::{Config, Server, Storage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        storage: Storage::Memory,
        ..Config::default()
    };
    let server = tokio::spawn(Server::open(config)?.run(listener, async {
        let _ = stop_rx.await;
    }));

    let mut a = Client::connect(addr).await?;
    let mut watch = Client::connect(addr).await?;
    let mut b = Some(Client::connect(addr).await?);
    a.create("handoff", CreateOptions::default()).await?;

    let mut handoff = Vec::with_capacity(rounds);
    let mut ping = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let key = a.lock("handoff", LockOptions::default()).await?;
        let mut waiter = b.take().ok_or("waiter client missing")?;
        let queued = tokio::spawn(async move {
            let got = waiter
                .lock(
                    "handoff",
                    LockOptions {
                        wait_ms: 10_000,
                        ..Default::default()
                    },
                )
                .await;
            (Instant::now(), got, waiter)
        });
        // Make sure B is queued before A lets go.
        while watch.info("handoff").await?.lock_waiters != 1 {
            tokio::task::yield_now().await;
        }
        let t0 = Instant::now();
        a.unlock("handoff", key).await?;
        let (t1, got, mut waiter) = queued.await?;
        let b_key = got?;
        handoff.push(t1.duration_since(t0));
        waiter.unlock("handoff", b_key).await?;
        b = Some(waiter);

        let t0 = Instant::now();
        a.ping().await?;
        ping.push(t0.elapsed());
    }
    let _ = stop_tx.send(());
    server.await??;

    println!("lock hand-off over loopback TCP, {rounds} rounds (µs)");
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8}",
        "", "p50", "p99", "p99.9", "max"
    );
    report("UNLOCK sent -> waiter has key", &mut handoff);
    report("PING round trip", &mut ping);
    Ok(())
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    println!(
        "{name:<28} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}
