//! The data directory: generations of snapshot and log files, and reading
//! their frames.
//!
//! `snapshot.G` holds every live session as of the start of generation G;
//! `log.G` holds every change made during generation G. Compaction starts
//! generation G+1 (`log.G+1`), writes `snapshot.G+1`, then deletes older
//! files. To recover: load the newest complete snapshot G (none: G = 0),
//! then replay every `log.g` with g >= G, oldest first. Records are absolute,
//! so a record the snapshot already holds replays harmlessly.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::record::{decode, Record, RecordError, FRAME_HEADER, MAX_RECORD};

/// Which kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Snapshot,
    Log,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot.",
            Kind::Log => "log.",
        }
    }
}

/// The path of generation `gen`'s file of `kind` in `dir`.
pub fn path(dir: &Path, kind: Kind, gen: u64) -> PathBuf {
    dir.join(format!("{}{gen:08}", kind.prefix()))
}

/// The generations present in `dir` for `kind`, oldest first.
pub fn generations(dir: &Path, kind: Kind) -> std::io::Result<Vec<u64>> {
    let mut gens = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix(kind.prefix()) {
            if let Ok(g) = n.parse::<u64>() {
                gens.push(g);
            }
        }
    }
    gens.sort_unstable();
    Ok(gens)
}

/// What reading a file's frames came to.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Whole, valid records read.
    pub records: u64,
    /// Bytes up to the end of the last good record (magic included).
    pub good_bytes: u64,
    /// Bytes in the file.
    pub total_bytes: u64,
    /// Why reading stopped early, if it did.
    pub damage: Option<String>,
}

/// Reads every frame of the file at `path` (after its 8-byte `magic`),
/// handing each record to `each`, until the end or the first damage.
pub fn read_frames(
    path: &Path,
    magic: &[u8; 8],
    mut each: impl FnMut(Record),
) -> std::io::Result<ReadReport> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut report = ReadReport {
        total_bytes: total,
        ..ReadReport::default()
    };
    let mut head = [0u8; 8];
    if read_full(&mut r, &mut head)? < 8 || &head != magic {
        report.damage = Some("missing or wrong file header".into());
        return Ok(report);
    }
    report.good_bytes = 8;
    let mut frame = Vec::new();
    loop {
        let mut header = [0u8; FRAME_HEADER];
        let n = read_full(&mut r, &mut header)?;
        if n == 0 {
            return Ok(report);
        }
        if n < FRAME_HEADER {
            report.damage = Some(RecordError::Truncated.to_string());
            return Ok(report);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        // Check the length against the file before allocating for it.
        if len == 0 || len > MAX_RECORD || report.good_bytes + (FRAME_HEADER + len) as u64 > total {
            report.damage = Some(if len > MAX_RECORD || len == 0 {
                RecordError::BadLength(len as u64).to_string()
            } else {
                RecordError::Truncated.to_string()
            });
            return Ok(report);
        }
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(FRAME_HEADER + len, 0);
        if read_full(&mut r, &mut frame[FRAME_HEADER..])? < len {
            report.damage = Some(RecordError::Truncated.to_string());
            return Ok(report);
        }
        match decode(&frame) {
            Ok((record, used)) => {
                each(record);
                report.records += 1;
                report.good_bytes += used as u64;
            }
            Err(e) => {
                report.damage = Some(e.to_string());
                return Ok(report);
            }
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}

/// fsyncs a directory so a create, rename or delete in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
