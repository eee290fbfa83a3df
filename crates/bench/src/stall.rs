//! `sessiond bench stall`: does a heavy command stall other clients?
//!
//! Loads N sessions (each with a `user_id` variable), then runs every
//! cross-session command once from one connection while another connection
//! PINGs every 10 ms from a thread of its own; each PING is charged to the
//! command that was running when it was sent, and the report gives each
//! command's time and the worst PING waits during it. Then twenty clients
//! pipeline big listings and never read: they must be cut off, and the
//! server's memory come back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::histogram::Histogram;
use crate::wire::{Conn, Frame, Proto};
use crate::BenchError;

/// The `sessiond bench stall` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StallArgs {
    /// Server address (RESP).
    #[arg(long, default_value = "127.0.0.1:6390")]
    pub addr: String,
    /// Sessions to load first (0: use what is there).
    #[arg(long, default_value_t = 1_000_000)]
    pub sessions: usize,
    /// Clients that pipeline listings and never read.
    #[arg(long, default_value_t = 20)]
    pub hogs: usize,
    /// Times each heavy command runs (more PINGs measured during it).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

/// One heavy command's run.
#[derive(Debug)]
pub struct Stalled {
    pub command: String,
    pub took: Duration,
    pub reply: String,
    /// PING waits sent while it ran, µs.
    pub pings: Histogram,
}

/// What the run found.
#[derive(Debug)]
pub struct StallReport {
    pub runs: Vec<Stalled>,
    pub rss_before: u64,
    pub rss_hogs: u64,
    pub rss_after: u64,
    pub hogs_cut: bool,
}

const HEAVY: &[&[&str]] = &[
    &["SESSION.LIST"],
    &["SESSION.LISTVAR", "user_id"],
    &["SESSION.FIND", "user_id", "42"],
    &["SESSION.FIND", "php_only", "x"],
    &[
        "SESSION.FIND",
        "user_id",
        "42",
        "CURSOR",
        "0",
        "COUNT",
        "10000",
    ],
    &[
        "SESSION.LISTVAR",
        "user_id",
        "CURSOR",
        "0",
        "COUNT",
        "10000",
    ],
    &["SESSION.COUNT"],
    &["SESSION.COUNT", "CLASS", "nobody"],
    &["KEYS", "*"],
    &["KEYS", "nomatch*"],
    &["SCAN", "0", "COUNT", "10000"],
    &["SCAN", "0", "MATCH", "nomatch*", "COUNT", "10000"],
    &["SESSION.SCAN", "0", "COUNT", "10000"],
    &["SESSION.SCAN", "0", "COUNT", "10000", "CLASS", "nobody"],
];

/// Runs the stall benchmark against `args.addr`.
pub async fn stall(args: &StallArgs) -> Result<StallReport, BenchError> {
    let addr: SocketAddr = args
        .addr
        .parse()
        .map_err(|e| BenchError::Options(format!("--addr: {e}")))?;
    let mut c = Conn::connect(addr, Proto::Resp).await?;
    load(&mut c, args.sessions).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = ping_thread(addr, stop.clone())?;
    let mut spans = Vec::new();
    let repeat = args.repeat.max(1);
    for cmd in HEAVY {
        let argv: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        let mut runs = Vec::new();
        let mut reply = String::new();
        for _ in 0..repeat {
            c.push_resp(&argv);
            let started = Instant::now();
            let frame = c.call().await?;
            runs.push((started, started.elapsed()));
            reply = summary(&frame);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        spans.push((cmd.join(" "), runs, reply));
    }
    stop.store(true, Ordering::Relaxed);
    let pings = pinger
        .join()
        .map_err(|_| BenchError::Reply("the PING thread failed".into()))??;
    let runs = spans
        .into_iter()
        .map(|(command, runs, reply)| {
            let mut h = Histogram::new();
            for (at, wait) in &pings {
                if runs.iter().any(|(s, took)| at >= s && *at <= *s + *took) {
                    h.record(wait.as_micros() as u64);
                }
            }
            let took = runs.iter().map(|(_, t)| *t).sum::<Duration>() / runs.len() as u32;
            Stalled {
                command,
                took,
                reply,
                pings: h,
            }
        })
        .collect();

    // Clients that ask for big pages and never read them.
    let rss_before = rss(addr).await?;
    let mut hogs = Vec::new();
    for _ in 0..args.hogs {
        let mut t = tokio::net::TcpStream::connect(addr).await?;
        let page = b"*4\r\n$12\r\nSESSION.SCAN\r\n$1\r\n0\r\n$5\r\nCOUNT\r\n$5\r\n10000\r\n";
        t.write_all(&page.repeat(40)).await?;
        hogs.push(t);
    }
    let mut rss_hogs = 0;
    let mut hogs_cut = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_hogs = rss_hogs.max(rss(addr).await?);
        if clients(addr).await? <= 3 {
            hogs_cut = true;
            break;
        }
    }
    drop(hogs);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss(addr).await?;
    Ok(StallReport {
        runs,
        rss_before,
        rss_hogs,
        rss_after,
        hogs_cut,
    })
}

