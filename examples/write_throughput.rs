//! Session-write throughput against sessiond or Redis, for the durability
//! benchmarks (`bench/durability.sh`).
//!
//! Each of `--conns` connections writes a `--size`-byte blob to a random
//! session of `--sessions` in a closed loop for `--secs` seconds: against
//! sessiond `SESSION.SETDATA id blob`, against Redis `SET id blob` (what a
//! session write is for each). Prints one line of JSON: writes/s and
//! latency percentiles in µs.
//!
//! `cargo run --release --example write_throughput -- sessiond 127.0.0.1:6390`

use std::time::{Duration, Instant};

use sessiond_client::Client;

struct Opts {
    target: String,
    addr: String,
    conns: usize,
    secs: u64,
    size: usize,
    sessions: usize,
}

fn opts() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let target = args.next().ok_or("usage: write_throughput sessiond|redis ADDR [--conns N] [--secs N] [--size N] [--sessions N]")?;
    let addr = args.next().ok_or("missing ADDR")?;
    let mut o = Opts {
        target,
        addr,
        conns: 50,
        secs: 10,
        size: 1024,
        sessions: 10_000,
    };
    while let Some(flag) = args.next() {
        let v: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--conns" => o.conns = v,
            "--secs" => o.secs = v as u64,
            "--size" => o.size = v,
            "--sessions" => o.sessions = v,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.target != "sessiond" && o.target != "redis" {
        return Err("target is sessiond or redis".into());
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = opts()?;
    let sessiond = o.target == "sessiond";
    if sessiond {
        let mut c = Client::connect(&o.addr).await?;
        for i in 0..o.sessions {
            let id = format!("bench-{i}");
            if !c.exists(&id).await? {
                c.call(&["SESSION.CREATE", &id]).await?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(o.secs);
    let mut tasks = Vec::new();
    for t in 0..o.conns {
        let (addr, size, sessions) = (o.addr.clone(), o.size, o.sessions);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await?;
            let mut lat = Vec::with_capacity(100_000);
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
            let blob = vec![b's'; size];
            while Instant::now() < deadline {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = format!("bench-{}", state % sessions as u64);
                let cmd: [&[u8]; 3] = if sessiond {
                    [b"SESSION.SETDATA", id.as_bytes(), &blob]
                } else {
                    [b"SET", id.as_bytes(), &blob]
                };
                let t0 = Instant::now();
                c.call(&cmd).await?;
                lat.push(t0.elapsed());
            }
            Ok::<_, sessiond_client::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    let pct = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{{\"target\":\"{}\",\"writes_per_s\":{:.0},\"p50_us\":{:.0},\"p99_us\":{:.0},\"p999_us\":{:.0}}}",
        o.target,
        all.len() as f64 / o.secs as f64,
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}
