//! The SQL baselines a cluster of sessiond nodes is measured against,
//! straight to the database (`--database-url`: PostgreSQL or
//! MySQL/MariaDB), one database connection per PHP process:
//!
//! - `for-update`: the locked session cycle of Symfony's
//!   `PdoSessionHandler` in its default mode (`LOCK_TRANSACTIONAL`):
//!   begin (on MySQL after `SET TRANSACTION ISOLATION LEVEL READ
//!   COMMITTED`, as Symfony sends it); `SELECT data … FOR UPDATE` (the
//!   lock: held by the open transaction for the whole request); the upsert
//!   of the new data; commit. Its table has the columns of Symfony's
//!   (`sess_id`, `sess_data`, `sess_lifetime`, `sess_time`).
//! - `write-through`: the seeds' "memcache + MySQL" handler: read from
//!   memcached (`--addr`), on a miss from the database and back into
//!   memcached; write to memcached, then `REPLACE INTO` the database
//!   (an upsert on PostgreSQL). No lock: with `--count` the run shows the
//!   updates it loses. Its table has the seed's columns (`sessionID`,
//!   `sessionExpirationTS`, `sessionData`).
//!
//! Each run makes its table afresh under a name of its own
//! (`sessiond_bench_for_update`, `sessiond_bench_write_through`), so a
//! real sessions table in the database named is never touched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sessiond_mysql as my;
use tokio::time::Instant;

use crate::keys::{KeyChooser, Popularity, Rng};
use crate::report::{Latency, Report};
use crate::run::{join, ConnStats, RunArgs};
use crate::wire::{Conn, Frame, Proto};
use crate::workload::{count_in, put_count, session_id, Workload, SESSION_TTL};
use crate::BenchError;

/// Rows written per preload statement.
const PRELOAD_CHUNK: usize = 1000;

fn pg_err(e: tokio_postgres::Error) -> BenchError {
    match e.as_db_error() {
        Some(d) => BenchError::Reply(format!("database: {}: {}", d.code().code(), d.message())),
        None => BenchError::Reply(format!("database: {e}")),
    }
}

