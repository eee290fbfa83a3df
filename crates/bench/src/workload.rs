//! What one transaction sends: the request sequences of each workload,
//! written as the clients they imitate send them, and checked reply by reply
//! so a server that answers wrongly fails the run instead of looking fast.

use std::time::Duration;

use tokio::time::Instant;

use crate::keys::{KeyChooser, Rng};
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
    /// The seeds' "memcache + MySQL" handler: read from memcached
    /// (`--addr`, text protocol), on a miss from the database and back
    /// into memcached; write to memcached, then `REPLACE INTO` the
    /// database (`--database-url`). No lock: run it with `--count` to see
    /// the updates it loses.
    WriteThrough,
}

/// The per-request sequence a `contend` run repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cycle {
    Redis,
    Memcache,
    Native,
}

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
            Some(Cycle::Native) => self.key.extend_from_slice(&self.id),
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
        }
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
