//! `--workload handoff`: how long a lock takes to pass from a holder on
//! one node to a waiter queued on another.
//!
//! Each pair of connections shares one session: A (on the first `--addr`)
//! holds its lock; B (on the second) sends `SESSION.OPEN … WAIT`, which
//! queues in the server; after `--settle-ms` (time for B's request to be
//! queued), A sends `SESSION.CLOSE`. A hand-off is the time from A's
//! `CLOSE` leaving the generator to B's `OPEN` answering with the lock;
//! then the two swap parts. With one address, both ends are on one
//! server (the single-node figure to compare with).

use std::time::Duration;

use tokio::time::Instant;

use crate::report::Report;
use crate::run::{join, ConnStats, RunArgs};
use crate::wire::{Conn, Frame, Proto};
use crate::BenchError;

/// Runs the hand-off workload: `--conns` / 2 pairs (at least one).
pub(crate) async fn run(args: &RunArgs) -> Result<Report, BenchError> {
    let addrs = args.addrs()?;
    let (a_addr, b_addr) = (addrs[0], addrs[1 % addrs.len()]);
    let pairs = (args.conns / 2).max(1);
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let settle = Duration::from_millis(args.settle_ms);
    let blob = vec![b'x'; args.size];
    let mut tasks = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let a = Conn::connect(a_addr, Proto::Resp).await?;
        let b = Conn::connect(b_addr, Proto::Resp).await?;
        let id = format!("handoff:{}:{p}", args.seed).into_bytes();
        let blob = blob.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = ConnStats::default();
            if let Err(e) = pair(a, b, &id, &blob, settle, warm_end, end, &mut s).await {
                s.first_error = Some(e.to_string());
            }
            s
        }));
    }
    let (all, failed) = join(tasks).await?;
    if all.transactions == 0 {
        return Err(BenchError::Reply(format!(
            "no hand-off was measured; the first error: {}",
            all.first_error.unwrap_or_else(|| "none".into())
        )));
    }
    Ok(Report {
        conns: pairs * 2,
        pipeline: 1,
        rate: None,
        popularity: "one session per pair".into(),
        errors: failed as u64,
        failed_connections: 2 * failed,
        ..all.report(args, Proto::Resp, pairs as u64, failed)
    })
}

/// The lock key of an `OPEN` reply.
fn key_of(f: Frame) -> Result<i64, BenchError> {
    match f {
        Frame::Array(items) => match items.first() {
            Some(Frame::Int(k)) => Ok(*k),
            _ => Err(BenchError::Reply("SESSION.OPEN: no lock key".into())),
        },
        Frame::Error(e) => Err(BenchError::Reply(format!("SESSION.OPEN: {e}"))),
        other => Err(BenchError::Reply(format!("SESSION.OPEN: {other:?}"))),
    }
}

/// One pair's loop until `end`.
#[allow(clippy::too_many_arguments)]
async fn pair(
    mut holder: Conn,
    mut waiter: Conn,
    id: &[u8],
    blob: &[u8],
    settle: Duration,
    warm_end: Instant,
    end: Instant,
    s: &mut ConnStats,
) -> Result<(), BenchError> {
    let open: [&[u8]; 5] = [b"SESSION.OPEN", id, b"WAIT", b"30000", b"CREATE"];
    holder.push_resp(&open);
    let mut key = key_of(holder.call().await?)?;
    while Instant::now() < end {
        waiter.push_resp(&open);
        waiter.send().await?;
        tokio::time::sleep(settle).await;
        let k = key.to_string();
        holder.push_resp(&[b"SESSION.CLOSE", id, k.as_bytes(), b"DATA", blob]);
        let t0 = Instant::now();
        holder.send().await?;
        let granted = key_of(waiter.read_frame().await?)?;
        let t1 = Instant::now();
        match holder.read_frame().await? {
            Frame::Ok => {}
            other => return Err(BenchError::Reply(format!("SESSION.CLOSE: {other:?}"))),
        }
        if granted <= key {
            return Err(BenchError::Reply(format!(
                "fencing keys must rise: {key} then {granted}"
            )));
        }
        if t0 >= warm_end && t1 <= end {
            s.latency.record((t1 - t0).as_nanos() as u64);
            s.transactions += 1;
            s.requests += 2;
        }
        key = granted;
        std::mem::swap(&mut holder, &mut waiter);
    }
    let k = key.to_string();
    holder.push_resp(&[b"SESSION.CLOSE", id, k.as_bytes()]);
    holder.call().await?;
    Ok(())
}