fn my_err(e: my::MyError) -> BenchError {
    BenchError::Reply(format!("database: {e}"))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The statements of one workload on one database.
struct Sql {
    create: &'static str,
    /// The read: `FOR UPDATE` for the locked cycle.
    select: &'static str,
    /// The write: (id, data, lifetime or expiry, time).
    write: &'static str,
    /// Preload: one row (id, data, lifetime or expiry, time).
    insert: &'static str,
    /// Every row's data, for the count.
    all: &'static str,
}

fn statements(workload: Workload, mysql: bool) -> Sql {
    match (workload, mysql) {
        (Workload::WriteThrough, false) => Sql {
            create: "DROP TABLE IF EXISTS sessiond_bench_write_through; \
                CREATE TABLE sessiond_bench_write_through (\"sessionID\" VARCHAR(128) NOT NULL PRIMARY KEY, \
                \"sessionExpirationTS\" INTEGER NOT NULL, \"sessionData\" BYTEA NOT NULL)",
            select: "SELECT \"sessionData\" FROM sessiond_bench_write_through WHERE \"sessionID\" = $1",
            write: "INSERT INTO sessiond_bench_write_through (\"sessionID\", \"sessionData\", \"sessionExpirationTS\") \
                VALUES ($1, $2, $3::integer + $4::integer) ON CONFLICT (\"sessionID\") DO UPDATE SET \
                (\"sessionData\", \"sessionExpirationTS\") = (EXCLUDED.\"sessionData\", EXCLUDED.\"sessionExpirationTS\")",
            insert: "INSERT INTO sessiond_bench_write_through (\"sessionID\", \"sessionData\", \"sessionExpirationTS\") \
                VALUES ($1, $2, $3::integer + $4::integer)",
            all: "SELECT \"sessionData\" FROM sessiond_bench_write_through",
        },
        (Workload::WriteThrough, true) => Sql {
            create: "DROP TABLE IF EXISTS sessiond_bench_write_through; \
                CREATE TABLE sessiond_bench_write_through (sessionID VARBINARY(128) NOT NULL PRIMARY KEY, \
                sessionExpirationTS INTEGER NOT NULL, sessionData MEDIUMBLOB NOT NULL) ENGINE = InnoDB",
            select: "SELECT sessionData FROM sessiond_bench_write_through WHERE sessionID = ?",
            write: "REPLACE INTO sessiond_bench_write_through (sessionID, sessionData, sessionExpirationTS) \
                VALUES (?, ?, ? + ?)",
            insert: "INSERT INTO sessiond_bench_write_through (sessionID, sessionData, sessionExpirationTS) \
                VALUES (?, ?, ? + ?)",
            all: "SELECT sessionData FROM sessiond_bench_write_through",
        },
        (_, false) => Sql {
            create: "DROP TABLE IF EXISTS sessiond_bench_for_update; \
                CREATE TABLE sessiond_bench_for_update (sess_id VARCHAR(128) NOT NULL PRIMARY KEY, \
                sess_data BYTEA NOT NULL, sess_lifetime INTEGER NOT NULL, sess_time INTEGER NOT NULL); \
                CREATE INDEX sessiond_bench_for_update_lifetime ON sessiond_bench_for_update (sess_lifetime)",
            select: "SELECT sess_data, sess_lifetime, sess_time FROM sessiond_bench_for_update \
                WHERE sess_id = $1 FOR UPDATE",
            write: "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
                VALUES ($1, $2, $3, $4) ON CONFLICT (sess_id) DO UPDATE SET \
                (sess_data, sess_lifetime, sess_time) = (EXCLUDED.sess_data, EXCLUDED.sess_lifetime, EXCLUDED.sess_time)",
            insert: "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
                VALUES ($1, $2, $3, $4)",
            all: "SELECT sess_data FROM sessiond_bench_for_update",
        },
        (_, true) => Sql {
            create: "DROP TABLE IF EXISTS sessiond_bench_for_update; \
                CREATE TABLE sessiond_bench_for_update (sess_id VARBINARY(128) NOT NULL PRIMARY KEY, \
                sess_data MEDIUMBLOB NOT NULL, sess_lifetime INTEGER UNSIGNED NOT NULL, \
                sess_time INTEGER UNSIGNED NOT NULL, INDEX sessiond_bench_for_update_lifetime (sess_lifetime)) \
                COLLATE utf8mb4_bin, ENGINE = InnoDB",
            select: "SELECT sess_data, sess_lifetime, sess_time FROM sessiond_bench_for_update \
                WHERE sess_id = ? FOR UPDATE",
            write: "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
                VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE sess_data = VALUES(sess_data), \
                sess_lifetime = VALUES(sess_lifetime), sess_time = VALUES(sess_time)",
            insert: "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
                VALUES (?, ?, ?, ?)",
            all: "SELECT sess_data FROM sessiond_bench_for_update",
        },
    }
}

/// One database connection with the workload's statements prepared.
enum Db {
    Pg {
        c: tokio_postgres::Client,
        select: tokio_postgres::Statement,
        write: tokio_postgres::Statement,
    },
    My {
        c: my::Client,
        select: my::Statement,
        write: my::Statement,
    },
}

impl Db {
    /// Connects and prepares; the table is made afresh first when
    /// `create`.
    async fn connect(args: &RunArgs, sql: &Sql, create: bool) -> Result<Db, BenchError> {
        let url = args.database_url.as_deref().ok_or_else(|| {
            BenchError::Options(
                "--workload for-update and write-through need --database-url".into(),
            )
        })?;
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let opts = my::Opts::parse(url).map_err(BenchError::Options)?;
            let (c, driver) = my::Client::connect(&opts, None).await.map_err(my_err)?;
            tokio::spawn(driver);
            if create {
                c.query(sql.create).await.map_err(my_err)?;
            }
            let select = c.prepare(sql.select).await.map_err(my_err)?;
            let write = c.prepare(sql.write).await.map_err(my_err)?;
            return Ok(Db::My { c, select, write });
        }
        let (c, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(pg_err)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if args.async_commit {
            c.batch_execute("SET synchronous_commit = off")
                .await
                .map_err(pg_err)?;
        }
        if create {
            c.batch_execute(sql.create).await.map_err(pg_err)?;
        }
        let select = c.prepare(sql.select).await.map_err(pg_err)?;
        let write = c.prepare(sql.write).await.map_err(pg_err)?;
        Ok(Db::Pg { c, select, write })
    }

    async fn batch(&self, sql: &str) -> Result<(), BenchError> {
        match self {
            Db::Pg { c, .. } => c.batch_execute(sql).await.map_err(pg_err),
            Db::My { c, .. } => c.query(sql).await.map(drop).map_err(my_err),
        }
    }

    /// Symfony's transaction start: on MySQL the isolation level first,
    /// each its own round trip, as PDO sends them.
    async fn begin(&self) -> Result<(), BenchError> {
        if let Db::My { .. } = self {
            self.batch("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .await?;
            return self.batch("START TRANSACTION").await;
        }
        self.batch("BEGIN").await
    }

    /// The session's data (the prepared read), if it has a row.
    async fn read(&self, id: &str) -> Result<Option<Vec<u8>>, BenchError> {
        match self {
            Db::Pg { c, select, .. } => {
                let rows = c.query(select, &[&id]).await.map_err(pg_err)?;
                rows.first()
                    .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_err))
                    .transpose()
            }
            Db::My { c, select, .. } => {
                let sets = c
                    .execute(select, &[my::Param::Bytes(id.as_bytes())])
                    .await
                    .map_err(my_err)?;
                match sets
                    .first()
                    .and_then(|s| s.rows.first())
                    .and_then(|r| r.first())
                {
                    None => Ok(None),
                    Some(my::Value::Bytes(b)) => Ok(Some(b.clone())),
                    Some(v) => Err(BenchError::Reply(format!("database: session data {v:?}"))),
                }
            }
        }
    }

    /// The prepared write: `(id, data, a, b)` (lifetime and time, or the
    /// expiry as time + lifetime).
    async fn write(&self, id: &str, data: &[u8], a: i64, b: i64) -> Result<(), BenchError> {
        match self {
            Db::Pg { c, write, .. } => {
                let (a, b) = (int4(a), int4(b));
                c.execute(write, &[&id, &data, &a, &b])
                    .await
                    .map(drop)
                    .map_err(pg_err)
            }
            Db::My { c, write, .. } => {
                let p = [
                    my::Param::Bytes(id.as_bytes()),
                    my::Param::Bytes(data),
                    my::Param::Int(a),
                    my::Param::Int(b),
                ];
                c.execute(write, &p).await.map(drop).map_err(my_err)
            }
        }
    }

    /// Every row's data.
    async fn all(&self, sql: &Sql) -> Result<Vec<Vec<u8>>, BenchError> {
        match self {
            Db::Pg { c, .. } => c
                .query(sql.all, &[])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_err))
                .collect(),
            Db::My { c, .. } => Ok(c
                .query(sql.all)
                .await
                .map_err(my_err)?
                .into_iter()
                .flat_map(|s| s.rows)
                .filter_map(|mut r| match r.pop() {
                    Some(my::Value::Bytes(b)) => Some(b),
                    _ => None,
                })
                .collect()),
        }
    }
}