impl StallReport {
    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| command | mean time | reply | PINGs during it | PING p99.9 | PING max |\n| --- | ---: | --- | ---: | ---: | ---: |\n",
        );
        for r in &self.runs {
            s.push_str(&format!(
                "| `{}` | {:.1} ms | {} | {} | {:.1} ms | {:.1} ms |\n",
                r.command,
                r.took.as_secs_f64() * 1e3,
                r.reply,
                r.pings.count(),
                r.pings.quantile(0.999) as f64 / 1e3,
                r.pings.max() as f64 / 1e3,
            ));
        }
        s.push_str(&format!(
            "\nnon-reading clients cut off: {}; RSS before {} MiB, with them {} MiB, after {} MiB\n",
            if self.hogs_cut { "yes" } else { "NO" },
            self.rss_before >> 20,
            self.rss_hogs >> 20,
            self.rss_after >> 20
        ));
        s
    }
}

/// Creates `n` sessions, each with `user_id` = i mod 1000, pipelined.
async fn load(c: &mut Conn, n: usize) -> Result<(), BenchError> {
    const BATCH: usize = 2_000;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        for k in i..end {
            let id = format!("sess{k:09}");
            let user = (k % 1000).to_string();
            c.push_resp(&[b"SESSION.CREATE", id.as_bytes()]);
            c.push_resp(&[b"SESSION.SET", id.as_bytes(), b"user_id", user.as_bytes()]);
        }
        c.send().await?;
        for _ in i..end {
            for _ in 0..2 {
                if let Frame::Error(e) = c.read_frame().await? {
                    return Err(BenchError::Reply(e));
                }
            }
        }
        i = end;
    }
    Ok(())
}

/// PINGs every 10 ms until `stop`: when each was sent and how long it
/// waited. A thread of its own, so the generator's work on big replies
/// never delays it.
#[allow(clippy::type_complexity)]
fn ping_thread(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<Vec<(Instant, Duration)>, BenchError>>, BenchError> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            s.write_all(b"PING\r\n")?;
            s.read_exact(&mut buf)?;
            out.push((at, at.elapsed()));
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(out)
    }))
}

fn summary(f: &Frame) -> String {
    match f {
        Frame::Error(e) => format!("error: {}", e.chars().take(60).collect::<String>()),
        Frame::Array(items) => match items.as_slice() {
            [Frame::Value(_), Frame::Array(page)] => format!("page of {}", page.len()),
            _ => format!("{} items", items.len()),
        },
        Frame::Int(n) => n.to_string(),
        _ => "ok".into(),
    }
}

/// An `INFO` field's number, over a connection of its own (the generator's
/// frames keep only a bulk reply's length).
async fn info_number(addr: SocketAddr, section: &str, field: &str) -> Result<u64, BenchError> {
    use tokio::io::AsyncReadExt;
    let mut t = tokio::net::TcpStream::connect(addr).await?;
    t.write_all(format!("INFO {section}\r\nQUIT\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    t.read_to_string(&mut text).await?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BenchError::Reply(format!("no {field} in INFO")))
}

async fn rss(addr: SocketAddr) -> Result<u64, BenchError> {
    info_number(addr, "memory", "used_memory_rss").await
}

async fn clients(addr: SocketAddr) -> Result<u64, BenchError> {
    info_number(addr, "clients", "connected_clients").await
}
