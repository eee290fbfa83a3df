//! The driver: preload, connections, warm-up, the measured window, and the
//! merge of every connection's counts into one [`Report`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tokio::time::Instant;

use crate::histogram::Histogram;
use crate::keys::{KeyChooser, Popularity};
use crate::report::{Latency, Report};
use crate::wire::{Conn, Proto};
use crate::workload::{Cycle, Outcome, Polling, RateLimit, Worker, Workload};
use crate::BenchError;

/// Everything a run is made of (the `sessiond bench run` flags).
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RunArgs {
    /// What to run.
    #[arg(long, value_enum, default_value = "raw")]
    pub workload: Workload,
    /// Server address; several, comma-separated (cluster nodes), share
    /// the connections out in turn.
    #[arg(long, default_value = "127.0.0.1:6390")]
    pub addr: String,
    /// Protocol for `raw` and `load` (default resp) and for the memcached
    /// cycle (default memcache-binary, as php-memcached).
    #[arg(long, value_enum)]
    pub proto: Option<Proto>,
    /// The cycle `contend` repeats.
    #[arg(long, value_enum, default_value = "native")]
    pub cycle: Cycle,
    /// A name for the system under test, carried into the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    pub conns: usize,
    /// Requests per write on each connection (`raw` only).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Open loop: transactions per second in all, at evenly spaced times
    /// (latency counts from when each was due). Default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seed of the key choice (each connection derives its own).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of sessions (default 10,000; 5 for `contend`).
    #[arg(long)]
    pub keys: Option<u64>,
    /// Which sessions are hot: uniform, zipf, zipf:S.
    #[arg(long, default_value = "uniform")]
    pub popularity: String,
    /// Session data size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// What the data looks like: opaque letters, or a realistic PHP or
    /// express (JSON) session of `--size` bytes, stored with PHP's timeout.
    #[arg(long, value_enum, default_value = "opaque")]
    pub data: crate::data::Shape,
    /// Reads:writes of `raw`.
    #[arg(long, default_value = "1:1")]
    pub mix: String,
    /// Lock polling: first sleep between tries, in µs (default the
    /// imitated extension's: phpredis 20000, php-memcached 150000).
    #[arg(long)]
    pub lock_wait_us: Option<u64>,
    /// Lock polling: longest sleep, in µs (php-memcached doubles up to it).
    #[arg(long)]
    pub lock_wait_max_us: Option<u64>,
    /// Lock polling: retries (default phpredis 100, php-memcached 5).
    #[arg(long)]
    pub lock_retries: Option<u32>,
    /// Do not write every session before the run (reads then miss).
    #[arg(long)]
    pub no_preload: bool,
    /// `handoff`: how long the waiter's request is given to queue before
    /// the holder releases, ms.
    #[arg(long, default_value_t = 20)]
    pub settle_ms: u64,
    /// `for-update`, `write-through`: the database
    /// (`postgres://user@host:port/db` or `mysql://user@host:port/db`);
    /// the run makes its own table there (`sessiond_bench_for_update`,
    /// `sessiond_bench_write_through`), dropping one of that name left by
    /// an earlier run.
    #[arg(long)]
    pub database_url: Option<String>,
    /// `for-update`, `write-through`: commit asynchronously (PostgreSQL:
    /// `synchronous_commit = off`; MySQL has no such session setting, so
    /// the run checks that the server's `innodb_flush_log_at_trx_commit`
    /// is not 1).
    #[arg(long)]
    pub async_commit: bool,
    /// Count lost updates: each transaction writes back the count it read
    /// plus one, and after the run every session is read; acknowledged
    /// writes missing from the sum were lost. The cycles and the SQL
    /// workloads, with opaque data of 16 bytes or more.
    #[arg(long)]
    pub count: bool,
}

impl RunArgs {
    /// The cycle a workload runs, if it is one.
    fn cycle_kind(&self) -> Option<Cycle> {
        match self.workload {
            Workload::CycleRedis => Some(Cycle::Redis),
            Workload::CycleMemcache => Some(Cycle::Memcache),
            Workload::CycleNative => Some(Cycle::Native),
            Workload::RateLimitPlugin => Some(Cycle::RateLimit(RateLimit::Plugin)),
            Workload::RateLimitCommands => Some(Cycle::RateLimit(RateLimit::Commands)),
            Workload::RateLimitScript => Some(Cycle::RateLimit(RateLimit::Script)),
            Workload::RateLimitRedisCommands => Some(Cycle::RateLimit(RateLimit::RedisCommands)),
            Workload::Contend => Some(self.cycle),
            Workload::Raw
            | Workload::Load
            | Workload::Handoff
            | Workload::ForUpdate
            | Workload::WriteThrough => None,
        }
    }