/// PostgreSQL's INTEGER columns take an i32 (the tables are Symfony's
/// and the seed's; times fit until 2038).
fn int4(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Refuses `--async-commit` on a MySQL server that flushes at every
/// commit, and its absence on one that does not: the setting is the
/// server's, not the session's.
async fn check_commit_mode(db: &Db, args: &RunArgs) -> Result<(), BenchError> {
    let Db::My { c, .. } = db else {
        return Ok(());
    };
    let sets = c
        .query("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit")
        .await
        .map_err(my_err)?;
    let flush = match sets
        .first()
        .and_then(|s| s.rows.first())
        .and_then(|r| r.first())
    {
        Some(my::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    };
    match (args.async_commit, flush.as_str()) {
        (true, "1") => Err(BenchError::Options(
            "--async-commit on MySQL: set innodb_flush_log_at_trx_commit to 2 (or 0) on the server first"
                .into(),
        )),
        (false, "0" | "2") => Err(BenchError::Options(format!(
            "the server's innodb_flush_log_at_trx_commit is {flush}: commits are not synchronous (add --async-commit, or set it to 1)"
        ))),
        _ => Ok(()),
    }
}

fn ids(n_keys: u64) -> Vec<String> {
    let mut id = Vec::new();
    (0..n_keys)
        .map(|n| {
            session_id(n, &mut id);
            String::from_utf8_lossy(&id).into_owned()
        })
        .collect()
}

/// Writes every session once, its count 0 (into the table `db` made).
async fn preload(db: &Db, sql: &Sql, args: &RunArgs, n_keys: u64) -> Result<(), BenchError> {
    let mut blob = vec![b'x'; args.size];
    put_count(&mut blob, 0);
    let all = ids(n_keys);
    let (a, b) = lifetime(args.workload);
    match db {
        Db::Pg { c, .. } => {
            let st = c.prepare(sql.insert).await.map_err(pg_err)?;
            let (a, b) = (int4(a), int4(b));
            for chunk in all.chunks(PRELOAD_CHUNK) {
                db.batch("BEGIN").await?;
                for id in chunk {
                    c.execute(&st, &[id, &blob, &a, &b]).await.map_err(pg_err)?;
                }
                db.batch("COMMIT").await?;
            }
        }
        Db::My { c, .. } => {
            let st = c.prepare(sql.insert).await.map_err(my_err)?;
            for chunk in all.chunks(PRELOAD_CHUNK) {
                db.batch("BEGIN").await?;
                for id in chunk {
                    let p = [
                        my::Param::Bytes(id.as_bytes()),
                        my::Param::Bytes(&blob),
                        my::Param::Int(a),
                        my::Param::Int(b),
                    ];
                    c.execute(&st, &p).await.map_err(my_err)?;
                }
                db.batch("COMMIT").await?;
            }
            c.close_statement(st);
        }
    }
    Ok(())
}

/// The two numbers a write carries: Symfony's lifetime and time, or the
/// seed's expiry as time + lifetime.
fn lifetime(workload: Workload) -> (i64, i64) {
    match workload {
        Workload::WriteThrough => (now_s(), i64::from(SESSION_TTL)),
        _ => (i64::from(SESSION_TTL), now_s()),
    }
}

/// Runs the baseline: `--conns` connections, each one PHP process.
pub(crate) async fn run(args: &RunArgs) -> Result<Report, BenchError> {
    let n_keys = args.keys.unwrap_or(10_000);
    let popularity: Popularity = args.popularity.parse().map_err(BenchError::Options)?;
    let sql_of = statements(args.workload, is_mysql(args));
    let sql = &sql_of;
    let first = Db::connect(args, sql, !args.no_preload).await?;
    check_commit_mode(&first, args).await?;
    if !args.no_preload {
        preload(&first, sql, args, n_keys).await?;
    }
    let through = args.workload == Workload::WriteThrough;
    let cache = if through {
        Some(args.addrs()?[0])
    } else {
        None
    };
    let keys = KeyChooser::new(n_keys, popularity);
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.conns);
    for n in 0..args.conns {
        let db = Db::connect(args, sql, false).await?;
        let mc = match cache {
            Some(a) => {
                let mut c = Conn::connect(a, Proto::MemcacheText).await?;
                c.kept = Some(Vec::new());
                Some(c)
            }
            None => None,
        };
        let mut p = Php {
            db,
            mc,
            keys: keys.clone(),
            rng: Rng::new(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n as u64 + 1)),
            blob: vec![b'y'; args.size],
            count: args.count,
            id: Vec::new(),
        };
        tasks.push(tokio::spawn(async move {
            let mut s = ConnStats::default();
            if let Err(e) = p.cycles(warm_end, end, &mut s).await {
                s.errors += 1;
                s.first_error = Some(e.to_string());
            }
            s
        }));
    }
    let (all, failed) = join(tasks).await?;
    if failed == args.conns {
        return Err(BenchError::Reply(format!(
            "every connection failed; the first: {}",
            all.first_error.unwrap_or_default()
        )));
    }
    let (acked_writes, lost_updates) = if args.count {
        let held = match cache {
            Some(a) => count_through(&first, a, n_keys).await?,
            None => first.all(sql).await?.iter().map(|d| count_in(d)).sum(),
        };
        (Some(all.acked), Some(all.acked as i64 - held as i64))
    } else {
        (None, None)
    };
    let lock_wait = (!through).then(|| Latency::of(&all.lock_wait));
    Ok(Report {
        addr: if is_mysql(args) { "mysql" } else { "postgres" }.into(),
        pipeline: 1,
        rate: None,
        lock_wait_us: lock_wait,
        acked_writes,
        lost_updates,
        ..all.report(args, Proto::Resp, n_keys, failed)
    })
}

