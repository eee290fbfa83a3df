//! The log writer: appends from every connection are buffered under one
//! mutex and written by one thread, many records per write and per fsync
//! (group commit).

use crate::metrics::Histogram;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use sessiond_core::{Mutation, MutationLog};
use tokio::sync::watch;

use super::record::encode_mutation;

/// When a write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// A write is answered only after its record is fsynced.
    Always,
    /// Records are written within about a millisecond (gathered into one
    /// write) and fsynced about once a second.
    #[default]
    Everysec,
    /// Records are written within about a millisecond (gathered); the OS
    /// decides when they reach the disk.
    No,
}

impl Fsync {
    /// The policy as the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }
}

impl std::str::FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::Everysec),
            "no" => Ok(Fsync::No),
            _ => Err(format!("'{s}' is not one of always, everysec, no")),
        }
    }
}

struct Rotation {
    file: File,
    path: PathBuf,
    old: Vec<u8>,
}

/// Records waiting for the writer thread.
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record put in `buf`.
    appended: u64,
    /// Someone needs an fsync now (a durable append), whatever the policy.
    force_sync: bool,
    /// A switch of files: records appended before it (`old`) go to the old
    /// file, `buf` to the new one.
    rotation: Option<Rotation>,
    stop: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Sequence number of the last record on disk (per the policy).
    durable_sync: Mutex<u64>,
    durable_cond: Condvar,
    durable_tx: watch::Sender<u64>,
    /// Bytes in the current log file.
    file_bytes: AtomicU64,
    policy: Fsync,
    /// How long each fsync took.
    fsyncs: Histogram,
}

