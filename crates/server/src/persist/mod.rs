//! Durability: the embedded log + snapshot store.
//!
//! Memory stays authoritative for reads. Every change the engine makes is
//! appended to the log by [`LogWriter`] (group commit, fsync per policy); a
//! background compactor writes a snapshot of live sessions and starts a new
//! log generation when the log has grown large relative to the live data.
//! See `docs/durability.md` for the promises and `files.rs` for the layout.

mod files;
mod inspect;
mod log;
mod record;
mod recovery;
mod repair;

use crate::metrics::Histogram;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sessiond_core::{Engine, Mutation, KEY_BLOCK};

use self::files::{generations, path, sync_dir, Kind};
pub use self::inspect::{check, dump};
pub use self::log::{Fsync, LogWriter};
use self::record::{encode, Format, Record, LOG_MAGIC, SNAPSHOT_MAGIC};
pub use self::recovery::recover;
pub use self::repair::repair;
use crate::error::ServerError;

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Memory plus a log and snapshots in the data directory: survives
    /// restarts and crashes.
    #[default]
    Log,
    /// Memory only: everything is gone when the process stops.
    Memory,
    /// A PostgreSQL database shared by every node of a cluster
    /// (`database_url`); the node itself keeps nothing.
    Postgres,
    /// The same on MySQL 8 or MariaDB 10.6+.
    MySql,
}

impl Storage {
    /// Whether the sessions are in a database the nodes of a cluster share.
    pub fn is_cluster(self) -> bool {
        matches!(self, Storage::Postgres | Storage::MySql)
    }
}

impl std::str::FromStr for Storage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "log" => Ok(Storage::Log),
            "memory" => Ok(Storage::Memory),
            "postgres" | "postgresql" => Ok(Storage::Postgres),
            "mysql" | "mariadb" => Ok(Storage::MySql),
            _ => Err(format!("'{s}' is not one of log, memory, postgres, mysql")),
        }
    }
}

/// When to compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Never compact a log smaller than this.
    pub min_log_bytes: u64,
    /// Compact once the log is this many times the last snapshot's size.
    pub ratio: u64,
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub snapshot_generation: Option<u64>,
    pub snapshot_sessions: u64,
    pub log_records: u64,
    pub truncated_bytes: u64,
    pub live_sessions: usize,
    pub millis: u128,
}

/// The open data directory.
pub struct Persistence {
    dir: PathBuf,
    engine: Arc<Engine>,
    writer: Arc<LogWriter>,
    /// The current log generation.
    generation: Mutex<u64>,
    /// The generation of the newest verified snapshot (0: none). It and
    /// the generation before it are kept, so a newest snapshot found damaged
    /// can fall back.
    base: Mutex<u64>,
    /// Damaged files recovery passed over: never deleted here.
    quarantined: Vec<PathBuf>,
    /// Held while the directory is open: one process at a time.
    _lock: File,
    snapshot_bytes: Mutex<u64>,
    policy: CompactionPolicy,
    stop: Arc<AtomicBool>,
    compactor: Mutex<Option<JoinHandle<()>>>,
    /// How long each snapshot took.
    snapshots: Histogram,
}