    fn resolved_proto(&self) -> Result<Proto, BenchError> {
        let bad = |why: &str| Err(BenchError::Options(why.to_string()));
        match (self.cycle_kind(), self.proto) {
            (None, p) => Ok(p.unwrap_or(Proto::Resp)),
            (Some(Cycle::Memcache), None) => Ok(Proto::MemcacheBinary),
            (Some(Cycle::Memcache), Some(p @ (Proto::MemcacheBinary | Proto::MemcacheText))) => {
                Ok(p)
            }
            (Some(Cycle::Memcache), Some(_)) => {
                bad("the memcached cycle speaks memcache-text or memcache-binary")
            }
            (Some(_), None | Some(Proto::Resp)) => Ok(Proto::Resp),
            (Some(_), Some(_)) => bad("the Redis and native cycles speak resp"),
        }
    }

    fn polling(&self) -> Polling {
        let base = match self.cycle_kind() {
            Some(Cycle::Memcache) => Polling::PHP_MEMCACHED,
            _ => Polling::PHPREDIS,
        };
        let wait_min_us = self.lock_wait_us.unwrap_or(base.wait_min_us);
        Polling {
            wait_min_us,
            wait_max_us: self
                .lock_wait_max_us
                .unwrap_or(if self.lock_wait_us.is_some() {
                    wait_min_us
                } else {
                    base.wait_max_us
                }),
            retries: self.lock_retries.unwrap_or(base.retries),
        }
    }

    fn keys(&self) -> u64 {
        self.keys.unwrap_or(if self.workload == Workload::Contend {
            5
        } else {
            10_000
        })
    }

    fn mix(&self) -> Result<(u32, u32), BenchError> {
        let bad = || BenchError::Options(format!("--mix is READS:WRITES, not {:?}", self.mix));
        let (r, w) = self.mix.split_once(':').ok_or_else(bad)?;
        let (r, w): (u32, u32) = (r.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
        if r + w == 0 {
            return Err(bad());
        }
        Ok((r, w))
    }

    /// Every address of `--addr`, in order.
    pub(crate) fn addrs(&self) -> Result<Vec<SocketAddr>, BenchError> {
        let mut all = Vec::new();
        for a in self
            .addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let found = a
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| BenchError::Options(format!("{a} resolves to no address")))?;
            all.push(found);
        }
        if all.is_empty() {
            return Err(BenchError::Options("--addr names no address".into()));
        }
        Ok(all)
    }
}

