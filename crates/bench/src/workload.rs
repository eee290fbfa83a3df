//! What one transaction sends: the request sequences of each workload,
//! written as the clients they imitate send them, and checked reply by reply
//! so a server that answers wrongly fails the run instead of looking fast.

use std::time::Duration;

use tokio::time::Instant;

use crate::keys::{KeyChooser, Rng};

/// SHA1 of `script`, hex, as `SCRIPT LOAD` answers it.
fn sha1_hex(script: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(script)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
use crate::wire::{Conn, Frame, Proto};
use crate::BenchError;

/// Which load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// GET/SET of session blobs at `--mix` reads:writes (pipelined with
    /// `--pipeline`). RESP keys are phpredis's, memcached keys
    /// php-memcached's, so every server sees the same names.
    Raw,
    /// phpredis's requests for one PHP request with locking on: `SET
    /// <key>_LOCK secret NX PX 30000` (polled every `--lock-wait-us`),
    /// `GET`, `SETEX <key> 1440 blob`, `EVALSHA` of its unlock script
    /// (`EVAL` on NOSCRIPT).
    CycleRedis,
    /// php-memcached's with locking on: `add lock.<id>` (polled), `get`
    /// (GETK on binary), `set`, `delete lock.<id>`.
    CycleMemcache,
    /// sessiond's own: `SESSION.OPEN id WAIT 30000 CREATE` (blocking in the
    /// server's lock queue), then `SESSION.CLOSE id key DATA blob`.
    CycleNative,
    /// The `--cycle` workload over few sessions (`--keys`, default 5):
    /// AJAX bursts fighting over one user's session.
    Contend,
    /// Write every session once (pipelined), report how long it took.
    Load,
    /// A lock passed between pairs of connections, each end on its own
    /// server (`--addr a,b`: two cluster nodes): the time from the
    /// holder's `SESSION.CLOSE` to the queued waiter's grant.
    Handoff,
    /// The SQL baseline, straight to the database (`--database-url`,
    /// PostgreSQL or MySQL/MariaDB): Symfony `PdoSessionHandler`'s locked
    /// cycle, a transaction holding `SELECT … FOR UPDATE` per request.
    #[value(alias = "pg-for-update")]
    ForUpdate,
    /// A server-side function's cost (docs/plugins.md): the per-session
    /// rate limit of docs/plugins/rate_limit.lua as one `SESSION.PLUGIN`
    /// call (the server needs `--plugins-dir docs/plugins`).
    RateLimitPlugin,
    /// The same logic as separate native commands, as a client without
    /// functions does it: `SESSION.GET` the window's start and count,
    /// then `SESSION.SET` both (4 round trips, not atomic).
    RateLimitCommands,
    /// The same logic as a Redis script on two keys (`EVALSHA`, `EVAL` on
    /// NOSCRIPT): runs unchanged on sessiond and on Redis.
    RateLimitScript,
    /// The script's logic as separate Redis commands: `GET`, `GET`, `SET`,
    /// `SET` (4 round trips, not atomic).
    RateLimitRedisCommands,
    /// The seeds' "memcache + MySQL" handler: read from memcached
    /// (`--addr`, text protocol), on a miss from the database and back
    /// into memcached; write to memcached, then `REPLACE INTO` the
    /// database (`--database-url`). No lock: run it with `--count` to see
    /// the updates it loses.
    WriteThrough,
}

/// The per-request sequence a `contend` run repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cycle {
    Redis,
    Memcache,
    Native,
    /// The rate-limit workloads (`rate-limit-*`), by how they run it.
    RateLimit(RateLimit),
}

/// How a rate-limit transaction runs the same logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateLimit {
    Plugin,
    Commands,
    Script,
    RedisCommands,
}

impl clap::ValueEnum for Cycle {
    fn value_variants<'a>() -> &'a [Self] {
        &[Cycle::Redis, Cycle::Memcache, Cycle::Native]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            Cycle::Redis => Some(clap::builder::PossibleValue::new("redis")),
            Cycle::Memcache => Some(clap::builder::PossibleValue::new("memcache")),
            Cycle::Native => Some(clap::builder::PossibleValue::new("native")),
            Cycle::RateLimit(_) => None,
        }
    }
}