impl Persistence {
    /// Opens (creating if needed) `dir`, recovers its contents into
    /// `engine`, and from then on logs every change.
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        policy: CompactionPolicy,
        engine: &Arc<Engine>,
    ) -> Result<(Arc<Self>, RecoveryReport), ServerError> {
        let io = |what: &str, e: std::io::Error| {
            ServerError::Storage(format!("{what} in {}: {e}", dir.display()))
        };
        fs::create_dir_all(dir).map_err(|e| io("cannot create the data directory", e))?;
        let lock = lock_dir(dir)?;
        let started = Instant::now();
        let rec = recover(dir, engine, true)?;
        let mut report = rec.report;

        // Append to the newest log when it is in today's format; otherwise
        // (none yet, or one written by an older release) start a new
        // generation, which leaves the old file as it is.
        let generation = match rec.last_log {
            Some(g) if log_format(dir, g) == Some(Format::V2) => g,
            Some(g) => g + 1,
            None => rec.base.max(1),
        };
        let (file, len) = open_log(dir, generation).map_err(|e| io("cannot open the log", e))?;
        let writer = LogWriter::start(file, len, fsync);
        engine.install_log(writer.clone());
        report.millis = started.elapsed().as_millis();
        let me = Arc::new(Self {
            dir: dir.to_path_buf(),
            engine: engine.clone(),
            writer,
            generation: Mutex::new(generation),
            base: Mutex::new(rec.base),
            quarantined: rec.quarantined,
            _lock: lock,
            snapshot_bytes: Mutex::new(rec.snapshot_bytes),
            policy,
            stop: Arc::new(AtomicBool::new(false)),
            compactor: Mutex::new(None),
            snapshots: Histogram::default(),
        });
        let weak = Arc::downgrade(&me);
        let stop = me.stop.clone();
        let handle = std::thread::Builder::new()
            .name("sessiond-compact".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let Some(p) = weak.upgrade() else { break };
                    if p.needs_compaction() {
                        if let Err(e) = p.compact() {
                            tracing::error!(error = %e, "compaction failed; will retry");
                            std::thread::sleep(Duration::from_secs(5));
                        }
                    }
                }
            })
            .ok();
        *me.compactor.lock() = handle;
        Ok((me, report))
    }

    /// The fsync policy.
    pub fn fsync(&self) -> Fsync {
        self.writer.policy()
    }

    /// Sequence number of the newest record appended.
    pub fn appended(&self) -> u64 {
        self.writer.appended()
    }

    /// Records appended and not yet durable per the policy.
    pub fn pending(&self) -> u64 {
        self.writer.pending()
    }

    /// Bytes in the current log file.
    pub fn log_bytes(&self) -> u64 {
        self.writer.file_bytes()
    }

    /// Bytes in the newest snapshot (0 before the first).
    pub fn snapshot_bytes(&self) -> u64 {
        *self.snapshot_bytes.lock()
    }

    /// How long each fsync of the log took.
    pub(crate) fn fsyncs(&self) -> &Histogram {
        self.writer.fsyncs()
    }

    /// How long each snapshot took.
    pub(crate) fn snapshots(&self) -> &Histogram {
        &self.snapshots
    }

    /// Resolves once every record up to `seq` is durable per the policy.
    pub async fn wait_durable(&self, seq: u64) {
        self.writer.wait_durable(seq).await;
    }

    fn needs_compaction(&self) -> bool {
        let log = self.writer.file_bytes();
        let snap = *self.snapshot_bytes.lock();
        log > self.policy.min_log_bytes && log > snap.saturating_mul(self.policy.ratio)
    }

    /// Starts a new log generation, writes a snapshot of live sessions one
    /// shard at a time (requests go on meanwhile), reads it back, and only
    /// then deletes the files older than the previous snapshot's generation:
    /// the previous snapshot and the logs after it stay, so a newest
    /// snapshot later found damaged can fall back. Returns the snapshot's
    /// size in bytes.
    pub fn compact(&self) -> Result<u64, ServerError> {
        let started = Instant::now();
        let io = |what: &str, e: std::io::Error| ServerError::Storage(format!("{what}: {e}"));
        let next = *self.generation.lock() + 1;
        let (file, _) = open_log(&self.dir, next).map_err(|e| io("cannot start a new log", e))?;
        self.writer.rotate(file, path(&self.dir, Kind::Log, next));
        *self.generation.lock() = next;

        let (bytes, sessions) = write_snapshot(&self.dir, next, &self.engine)?;
        let previous = std::mem::replace(&mut *self.base.lock(), next);
        remove_older(&self.dir, previous, &self.quarantined);
        *self.snapshot_bytes.lock() = bytes;
        self.snapshots.observe(started.elapsed());
        tracing::info!(
            generation = next,
            sessions,
            snapshot_bytes = bytes,
            millis = started.elapsed().as_millis() as u64,
            "compacted"
        );
        Ok(bytes)
    }

    /// Stops compaction, writes and fsyncs every record appended.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.compactor.lock().take() {
            let _ = t.join();
        }
        self.writer.shutdown();
    }
}