/// One connection's counts.
#[derive(Default)]
pub(crate) struct ConnStats {
    pub(crate) latency: Histogram,
    pub(crate) lock_wait: Histogram,
    pub(crate) transactions: u64,
    pub(crate) requests: u64,
    pub(crate) lock_failures: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Writes the server acknowledged, over the whole run (warm-up and
    /// the last transactions included): what `--count` checks against.
    pub(crate) acked: u64,
}

impl ConnStats {
    /// A report of these counts for `args`, as measured over `proto`
    /// (`failed` connections ended on an error); the caller sets what
    /// its workload does differently.
    pub(crate) fn report(self, args: &RunArgs, proto: Proto, keys: u64, failed: usize) -> Report {
        Report {
            workload: args.workload,
            cycle: None,
            proto,
            label: args.label.clone(),
            addr: args.addr.clone(),
            conns: args.conns,
            pipeline: args.pipeline,
            rate: args.rate,
            size: args.size,
            keys,
            popularity: args.popularity.clone(),
            seconds: args.duration,
            transactions: self.transactions,
            requests: self.requests,
            tx_per_s: self.transactions as f64 / args.duration,
            req_per_s: self.requests as f64 / args.duration,
            latency_us: Latency::of(&self.latency),
            lock_wait_us: None,
            lock_failures: self.lock_failures,
            errors: self.errors,
            failed_connections: failed,
            first_error: self.first_error,
            polling: None,
            acked_writes: None,
            lost_updates: None,
        }
    }
}

/// Every task's counts merged, and how many tasks ended on an error.
pub(crate) async fn join(
    tasks: Vec<tokio::task::JoinHandle<ConnStats>>,
) -> Result<(ConnStats, usize), BenchError> {
    let mut all = ConnStats::default();
    let mut failed = 0;
    for t in tasks {
        let s = t
            .await
            .map_err(|e| BenchError::Io(std::io::Error::other(e.to_string())))?;
        all.latency.merge(&s.latency);
        all.lock_wait.merge(&s.lock_wait);
        all.transactions += s.transactions;
        all.requests += s.requests;
        all.lock_failures += s.lock_failures;
        all.errors += s.errors;
        all.acked += s.acked;
        if s.first_error.is_some() {
            failed += 1;
            all.first_error = all.first_error.or(s.first_error);
        }
    }
    Ok((all, failed))
}

/// Runs the workload and reports it.
pub async fn run(args: &RunArgs) -> Result<Report, BenchError> {
    if args.workload == Workload::Handoff {
        return crate::handoff::run(args).await;
    }
    if args.count && (args.data != crate::data::Shape::Opaque || args.size < 16) {
        return Err(BenchError::Options(
            "--count needs opaque data of 16 bytes or more".into(),
        ));
    }
    if matches!(args.workload, Workload::ForUpdate | Workload::WriteThrough) {
        return crate::sql::run(args).await;
    }
    if args.count
        && !matches!(
            args.cycle_kind(),
            Some(Cycle::Redis | Cycle::Memcache | Cycle::Native)
        )
    {
        return Err(BenchError::Options(
            "--count applies to the cycles and the SQL workloads".into(),
        ));
    }
    let proto = args.resolved_proto()?;
    let addrs = args.addrs()?;
    let addr = addrs[0];
    let popularity: Popularity = args.popularity.parse().map_err(BenchError::Options)?;
    let mix = args.mix()?;
    let cycle = args.cycle_kind();
    if args.conns == 0 || args.pipeline == 0 {
        return Err(BenchError::Options(
            "--conns and --pipeline must be at least 1".into(),
        ));
    }
    if args.pipeline > 1 && args.workload != Workload::Raw && args.workload != Workload::Load {
        return Err(BenchError::Options(
            "--pipeline applies to raw and load only (a cycle waits for each reply)".into(),
        ));
    }
    if proto == Proto::Echo && args.workload != Workload::Raw {
        return Err(BenchError::Options(
            "the echo ceiling runs the raw workload only".into(),
        ));
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        return Err(BenchError::Options(
            "--duration must be positive, --warmup not negative".into(),
        ));
    }
    let keys = KeyChooser::new(args.keys(), popularity);
    let polling = args.polling();
    let n_keys = args.keys();

    // The rate-limit keys start absent, as a rate limiter's do (the
    // sessions of the plugin and native ways are loaded: they need one).
    let absent = matches!(
        cycle,
        Some(Cycle::RateLimit(
            RateLimit::Script | RateLimit::RedisCommands
        ))
    );
    if args.workload == Workload::Load || (!args.no_preload && !absent && proto != Proto::Echo) {
        let started = Instant::now();
        preload(args, addr, proto, cycle, n_keys).await?;
        if args.workload == Workload::Load {
            let secs = started.elapsed().as_secs_f64();
            return Ok(Report::load(args, proto, n_keys, secs));
        }
    }

    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.conns as f64 / r.max(1e-9)));
    let mut tasks = Vec::with_capacity(args.conns);
    for n in 0..args.conns {
        let conn = Conn::connect(addrs[n % addrs.len()], proto).await?;
        let seed = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n as u64 + 1);
        let worker = Worker::new(conn, seed, keys.clone(), args.size, mix, polling, n)
            .shaped(args.data, args.size, n)
            .counting(args.count);
        let depth = args.pipeline;
        // Open loop: connections start staggered across one interval.
        let first = interval.map(|i| start + i.mul_f64(n as f64 / args.conns as f64));
        tasks.push(tokio::spawn(drive(
            worker, cycle, depth, first, interval, warm_end, end,
        )));
    }
    let (all, closed) = join(tasks).await?;
    if closed == args.conns {
        return Err(BenchError::Reply(format!(
            "every connection failed; the first: {}",
            all.first_error.unwrap_or_default()
        )));
    }
    let lock_wait = cycle.map(|_| Latency::of(&all.lock_wait));
    let (acked_writes, lost_updates) = match cycle {
        Some(c) if args.count => {
            let held = count_all(addr, proto, c, n_keys).await?;
            (Some(all.acked), Some(all.acked as i64 - held as i64))
        }
        _ => (None, None),
    };
    Ok(Report {
        cycle,
        lock_wait_us: lock_wait,
        acked_writes,
        lost_updates,
        polling: matches!(cycle, Some(Cycle::Redis | Cycle::Memcache)).then_some(polling),
        ..all.report(args, proto, n_keys, closed)
    })
}