/// The rate-limit script: at most ARGV[1] calls in each ARGV[2] seconds,
/// ARGV[3] the time now (s); KEYS: the window's start and its count. The
/// same logic as docs/plugins/rate_limit.lua, on two keys.
pub const RATE_LIMIT_LUA: &[u8] =
    b"local limit, window, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = tonumber(redis.call('GET', KEYS[1])) or 0
local count = tonumber(redis.call('GET', KEYS[2])) or 0
if now - start >= window then start, count = now, 0 end
if count >= limit then return -1 end
redis.call('SET', KEYS[1], start)
redis.call('SET', KEYS[2], count + 1)
return limit - count - 1";

/// Calls a rate-limit transaction allows: more than a run makes, so every
/// call does the whole read-modify-write.
const RATE_LIMIT: &[u8] = b"1000000000";
const RATE_WINDOW: &[u8] = b"60";

/// phpredis's key prefix (`PHPREDIS_SESSION:`) and php-memcached's
/// (`memc.sess.key.`): the names the real handlers use.
pub const REDIS_PREFIX: &[u8] = b"PHPREDIS_SESSION:";
pub const MEMCACHE_PREFIX: &[u8] = b"memc.sess.key.";
/// PHP's default `session.gc_maxlifetime`, which both handlers send.
pub const SESSION_TTL: u32 = 1440;
/// Lock lifetime: both handlers use `max_execution_time` (30 s under FPM).
pub const LOCK_TTL_S: u32 = 30;
/// phpredis's unlock script and its SHA1 (the exact text phpredis sends).
pub use sessiond_proto::redis::{UNLOCK_LUA, UNLOCK_SHA};

/// How a client that polls for a lock polls.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Polling {
    /// First sleep between attempts.
    pub wait_min_us: u64,
    /// Sleeps double up to this (php-memcached); phpredis's stay fixed.
    pub wait_max_us: u64,
    /// Attempts after the first.
    pub retries: u32,
}

impl Polling {
    /// phpredis's defaults: 20 ms between tries, 100 retries.
    pub const PHPREDIS: Polling = Polling {
        wait_min_us: 20_000,
        wait_max_us: 20_000,
        retries: 100,
    };
    /// php-memcached's defaults: 150 ms, 5 retries.
    pub const PHP_MEMCACHED: Polling = Polling {
        wait_min_us: 150_000,
        wait_max_us: 150_000,
        retries: 5,
    };
}

/// The id of session `n`: 26 characters of `[0-9a-z]` that look random,
/// as PHP's ids do (a server keeping ids in order must not be flattered by
/// ids sharing long prefixes). The first 13 characters encode a bijection
/// of `n`, so ids of different sessions never collide.
pub fn session_id(n: u64, out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    out.clear();
    for half in [n, !n] {
        let mut v = crate::keys::Rng::new(half).next_u64();
        for _ in 0..13 {
            out.push(ALPHABET[(v % 36) as usize]);
            v /= 36;
        }
    }
}

/// How one transaction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done {
        /// From the first lock request to holding the lock (cycles only).
        lock_wait: Option<Duration>,
        /// Round trips it took.
        requests: u32,
    },
    /// The lock was not had within the client's retries (what PHP reports
    /// as "Failed to read session data").
    LockFailed { requests: u32 },
}

/// One connection's generator: which sessions, what value, which client.
pub struct Worker {
    pub conn: Conn,
    rng: Rng,
    keys: KeyChooser,
    value: Vec<u8>,
    /// Where in `value` each write stamps its count (16 hex digits).
    stamps: Vec<usize>,
    /// Stores with PHP's timeout (`SETEX`), as phpredis does, not `SET`.
    with_ttl: bool,
    secret: Vec<u8>,
    reads: u32,
    writes: u32,
    polling: Polling,
    id: Vec<u8>,
    key: Vec<u8>,
    lock: Vec<u8>,
    /// Writes so far, stamped into the value.
    stamp: u64,
    /// Counting (`--count`): each write stamps the count its read found
    /// plus one, instead of `stamp`.
    count: Option<u64>,
}