/// Writes `snapshot.gen` of every live session of `engine` (to a `.tmp`
/// file, fsynced), reads it back and checks every record and the end
/// marker, and only then renames it into place. Returns its bytes and
/// sessions.
pub(crate) fn write_snapshot(
    dir: &Path,
    gen: u64,
    engine: &Engine,
) -> Result<(u64, u64), ServerError> {
    let io = |what: &str, e: std::io::Error| ServerError::Storage(format!("{what}: {e}"));
    let final_path = path(dir, Kind::Snapshot, gen);
    let tmp = final_path.with_extension("tmp");
    let f = File::create(&tmp).map_err(|e| io("cannot create the snapshot", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(SNAPSHOT_MAGIC)
        .map_err(|e| io("cannot write the snapshot", e))?;
    let mut sessions = 0u64;
    let mut buf = Vec::with_capacity(1 << 16);
    let now = engine.now_ms();
    // Keys handed out so far are below next + KEY_BLOCK whatever the
    // reservations in the logs about to be deleted said.
    encode(
        &Record::Mutation(Mutation::FencingKeys {
            up_to: engine.next_fencing_key().saturating_add(KEY_BLOCK),
        }),
        &mut buf,
    );
    for i in 0..engine.shard_count() {
        for (id, session) in engine.shard_sessions(i) {
            if session.deadline_ms() <= now {
                continue;
            }
            encode(&Record::Mutation(Mutation::Put { id, session }), &mut buf);
            sessions += 1;
            if buf.len() >= 1 << 16 {
                w.write_all(&buf)
                    .map_err(|e| io("cannot write the snapshot", e))?;
                buf.clear();
            }
        }
    }
    encode(&Record::End { sessions }, &mut buf);
    w.write_all(&buf)
        .map_err(|e| io("cannot write the snapshot", e))?;
    let f = w
        .into_inner()
        .map_err(|e| io("cannot write the snapshot", e.into_error()))?;
    f.sync_all()
        .map_err(|e| io("cannot sync the snapshot", e))?;
    drop(f);
    // Read it back before it replaces anything.
    let (s, sound) =
        recovery::snapshot_sound(&tmp).map_err(|e| io("cannot read the snapshot back", e))?;
    if !sound || s.records != sessions + 2 {
        return Err(ServerError::Storage(format!(
            "the snapshot just written does not read back whole ({}); the older files are kept",
            recovery::describe(&tmp, &s)
        )));
    }
    fs::rename(&tmp, &final_path).map_err(|e| io("cannot install the snapshot", e))?;
    sync_dir(dir).map_err(|e| io("cannot sync the data directory", e))?;
    Ok((s.total_bytes, sessions))
}

/// The frame format of `log.gen`, from its header; an empty file (a torn
/// header cut away) gets today's when it is opened.
fn log_format(dir: &Path, gen: u64) -> Option<Format> {
    let mut head = [0u8; 8];
    let mut f = File::open(path(dir, Kind::Log, gen)).ok()?;
    if f.metadata().ok()?.len() == 0 {
        return Some(Format::V2);
    }
    std::io::Read::read_exact(&mut f, &mut head).ok()?;
    Format::of(&head, false)
}

/// How many times, 10 ms apart, a held directory lock is tried again.
const LOCK_TRIES: u32 = 50;

/// Takes the directory's lock file, so that two servers (or a server and
/// `repair`) never write one directory at once.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, ServerError> {
    let p = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| ServerError::Storage(format!("cannot open {}: {e}", p.display())))?;
    // A lock still held for a moment is waited out: a server of this
    // process stopping, a process that just exited, or a child being
    // started here, which holds a copy of the descriptor until its
    // `exec`. (Seen once as a flaky restart in the test suite, where many
    // servers start and stop in one process; which of these it was is
    // not known.)
    let mut tries = 0;
    let taken = loop {
        match f.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    match taken {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Storage(format!(
            "{} is in use by another sessiond process; stop it first",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(ServerError::Storage(format!(
            "cannot lock {}: {e}",
            p.display()
        ))),
    }
}

/// Opens `log.gen` for appending, writing its header if it is new.
fn open_log(dir: &Path, gen: u64) -> std::io::Result<(File, u64)> {
    let p = path(dir, Kind::Log, gen);
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&p)?;
    let mut len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        f.write_all(LOG_MAGIC)?;
        f.sync_all()?;
        sync_dir(dir)?;
        len = LOG_MAGIC.len() as u64;
    }
    Ok((f, len))
}

/// Deletes snapshots and logs of generations before `gen`, but never a file
/// in `keep` (damage recovery passed over, for the operator to look at).
fn remove_older(dir: &Path, gen: u64, keep: &[PathBuf]) {
    for kind in [Kind::Snapshot, Kind::Log] {
        if let Ok(gens) = generations(dir, kind) {
            for g in gens.into_iter().filter(|&g| g < gen) {
                let p = path(dir, kind, g);
                if keep.contains(&p) {
                    continue;
                }
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!(file = %p.display(), error = %e, "cannot remove an old file");
                }
            }
        }
    }
    let _ = sync_dir(dir);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sessiond_core::{Clock, EngineConfig, Session, SessionId, SystemClock};

    use super::*;

    #[test]
    fn a_held_directory_lock_refuses_after_half_a_second_and_a_released_one_is_taken() {
        let dir = std::env::temp_dir().join(format!("sessiond-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let held = lock_dir(&dir).unwrap();
        let started = std::time::Instant::now();
        let refused = lock_dir(&dir).unwrap_err().to_string();
        assert!(
            refused.contains("in use by another sessiond process"),
            "{refused}"
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(400));
        // Let go of while the next one is trying: it is taken.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        lock_dir(&dir).unwrap();
        releaser.join().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_format_1_directory_is_read_and_continued_in_a_new_generation() {
        let dir = std::env::temp_dir().join(format!("sessiond-v1-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // A log as format 1 wrote it: 8-byte frame headers.
        let now = SystemClock.now_ms();
        let put = Record::Mutation(Mutation::Put {
            id: SessionId::new(Bytes::from_static(b"old")),
            session: Session::restored(
                None,
                Bytes::from_static(b"kept"),
                Default::default(),
                0,
                now,
                now,
                600_000,
                1,
            ),
        });
        let mut v2 = Vec::new();
        encode(&put, &mut v2);
        let mut v1 = b"SDLOG001".to_vec();
        v1.extend_from_slice(&v2[..8]);
        v1.extend_from_slice(&v2[12..]);
        fs::write(dir.join("log.00000001"), &v1).unwrap();

        let policy = CompactionPolicy {
            min_log_bytes: u64::MAX,
            ratio: 2,
        };
        let engine = Arc::new(Engine::new(EngineConfig::default(), Arc::new(SystemClock)));
        let (p, report) = Persistence::open(&dir, Fsync::No, policy, &engine).unwrap();
        assert_eq!(report.live_sessions, 1);
        p.shutdown();
        drop(p);
        assert_eq!(
            fs::read(dir.join("log.00000001")).unwrap(),
            v1,
            "left as it was"
        );
        assert_eq!(
            log_format(&dir, 2),
            Some(Format::V2),
            "new writes in format 2"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