/// The log: a [`MutationLog`] backed by a file and a writer thread.
pub struct LogWriter {
    shared: Arc<Shared>,
    durable_rx: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LogWriter {
    /// Starts writing to `file` (already positioned at its end, `len` bytes).
    pub fn start(file: File, len: u64, policy: Fsync) -> Arc<Self> {
        let (durable_tx, durable_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                appended: 0,
                force_sync: false,
                rotation: None,
                stop: false,
            }),
            wake: Condvar::new(),
            durable_sync: Mutex::new(0),
            durable_cond: Condvar::new(),
            durable_tx,
            file_bytes: AtomicU64::new(len),
            policy,
            fsyncs: Histogram::default(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sessiond-log".into())
            .spawn(move || write_loop(&thread_shared, file))
            .ok();
        Arc::new(Self {
            shared,
            durable_rx,
            thread: Mutex::new(thread),
        })
    }

    /// The fsync policy.
    pub fn policy(&self) -> Fsync {
        self.shared.policy
    }

    /// Sequence number of the last record appended so far.
    pub fn appended(&self) -> u64 {
        self.shared.pending.lock().appended
    }

    /// Resolves once every record up to `seq` is durable.
    pub async fn wait_durable(&self, seq: u64) {
        let mut rx = self.durable_rx.clone();
        let _ = rx.wait_for(|&d| d >= seq).await;
    }

    /// Records appended and not yet durable per the policy.
    pub fn pending(&self) -> u64 {
        let durable = *self.durable_rx.borrow();
        self.appended().saturating_sub(durable)
    }

    /// How long each fsync of the log took.
    pub(crate) fn fsyncs(&self) -> &Histogram {
        &self.shared.fsyncs
    }

    /// Bytes in the current log file, written or about to be.
    pub fn file_bytes(&self) -> u64 {
        self.shared.file_bytes.load(Ordering::Relaxed)
    }

    /// From the next record on, writes go to `file`; every record appended
    /// before this call goes to the old file, which is fsynced and closed.
    /// The switch happens at this call, under the append lock: a snapshot
    /// started after it returns sees every record the old file gets.
    pub fn rotate(&self, file: File, path: PathBuf) {
        let mut p = self.shared.pending.lock();
        let old = std::mem::take(&mut p.buf);
        p.rotation = Some(Rotation { file, path, old });
        self.shared.file_bytes.store(0, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Writes and fsyncs everything appended, then stops the thread.
    pub fn shutdown(&self) {
        {
            let mut p = self.shared.pending.lock();
            p.stop = true;
            self.shared.wake.notify_one();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    fn push(&self, m: &Mutation, force_sync: bool) -> u64 {
        let mut p = self.shared.pending.lock();
        let before = p.buf.len();
        encode_mutation(m, &mut p.buf);
        self.shared
            .file_bytes
            .fetch_add((p.buf.len() - before) as u64, Ordering::Relaxed);
        p.appended += 1;
        p.force_sync |= force_sync;
        let seq = p.appended;
        // The writer is woken by the first record after it emptied the
        // buffer (later ones find it awake, gathering: see `write_loop`),
        // by a record that must be fsynced, and by a full batch.
        if before == 0 || force_sync || p.buf.len() >= GATHER_BYTES {
            self.shared.wake.notify_one();
        }
        seq
    }
}

impl MutationLog for LogWriter {
    fn append(&self, m: &Mutation) {
        self.push(m, false);
    }

    fn append_durable(&self, m: &Mutation) {
        let seq = self.push(m, true);
        let mut d = self.shared.durable_sync.lock();
        while *d < seq {
            // The writer thread never takes a shard lock, so waiting here
            // (with one held) cannot deadlock.
            self.shared
                .durable_cond
                .wait_for(&mut d, Duration::from_millis(100));
            if self.shared.pending.lock().stop && *d < seq {
                break;
            }
        }
    }
}

/// How long the writer gathers records before writing them, under
/// `everysec` and `no` (see `write_loop`).
const GATHER: Duration = Duration::from_millis(1);

/// A batch this big is written without waiting for more.
const GATHER_BYTES: usize = 64 * 1024;

fn write_loop(shared: &Shared, mut file: File) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        let (buf, upto, force, rotation, stop) = {
            let mut p = shared.pending.lock();
            while p.buf.is_empty() && p.rotation.is_none() && !p.stop && !p.force_sync {
                let timed_out = shared
                    .wake
                    .wait_for(&mut p, Duration::from_millis(200))
                    .timed_out();
                if timed_out && dirty && shared.policy == Fsync::Everysec {
                    break;
                }
            }
            // Under `everysec` and `no`, a batch is gathered for a moment
            // before it is written: one write for the records of many
            // requests, and one wake-up of this thread, instead of one per
            // record (which, on a busy machine, took the request threads'
            // CPU). Records are handed to the OS within about `GATHER`.
            if shared.policy != Fsync::Always
                && !p.force_sync
                && !p.stop
                && p.rotation.is_none()
                && !p.buf.is_empty()
                && p.buf.len() < GATHER_BYTES
            {
                let _ = shared.wake.wait_for(&mut p, GATHER);
            }
            let buf = std::mem::replace(&mut p.buf, Vec::with_capacity(64 * 1024));
            let force = std::mem::take(&mut p.force_sync);
            (buf, p.appended, force, p.rotation.take(), p.stop)
        };
        if let Some(r) = rotation {
            write_or_die(&mut file, &r.old);
            sync_or_die(&file, &shared.fsyncs);
            tracing::debug!(path = %r.path.display(), "log rotated");
            file = r.file;
            dirty = false;
        }
        if !buf.is_empty() {
            write_or_die(&mut file, &buf);
            dirty = true;
        }
        let sync_now = force
            || stop
            || shared.policy == Fsync::Always
            || (shared.policy == Fsync::Everysec
                && dirty
                && last_sync.elapsed() >= Duration::from_secs(1));
        if sync_now && dirty {
            sync_or_die(&file, &shared.fsyncs);
            dirty = false;
            last_sync = Instant::now();
        }
        // Under `always` a record counts as durable once fsynced; under the
        // other policies once written (their promise is the policy's window).
        if !dirty || shared.policy != Fsync::Always {
            *shared.durable_sync.lock() = upto;
            shared.durable_cond.notify_all();
            shared.durable_tx.send_replace(upto);
        }
        if stop {
            return;
        }
    }
}

/// Nothing acknowledged may be lost: if the log cannot be written that
/// promise cannot be kept, so the process stops loudly instead of going on.
fn write_or_die(file: &mut File, buf: &[u8]) {
    if let Err(e) = file.write_all(buf) {
        tracing::error!(error = %e, "cannot write the log; stopping");
        std::process::exit(70);
    }
}

fn sync_or_die(file: &File, took: &Histogram) {
    let started = Instant::now();
    let synced = file.sync_data();
    took.observe(started.elapsed());
    if let Err(e) = synced {
        tracing::error!(error = %e, "cannot fsync the log; stopping");
        std::process::exit(70);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sessiond_core::SessionId;

    use super::super::record::{decode, Format, Record};
    use super::*;

    fn remove(i: usize) -> Mutation {
        Mutation::Remove {
            id: SessionId::new(Bytes::from(format!("s{i}"))),
        }
    }

    /// Under `everysec` the writer gathers records for a moment: a lone
    /// record and a burst from two threads both reach the file, whole and
    /// in order, long before the policy's second (bounded here at 2 s).
    #[test]
    fn gathered_records_reach_the_file_soon_and_in_order() {
        let path = std::env::temp_dir().join(format!("sessiond-gather-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let log = LogWriter::start(file, 0, Fsync::Everysec);
        let written = |log: &LogWriter| {
            let deadline = Instant::now() + Duration::from_secs(2);
            while std::fs::metadata(&path).unwrap().len() < log.file_bytes() {
                assert!(Instant::now() < deadline, "records not written within 2 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        log.append(&remove(0));
        written(&log);
        let burst = |from: usize, log: Arc<LogWriter>| {
            std::thread::spawn(move || {
                for i in from..from + 5_000 {
                    log.append(&remove(i));
                }
            })
        };
        let (a, b) = (burst(1, log.clone()), burst(5_001, log.clone()));
        a.join().unwrap();
        b.join().unwrap();
        written(&log);
        log.shutdown();
        // Every record, each thread's in its own order.
        let bytes = std::fs::read(&path).unwrap();
        let (mut at, mut ids) = (0, Vec::new());
        while at < bytes.len() {
            let (record, took) = decode(Format::V2, &bytes[at..]).unwrap();
            let Record::Mutation(Mutation::Remove { id }) = record else {
                panic!("{record:?}")
            };
            ids.push(String::from_utf8(id.as_bytes().to_vec()).unwrap());
            at += took;
        }
        assert_eq!(ids.len(), 10_001);
        assert_eq!(ids[0], "s0");
        for (from, to) in [(1, 5_001), (5_001, 10_001)] {
            let theirs: Vec<usize> = ids
                .iter()
                .filter_map(|id| id[1..].parse().ok())
                .filter(|i| (from..to).contains(i))
                .collect();
            assert_eq!(theirs, (from..to).collect::<Vec<_>>());
        }
        let _ = std::fs::remove_file(&path);
    }
}