fn is_mysql(args: &RunArgs) -> bool {
    args.database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("mysql://") || u.starts_with("mariadb://"))
}

/// The sum of every session's count as the write-through handler reads
/// it: memcached first, the database on a miss.
async fn count_through(
    db: &Db,
    cache: std::net::SocketAddr,
    n_keys: u64,
) -> Result<u64, BenchError> {
    let mut mc = Conn::connect(cache, Proto::MemcacheText).await?;
    mc.kept = Some(Vec::new());
    let mut sum = 0;
    for id in ids(n_keys) {
        mc.push_mc_get(id.as_bytes());
        sum += match mc.call().await? {
            Frame::Value(_) => mc.kept.as_deref().map_or(0, count_in),
            Frame::Miss => db.read(&id).await?.as_deref().map_or(0, count_in),
            f => return Err(BenchError::Reply(format!("memcached get: {f:?}"))),
        };
    }
    Ok(sum)
}

/// One PHP process of the baseline.
struct Php {
    db: Db,
    /// The write-through handler's memcached.
    mc: Option<Conn>,
    keys: KeyChooser,
    rng: Rng,
    blob: Vec<u8>,
    count: bool,
    id: Vec<u8>,
}

impl Php {
    /// Cycles until `end`.
    async fn cycles(
        &mut self,
        warm_end: Instant,
        end: Instant,
        s: &mut ConnStats,
    ) -> Result<(), BenchError> {
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                return Ok(());
            }
            session_id(self.keys.pick(&mut self.rng), &mut self.id);
            let sid = String::from_utf8_lossy(&self.id).into_owned();
            let (locked, requests) = if self.mc.is_some() {
                self.write_through(&sid).await?
            } else {
                self.for_update(&sid).await?
            };
            let t1 = Instant::now();
            s.acked += 1;
            if t0 >= warm_end && t1 <= end {
                s.latency.record((t1 - t0).as_nanos() as u64);
                s.lock_wait.record((locked - t0).as_nanos() as u64);
                s.transactions += 1;
                s.requests += requests;
            }
        }
    }

    /// The next write's data: the count read plus one, when counting.
    fn next_data(&mut self, read: Option<&[u8]>) {
        if self.count {
            put_count(&mut self.blob, read.map_or(0, count_in) + 1);
        }
    }

    /// Symfony's locked cycle; returns when the lock was had and the
    /// round trips it took.
    async fn for_update(&mut self, sid: &str) -> Result<(Instant, u64), BenchError> {
        self.db.begin().await?;
        let data = self
            .db
            .read(sid)
            .await?
            .ok_or_else(|| BenchError::Reply(format!("session {sid} is missing")))?;
        let locked = Instant::now();
        self.next_data(Some(&data));
        let (a, b) = lifetime(Workload::ForUpdate);
        self.db.write(sid, &self.blob, a, b).await?;
        self.db.batch("COMMIT").await?;
        let requests = if matches!(self.db, Db::My { .. }) {
            5
        } else {
            4
        };
        Ok((locked, requests))
    }

    /// The seed's handler: no lock, so "locked" is the start.
    async fn write_through(&mut self, sid: &str) -> Result<(Instant, u64), BenchError> {
        let locked = Instant::now();
        let Some(mc) = self.mc.as_mut() else {
            return Ok((locked, 0));
        };
        let (a, b) = lifetime(Workload::WriteThrough);
        mc.push_mc_get(sid.as_bytes());
        let mut requests = 3;
        let data = match mc.call().await? {
            Frame::Value(_) => mc.kept.clone().unwrap_or_default(),
            Frame::Miss => {
                let data = self.db.read(sid).await?.unwrap_or_default();
                mc.push_mc_store(false, sid.as_bytes(), &data, SESSION_TTL);
                requests += 2;
                match mc.call().await? {
                    Frame::Ok => data,
                    f => return Err(BenchError::Reply(format!("memcached set: {f:?}"))),
                }
            }
            f => return Err(BenchError::Reply(format!("memcached get: {f:?}"))),
        };
        self.next_data(Some(&data));
        let Some(mc) = self.mc.as_mut() else {
            return Ok((locked, requests));
        };
        mc.push_mc_store(false, sid.as_bytes(), &self.blob, SESSION_TTL);
        match mc.call().await? {
            Frame::Ok => {}
            f => return Err(BenchError::Reply(format!("memcached set: {f:?}"))),
        }
        self.db.write(sid, &self.blob, a, b).await?;
        Ok((locked, requests))
    }
}