/// The count a counting run keeps in a session: its first 16 bytes, hex
/// (a missing session, or data without one, counts 0).
pub fn count_in(data: &[u8]) -> u64 {
    data.get(..16)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// Writes `n` as the count at the start of `data` (16 hex digits).
pub fn put_count(data: &mut [u8], mut n: u64) {
    let end = data.len().min(16);
    for b in data[..end].iter_mut().rev() {
        *b = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
    }
}

fn unexpected(what: &str, f: &Frame) -> BenchError {
    match f {
        Frame::Error(e) => BenchError::Reply(format!("{what}: {e}")),
        other => BenchError::Reply(format!("{what}: unexpected reply {other:?}")),
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: Conn,
        seed: u64,
        keys: KeyChooser,
        size: usize,
        (reads, writes): (u32, u32),
        polling: Polling,
        n: usize,
    ) -> Self {
        // Values differ per connection, so a server cannot dedupe them.
        let (value, stamps) = crate::data::build(crate::data::Shape::Opaque, size, n);
        Self {
            conn,
            rng: Rng::new(seed),
            keys,
            value,
            stamps,
            with_ttl: false,
            secret: format!("bench-host|{n}").into_bytes(),
            reads,
            writes,
            polling,
            id: Vec::new(),
            key: Vec::new(),
            lock: Vec::new(),
            stamp: (n as u64) << 40,
            count: None,
        }
    }

    /// Counts (`--count`): every read's count is kept, and the next write
    /// carries it plus one (a load writes 0). Opaque data only.
    pub fn counting(mut self, on: bool) -> Self {
        if on {
            self.count = Some(0);
            self.conn.kept = Some(Vec::new());
        }
        self
    }

    /// After a read: the next write carries the count it found plus one.
    fn counted_read(&mut self) {
        if let (Some(c), Some(kept)) = (&mut self.count, &self.conn.kept) {
            *c = count_in(kept) + 1;
        }
    }

    /// The count session `n` holds now, read as `cycle` reads it (the
    /// native cycle with `SESSION.GETDATA`). Needs [`Worker::counting`].
    pub async fn count_of(&mut self, n: u64, cycle: Cycle) -> Result<u64, BenchError> {
        session_id(n, &mut self.id);
        self.names(Some(cycle));
        match cycle {
            Cycle::Native => self.conn.push_resp(&[b"SESSION.GETDATA", &self.id]),
            _ => self.push_get(),
        }
        match self.conn.call().await? {
            Frame::Value(_) | Frame::Miss => {}
            Frame::Error(e) if e.starts_with("NOSESSION") => return Ok(0),
            f => return Err(unexpected("reading the count", &f)),
        }
        Ok(self.conn.kept.as_deref().map_or(0, count_in))
    }

    /// Writes data of `shape` (`size` bytes) instead of letters; a shaped
    /// store carries PHP's timeout, as the handlers send it.
    pub fn shaped(mut self, shape: crate::data::Shape, size: usize, n: usize) -> Self {
        if shape != crate::data::Shape::Opaque {
            (self.value, self.stamps) = crate::data::build(shape, size, n);
            self.with_ttl = true;
        }
        self
    }

    /// Chooses the next session and builds its names for `proto`.
    fn choose(&mut self, cycle: Option<Cycle>) {
        let n = self.keys.pick(&mut self.rng);
        session_id(n, &mut self.id);
        self.names(cycle);
    }

    fn names(&mut self, cycle: Option<Cycle>) {
        self.key.clear();
        self.lock.clear();
        let memcache = matches!(
            self.conn.proto(),
            Proto::MemcacheText | Proto::MemcacheBinary
        );
        match cycle {
            Some(Cycle::Native | Cycle::RateLimit(RateLimit::Plugin | RateLimit::Commands)) => {
                self.key.extend_from_slice(&self.id)
            }
            Some(Cycle::RateLimit(_)) => {
                // rl:<id>:start and rl:<id>:count, as a rate limiter names
                // its keys.
                self.key.extend_from_slice(b"rl:");
                self.key.extend_from_slice(&self.id);
                self.key.extend_from_slice(b":start");
                self.lock.extend_from_slice(b"rl:");
                self.lock.extend_from_slice(&self.id);
                self.lock.extend_from_slice(b":count");
            }
            _ if memcache => {
                self.key.extend_from_slice(MEMCACHE_PREFIX);
                self.key.extend_from_slice(&self.id);
                self.lock.extend_from_slice(MEMCACHE_PREFIX);
                self.lock.extend_from_slice(b"lock.");
                self.lock.extend_from_slice(&self.id);
            }
            _ => {
                self.key.extend_from_slice(REDIS_PREFIX);
                self.key.extend_from_slice(&self.id);
                self.lock.extend_from_slice(&self.key);
                self.lock.extend_from_slice(b"_LOCK");
            }
        }
    }

    fn push_get(&mut self) {
        match self.conn.proto() {
            Proto::Resp | Proto::Echo => self.conn.push_resp(&[b"GET", &self.key]),
            Proto::MemcacheText | Proto::MemcacheBinary => self.conn.push_mc_get(&self.key),
        }
    }

    /// Makes the value differ from every earlier write (a session changes
    /// on each request: a counter, a timestamp), so no server can skip the
    /// write as an identical rewrite. The first 16 bytes count writes.
    fn stamp(&mut self) {
        if let Some(c) = self.count {
            put_count(&mut self.value, c);
            return;
        }
        self.stamp = self.stamp.wrapping_add(1);
        for &at in &self.stamps {
            let at = at.min(self.value.len());
            put_count(&mut self.value[at..], self.stamp);
        }
    }

    fn push_set(&mut self) {
        self.stamp();
        match self.conn.proto() {
            Proto::Resp | Proto::Echo if self.with_ttl => {
                let ttl = SESSION_TTL.to_string();
                self.conn
                    .push_resp(&[b"SETEX", &self.key, ttl.as_bytes(), &self.value])
            }
            Proto::Resp | Proto::Echo => self.conn.push_resp(&[b"SET", &self.key, &self.value]),
            Proto::MemcacheText | Proto::MemcacheBinary => {
                self.conn
                    .push_mc_store(false, &self.key, &self.value, SESSION_TTL)
            }
        }
    }

    /// `raw`: `depth` GET/SETs in one write, then their replies. Returns
    /// how many answered with an error (reported, not fatal).
    pub async fn raw_batch(&mut self, depth: usize) -> Result<u32, BenchError> {
        let total = self.reads + self.writes;
        for _ in 0..depth {
            self.choose(None);
            if self.rng.below(u64::from(total)) < u64::from(self.reads) {
                self.push_get();
            } else {
                self.push_set();
            }
        }
        self.conn.send().await?;
        let mut errors = 0;
        for _ in 0..depth {
            match self.conn.read_frame().await? {
                Frame::Ok | Frame::Miss | Frame::Value(_) => {}
                _ => errors += 1,
            }
        }
        Ok(errors)
    }

    /// Writes sessions `from..to` once each, `depth` per write (`load`, and
    /// the preload that makes reads hit).
    pub async fn load(
        &mut self,
        from: u64,
        to: u64,
        depth: u64,
        cycle: Option<Cycle>,
    ) -> Result<(), BenchError> {
        let mut n = from;
        while n < to {
            let end = (n + depth).min(to);
            for i in n..end {
                session_id(i, &mut self.id);
                self.names(cycle);
                self.push_set();
            }
            self.conn.send().await?;
            for _ in n..end {
                let f = self.conn.read_frame().await?;
                if f != Frame::Ok {
                    return Err(unexpected("loading sessions", &f));
                }
            }
            n = end;
        }
        Ok(())
    }

    /// One PHP request's worth of `cycle` on the next session.
    pub async fn cycle(&mut self, cycle: Cycle) -> Result<Outcome, BenchError> {
        self.choose(Some(cycle));
        match cycle {
            Cycle::Redis => self.cycle_redis().await,
            Cycle::Memcache => self.cycle_memcache().await,
            Cycle::Native => self.cycle_native().await,
            Cycle::RateLimit(how) => self.rate_limit(how).await,
        }
    }

    /// One rate-limited request, run `how`.
    async fn rate_limit(&mut self, how: RateLimit) -> Result<Outcome, BenchError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        // Values read back are needed here (the count, the start).
        if self.conn.kept.is_none() {
            self.conn.kept = Some(Vec::new());
        }
        let number = |f: Frame, kept: Option<&[u8]>, what: &str| -> Result<i64, BenchError> {
            match f {
                Frame::Int(n) => Ok(n),
                // Not a number reads as 0, as the script's tonumber does.
                Frame::Value(_) => Ok(kept
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)),
                Frame::Miss => Ok(0),
                f => Err(unexpected(what, &f)),
            }
        };
        let requests = match how {
            RateLimit::Plugin => {
                self.conn.push_resp(&[
                    b"SESSION.PLUGIN",
                    &self.key,
                    b"rate_limit",
                    RATE_LIMIT,
                    RATE_WINDOW,
                ]);
                let f = self.conn.call().await?;
                number(f, self.conn.kept.as_deref(), "SESSION.PLUGIN rate_limit")?;
                1
            }
            RateLimit::Script => {
                let sha = sha1_hex(RATE_LIMIT_LUA);
                let args: [&[u8]; 5] = [b"2", &self.key, &self.lock, RATE_LIMIT, RATE_WINDOW];
                let mut call = vec![b"EVALSHA".as_slice(), sha.as_bytes()];
                call.extend_from_slice(&args);
                call.push(now.as_bytes());
                self.conn.push_resp(&call);
                let mut reply = self.conn.call().await?;
                let mut requests = 1;
                if matches!(&reply, Frame::Error(e) if e.starts_with("NOSCRIPT")) {
                    call[0] = b"EVAL";
                    call[1] = RATE_LIMIT_LUA;
                    self.conn.push_resp(&call);
                    reply = self.conn.call().await?;
                    requests += 1;
                }
                number(reply, self.conn.kept.as_deref(), "the rate-limit script")?;
                requests
            }
            RateLimit::Commands | RateLimit::RedisCommands => {
                let native = how == RateLimit::Commands;
                let (get, set): (&[&[u8]], &[&[u8]]) = if native {
                    (
                        &[b"SESSION.GET", &self.key, b"rate.start"],
                        &[b"SESSION.GET", &self.key, b"rate.count"],
                    )
                } else {
                    (&[b"GET", &self.key], &[b"GET", &self.lock])
                };
                self.conn.push_resp(get);
                let f = self.conn.call().await?;
                let start = number(f, self.conn.kept.as_deref(), "GET (window start)")?;
                self.conn.push_resp(set);
                let f = self.conn.call().await?;
                let count = number(f, self.conn.kept.as_deref(), "GET (count)")?;
                let now_s: i64 = now.parse().unwrap_or(0);
                let (start, count) = if now_s - start >= 60 {
                    (now_s, 0)
                } else {
                    (start, count)
                };
                let (start, count) = (start.to_string(), (count + 1).to_string());
                if native {
                    self.conn.push_resp(&[
                        b"SESSION.SET",
                        &self.key,
                        b"rate.start",
                        start.as_bytes(),
                    ]);
                } else {
                    self.conn.push_resp(&[b"SET", &self.key, start.as_bytes()]);
                }
                match self.conn.call().await? {
                    Frame::Ok => {}
                    f => return Err(unexpected("SET (window start)", &f)),
                }
                if native {
                    self.conn.push_resp(&[
                        b"SESSION.SET",
                        &self.key,
                        b"rate.count",
                        count.as_bytes(),
                    ]);
                } else {
                    self.conn.push_resp(&[b"SET", &self.lock, count.as_bytes()]);
                }
                match self.conn.call().await? {
                    Frame::Ok => {}
                    f => return Err(unexpected("SET (count)", &f)),
                }
                4
            }
        };
        Ok(Outcome::Done {
            lock_wait: None,
            requests,
        })
    }

    /// Sleeps before poll attempt `attempt` (0-based), doubling from
    /// wait_min to wait_max as php-memcached does.
    async fn poll_sleep(&self, attempt: u32) {
        let mut us = self.polling.wait_min_us;
        for _ in 0..attempt {
            us = (us * 2).min(self.polling.wait_max_us.max(self.polling.wait_min_us));
        }
        tokio::time::sleep(Duration::from_micros(us)).await;
    }

    /// Polls for a lock as phpredis and php-memcached do: sends what
    /// `push` queues, and while the server answers "taken" sleeps and tries
    /// again, up to the client's retries. Returns whether the lock was had
    /// and the round trips it took.
    async fn poll_lock(
        &mut self,
        push: fn(&mut Self),
        what: &str,
    ) -> Result<(bool, u32), BenchError> {
        let mut attempt = 0;
        loop {
            push(self);
            match self.conn.call().await? {
                Frame::Ok => return Ok((true, attempt + 1)),
                Frame::Miss if attempt < self.polling.retries => {
                    self.poll_sleep(attempt).await;
                    attempt += 1;
                }
                Frame::Miss => return Ok((false, attempt + 1)),
                f => return Err(unexpected(what, &f)),
            }
        }
    }

    async fn cycle_redis(&mut self) -> Result<Outcome, BenchError> {
        let t0 = Instant::now();
        let push = |w: &mut Self| {
            let px = (LOCK_TTL_S * 1000).to_string();
            w.conn
                .push_resp(&[b"SET", &w.lock, &w.secret, b"NX", b"PX", px.as_bytes()]);
        };
        let (locked, mut requests) = self.poll_lock(push, "SET NX (lock)").await?;
        if !locked {
            return Ok(Outcome::LockFailed { requests });
        }
        let lock_wait = t0.elapsed();
        self.conn.push_resp(&[b"GET", &self.key]);
        match self.conn.call().await? {
            Frame::Value(_) | Frame::Miss => self.counted_read(),
            f => return Err(unexpected("GET", &f)),
        }
        let ttl = SESSION_TTL.to_string();
        self.stamp();
        self.conn
            .push_resp(&[b"SETEX", &self.key, ttl.as_bytes(), &self.value]);
        match self.conn.call().await? {
            Frame::Ok => {}
            f => return Err(unexpected("SETEX", &f)),
        }
        self.conn
            .push_resp(&[b"EVALSHA", UNLOCK_SHA, b"1", &self.lock, &self.secret]);
        requests += 3;
        let mut reply = self.conn.call().await?;
        if matches!(&reply, Frame::Error(e) if e.starts_with("NOSCRIPT")) {
            self.conn
                .push_resp(&[b"EVAL", UNLOCK_LUA, b"1", &self.lock, &self.secret]);
            requests += 1;
            reply = self.conn.call().await?;
        }
        match reply {
            Frame::Int(1) => Ok(Outcome::Done {
                lock_wait: Some(lock_wait),
                requests,
            }),
            f => Err(unexpected("unlock script (lock no longer ours?)", &f)),
        }
    }

    async fn cycle_memcache(&mut self) -> Result<Outcome, BenchError> {
        let t0 = Instant::now();
        let push = |w: &mut Self| w.conn.push_mc_store(true, &w.lock, b"1", LOCK_TTL_S);
        let (locked, mut requests) = self.poll_lock(push, "add (lock)").await?;
        if !locked {
            return Ok(Outcome::LockFailed { requests });
        }
        let lock_wait = t0.elapsed();
        self.conn.push_mc_get(&self.key);
        match self.conn.call().await? {
            Frame::Value(_) | Frame::Miss => self.counted_read(),
            f => return Err(unexpected("get", &f)),
        }
        self.stamp();
        self.conn
            .push_mc_store(false, &self.key, &self.value, SESSION_TTL);
        match self.conn.call().await? {
            Frame::Ok => {}
            f => return Err(unexpected("set", &f)),
        }
        self.conn.push_mc_delete(&self.lock);
        requests += 3;
        match self.conn.call().await? {
            Frame::Ok => Ok(Outcome::Done {
                lock_wait: Some(lock_wait),
                requests,
            }),
            f => Err(unexpected("delete (unlock; lock no longer ours?)", &f)),
        }
    }

    async fn cycle_native(&mut self) -> Result<Outcome, BenchError> {
        let t0 = Instant::now();
        self.conn
            .push_resp(&[b"SESSION.OPEN", &self.id, b"WAIT", b"30000", b"CREATE"]);
        let key = match self.conn.call().await? {
            Frame::Array(items) => match items.first() {
                Some(Frame::Int(k)) => *k,
                _ => return Err(BenchError::Reply("SESSION.OPEN: no lock key".into())),
            },
            f => return Err(unexpected("SESSION.OPEN", &f)),
        };
        self.counted_read();
        let lock_wait = t0.elapsed();
        let key = key.to_string();
        self.stamp();
        self.conn.push_resp(&[
            b"SESSION.CLOSE",
            &self.id,
            key.as_bytes(),
            b"DATA",
            &self.value,
        ]);
        match self.conn.call().await? {
            Frame::Ok => Ok(Outcome::Done {
                lock_wait: Some(lock_wait),
                requests: 2,
            }),
            f => Err(unexpected("SESSION.CLOSE", &f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_php_like_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        let mut id = Vec::new();
        for n in 0..100_000 {
            session_id(n, &mut id);
            assert_eq!(id.len(), 26);
            assert!(id
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
            assert!(seen.insert(id.clone()), "duplicate id for {n}");
        }
    }
}