/// Writes every session once over a few connections, 64 per write.
async fn preload(
    args: &RunArgs,
    addr: SocketAddr,
    proto: Proto,
    cycle: Option<Cycle>,
    n_keys: u64,
) -> Result<(), BenchError> {
    let loaders = args.conns.clamp(1, 4) as u64;
    let per = n_keys.div_ceil(loaders);
    let mut tasks = Vec::new();
    for l in 0..loaders {
        let conn = Conn::connect(addr, proto).await?;
        let mut w = Worker::new(
            conn,
            0,
            KeyChooser::new(1, Popularity::Uniform),
            args.size,
            (1, 1),
            Polling::PHPREDIS,
            l as usize,
        )
        .shaped(args.data, args.size, l as usize)
        .counting(args.count);
        let (from, to) = (l * per, ((l + 1) * per).min(n_keys));
        tasks.push(tokio::spawn(
            async move { w.load(from, to, 64, cycle).await },
        ));
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Io(std::io::Error::other(e.to_string())))??;
    }
    Ok(())
}

/// The sum of every session's count, read as `cycle` reads (`--count`).
async fn count_all(
    addr: SocketAddr,
    proto: Proto,
    cycle: Cycle,
    n_keys: u64,
) -> Result<u64, BenchError> {
    let conn = Conn::connect(addr, proto).await?;
    let one = KeyChooser::new(1, Popularity::Uniform);
    let mut w = Worker::new(conn, 0, one, 16, (1, 1), Polling::PHPREDIS, 0).counting(true);
    let mut sum = 0u64;
    for n in 0..n_keys {
        sum += w.count_of(n, cycle).await?;
    }
    Ok(sum)
}

/// One connection's loop until `end`; counts only what starts after
/// `warm_end` and finishes by `end`.
async fn drive(
    mut w: Worker,
    cycle: Option<Cycle>,
    depth: usize,
    mut due: Option<Instant>,
    interval: Option<Duration>,
    warm_end: Instant,
    end: Instant,
) -> ConnStats {
    let mut s = ConnStats::default();
    loop {
        let t0 = match (due, interval) {
            (Some(d), Some(i)) => {
                if d >= end {
                    break;
                }
                tokio::time::sleep_until(d).await;
                due = Some(d + i);
                d // latency counts from when it was due
            }
            _ => Instant::now(),
        };
        if t0 >= end {
            break;
        }
        let result = match cycle {
            None => w.raw_batch(depth).await.map(|errors| {
                (
                    Outcome::Done {
                        lock_wait: None,
                        requests: depth as u32,
                    },
                    errors,
                )
            }),
            Some(c) => w.cycle(c).await.map(|o| (o, 0)),
        };
        let t1 = Instant::now();
        let counted = t0 >= warm_end && t1 <= end;
        if let Ok((Outcome::Done { .. }, _)) = &result {
            s.acked += depth as u64;
        }
        match result {
            Ok((outcome, errors)) if counted => {
                s.errors += u64::from(errors);
                match outcome {
                    Outcome::Done {
                        lock_wait,
                        requests,
                    } => {
                        let ns = (t1 - t0).as_nanos() as u64;
                        for _ in 0..depth {
                            s.latency.record(ns);
                        }
                        if let Some(lw) = lock_wait {
                            s.lock_wait.record(lw.as_nanos() as u64);
                        }
                        s.transactions += depth as u64;
                        s.requests += u64::from(requests);
                    }
                    Outcome::LockFailed { requests } => {
                        s.lock_failures += 1;
                        s.requests += u64::from(requests);
                    }
                }
            }
            Ok(_) => {}
            Err(BenchError::Reply(e)) => {
                // The server answered wrongly: count it and end this
                // connection, whose replies may now be out of step.
                if counted {
                    s.errors += 1;
                }
                s.first_error.get_or_insert(e);
                break;
            }
            Err(e) => {
                s.first_error = Some(e.to_string());
                break;
            }
        }
    }
    s
}
