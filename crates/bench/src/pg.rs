//! `--workload pg-for-update`: the baseline a cluster of sessiond nodes is
//! measured against — the locked session cycle of Symfony's
//! `PdoSessionHandler` on PostgreSQL in its default mode
//! (`LOCK_TRANSACTIONAL`), one database connection per PHP process:
//! `BEGIN`; `SELECT data … FOR UPDATE` (the lock: held by the open
//! transaction for the whole request); the upsert of the new data;
//! `COMMIT`. Its table has the columns of Symfony's (`sess_id`,
//! `sess_data`, `sess_lifetime`, `sess_time`) under a name of the
//! benchmark's own, `sessiond_bench_for_update`, which each run makes afresh — so a real
//! `sessions` table in the database named is never touched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

use crate::keys::{KeyChooser, Popularity, Rng};
use crate::report::{Latency, Report};
use crate::run::{join, ConnStats, RunArgs};
use crate::wire::Proto;
use crate::workload::session_id;
use crate::BenchError;

const SELECT: &str =
    "SELECT sess_data, sess_lifetime, sess_time FROM sessiond_bench_for_update WHERE sess_id = $1 FOR UPDATE";
const MERGE: &str = "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (sess_id) DO UPDATE SET \
     (sess_data, sess_lifetime, sess_time) = (EXCLUDED.sess_data, EXCLUDED.sess_lifetime, EXCLUDED.sess_time)";

fn db(e: tokio_postgres::Error) -> BenchError {
    BenchError::Reply(format!("database: {e}"))
}

async fn connect(args: &RunArgs) -> Result<Client, BenchError> {
    let url = args.database_url.as_deref().ok_or_else(|| {
        BenchError::Options("--workload pg-for-update needs --database-url".into())
    })?;
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    if args.async_commit {
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(db)?;
    }
    Ok(client)
}

fn now_s() -> i32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
}

/// Creates the table as Symfony's `createTable()` does for PostgreSQL,
/// afresh, and writes every session once.
async fn preload(args: &RunArgs, n_keys: u64) -> Result<(), BenchError> {
    let c = connect(args).await?;
    c.batch_execute(
        "DROP TABLE IF EXISTS sessiond_bench_for_update; \
         CREATE TABLE sessiond_bench_for_update (sess_id VARCHAR(128) NOT NULL PRIMARY KEY, sess_data BYTEA NOT NULL, \
         sess_lifetime INTEGER NOT NULL, sess_time INTEGER NOT NULL); \
         CREATE INDEX sessiond_bench_for_update_lifetime ON sessiond_bench_for_update (sess_lifetime)",
    )
    .await
    .map_err(db)?;
    let blob = vec![b'x'; args.size];
    let mut id = Vec::new();
    let ids: Vec<String> = (0..n_keys)
        .map(|n| {
            session_id(n, &mut id);
            String::from_utf8_lossy(&id).into_owned()
        })
        .collect();
    c.execute(
        "INSERT INTO sessiond_bench_for_update (sess_id, sess_data, sess_lifetime, sess_time) \
         SELECT unnest($1::varchar[]), $2, 1440, $3",
        &[&ids, &blob, &now_s()],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Runs the baseline: `--conns` connections, each one PHP process.
pub(crate) async fn run(args: &RunArgs) -> Result<Report, BenchError> {
    let n_keys = args.keys.unwrap_or(10_000);
    let popularity: Popularity = args.popularity.parse().map_err(BenchError::Options)?;
    if !args.no_preload {
        preload(args, n_keys).await?;
    }
    let keys = KeyChooser::new(n_keys, popularity);
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.conns);
    for n in 0..args.conns {
        let c = connect(args).await?;
        let keys = keys.clone();
        let mut rng = Rng::new(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n as u64 + 1));
        let blob = vec![b'y'; args.size];
        tasks.push(tokio::spawn(async move {
            let mut s = ConnStats::default();
            if let Err(e) = cycles(&c, &keys, &mut rng, &blob, warm_end, end, &mut s).await {
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
    let lock_wait = Latency::of(&all.lock_wait);
    Ok(Report {
        addr: "postgres".into(),
        pipeline: 1,
        rate: None,
        lock_wait_us: Some(lock_wait),
        ..all.report(args, Proto::Resp, n_keys, failed)
    })
}

/// One connection's cycles until `end`.
async fn cycles(
    c: &Client,
    keys: &KeyChooser,
    rng: &mut Rng,
    blob: &[u8],
    warm_end: Instant,
    end: Instant,
    s: &mut ConnStats,
) -> Result<(), BenchError> {
    let select = c.prepare(SELECT).await.map_err(db)?;
    let merge = c.prepare(MERGE).await.map_err(db)?;
    let mut id = Vec::new();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return Ok(());
        }
        session_id(keys.pick(rng), &mut id);
        let sid = String::from_utf8_lossy(&id).into_owned();
        c.batch_execute("BEGIN").await.map_err(db)?;
        let rows = c.query(&select, &[&sid]).await.map_err(db)?;
        let locked = Instant::now();
        if rows.is_empty() {
            return Err(BenchError::Reply(format!("session {sid} is missing")));
        }
        c.execute(&merge, &[&sid, &blob, &1440i32, &now_s()])
            .await
            .map_err(db)?;
        c.batch_execute("COMMIT").await.map_err(db)?;
        let t1 = Instant::now();
        if t0 >= warm_end && t1 <= end {
            s.latency.record((t1 - t0).as_nanos() as u64);
            s.lock_wait.record((locked - t0).as_nanos() as u64);
            s.transactions += 1;
            s.requests += 4;
        }
    }
}
