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

use self::files::{generations, path, read_frames, sync_dir, Kind};
pub use self::inspect::{check, dump};
pub use self::log::{Fsync, LogWriter};
use self::record::{encode, Record, LOG_MAGIC, SNAPSHOT_MAGIC};
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
}

impl std::str::FromStr for Storage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "log" => Ok(Storage::Log),
            "memory" => Ok(Storage::Memory),
            _ => Err(format!("'{s}' is not one of log, memory")),
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
        let started = Instant::now();
        let (mut report, base, logs, snapshot_bytes) = recover(dir, engine, true)?;

        let generation = logs.last().copied().unwrap_or(base.max(1));
        let (file, len) = open_log(dir, generation).map_err(|e| io("cannot open the log", e))?;
        let writer = LogWriter::start(file, len, fsync);
        engine.install_log(writer.clone());
        // Older files than the snapshot are no longer needed.
        remove_older(dir, base);

        report.millis = started.elapsed().as_millis();
        let me = Arc::new(Self {
            dir: dir.to_path_buf(),
            engine: engine.clone(),
            writer,
            generation: Mutex::new(generation),
            snapshot_bytes: Mutex::new(snapshot_bytes),
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
    /// shard at a time (requests go on meanwhile), then deletes the files it
    /// replaces. Returns the snapshot's size in bytes.
    pub fn compact(&self) -> Result<u64, ServerError> {
        let started = Instant::now();
        let io = |what: &str, e: std::io::Error| ServerError::Storage(format!("{what}: {e}"));
        let next = *self.generation.lock() + 1;
        let (file, _) = open_log(&self.dir, next).map_err(|e| io("cannot start a new log", e))?;
        self.writer.rotate(file, path(&self.dir, Kind::Log, next));
        *self.generation.lock() = next;

        let final_path = path(&self.dir, Kind::Snapshot, next);
        let tmp = final_path.with_extension("tmp");
        let f = File::create(&tmp).map_err(|e| io("cannot create the snapshot", e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(SNAPSHOT_MAGIC)
            .map_err(|e| io("cannot write the snapshot", e))?;
        let mut sessions = 0u64;
        let mut buf = Vec::with_capacity(1 << 16);
        let now = self.engine.now_ms();
        // Keys handed out so far are below next + KEY_BLOCK whatever the
        // reservations in the logs about to be deleted said.
        encode(
            &Record::Mutation(Mutation::FencingKeys {
                up_to: self.engine.next_fencing_key().saturating_add(KEY_BLOCK),
            }),
            &mut buf,
        );
        for i in 0..self.engine.shard_count() {
            for (id, session) in self.engine.shard_sessions(i) {
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
        let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        fs::rename(&tmp, &final_path).map_err(|e| io("cannot install the snapshot", e))?;
        sync_dir(&self.dir).map_err(|e| io("cannot sync the data directory", e))?;
        remove_older(&self.dir, next);
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

/// Loads the newest whole snapshot of `dir` and replays the logs after it
/// into `engine`. With `repair`, a damaged tail of the newest log is cut off
/// so that logging can resume after it; without, nothing is changed on disk.
/// Returns the report, the snapshot's generation (0: none), the log
/// generations replayed, and the snapshot's size in bytes.
pub fn recover(
    dir: &Path,
    engine: &Engine,
    repair: bool,
) -> Result<(RecoveryReport, u64, Vec<u64>, u64), ServerError> {
    let io = |what: &str, e: std::io::Error| {
        ServerError::Storage(format!("{what} in {}: {e}", dir.display()))
    };
    let mut report = RecoveryReport::default();

    // The newest snapshot that reads whole.
    let mut base = 0;
    let mut snapshot_bytes = 0;
    let snaps = generations(dir, Kind::Snapshot).map_err(|e| io("cannot list", e))?;
    for &g in snaps.iter().rev() {
        let p = path(dir, Kind::Snapshot, g);
        // First pass: is it whole? Only then apply it (second pass), so a
        // damaged snapshot never half-fills the engine.
        let mut records = 0u64;
        let mut end = None;
        let r = read_frames(&p, SNAPSHOT_MAGIC, |rec| {
            records += 1;
            end = match rec {
                Record::End { sessions } => Some(sessions),
                Record::Mutation(_) => None,
            };
        })
        .map_err(|e| io("cannot read a snapshot", e))?;
        let complete = matches!(end, Some(sessions) if sessions + 2 == records);
        if r.damage.is_some() || !complete {
            tracing::error!(
                file = %p.display(),
                damage = r.damage.as_deref().unwrap_or("no end marker"),
                "snapshot is damaged; trying an older one"
            );
            continue;
        }
        read_frames(&p, SNAPSHOT_MAGIC, |rec| {
            if let Record::Mutation(m) = rec {
                if matches!(m, Mutation::Put { .. }) {
                    report.snapshot_sessions += 1;
                }
                engine.apply(m);
            }
        })
        .map_err(|e| io("cannot read a snapshot", e))?;
        base = g;
        snapshot_bytes = r.total_bytes;
        report.snapshot_generation = Some(g);
        break;
    }

    // Every log from the snapshot's generation on; a damaged tail of the
    // newest is cut off, and logging resumes after it.
    let logs: Vec<u64> = generations(dir, Kind::Log)
        .map_err(|e| io("cannot list", e))?
        .into_iter()
        .filter(|&g| g >= base)
        .collect();
    if base > 0 && logs.first() != Some(&base) {
        tracing::warn!(
            generation = base,
            "the log of the snapshot's generation is missing"
        );
    }
    if report.snapshot_generation.is_none() && !snaps.is_empty() {
        tracing::error!(
            "no snapshot could be read: sessions from before the oldest remaining log are lost"
        );
    }
    for (i, &g) in logs.iter().enumerate() {
        let p = path(dir, Kind::Log, g);
        let r = read_frames(&p, LOG_MAGIC, |rec| {
            if let Record::Mutation(m) = rec {
                engine.apply(m);
            }
        })
        .map_err(|e| io("cannot read the log", e))?;
        report.log_records += r.records;
        if let Some(damage) = r.damage {
            let dropped = r.total_bytes - r.good_bytes;
            tracing::warn!(
                file = %p.display(),
                damage,
                kept_records = r.records,
                dropped_bytes = dropped,
                "log ends in a damaged record; keeping everything before it"
            );
            report.truncated_bytes += dropped;
            if repair && i + 1 == logs.len() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| io("cannot open the log", e))?;
                // A file too damaged to have a header is started afresh.
                let keep = if r.good_bytes < 8 { 0 } else { r.good_bytes };
                f.set_len(keep)
                    .map_err(|e| io("cannot truncate the log", e))?;
                f.sync_all().map_err(|e| io("cannot sync the log", e))?;
            }
        }
    }
    // Sessions that expired while the server was down go at once.
    while engine.tick().expired_sessions > 0 {}
    report.live_sessions = engine.session_count();
    Ok((report, base, logs, snapshot_bytes))
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

/// Deletes snapshots and logs of generations before `gen`.
fn remove_older(dir: &Path, gen: u64) {
    for kind in [Kind::Snapshot, Kind::Log] {
        if let Ok(gens) = generations(dir, kind) {
            for g in gens.into_iter().filter(|&g| g < gen) {
                let p = path(dir, kind, g);
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!(file = %p.display(), error = %e, "cannot remove an old file");
                }
            }
        }
    }
    let _ = sync_dir(dir);
}
