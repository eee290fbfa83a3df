//! The data directory: generations of snapshot and log files, and reading
//! their frames.
//!
//! `snapshot.G` holds every live session as of the start of generation G;
//! `log.G` holds every change made during generation G. Compaction starts
//! generation G+1 (`log.G+1`), writes `snapshot.G+1`, then deletes older
//! files. To recover: load the newest complete snapshot G (none: G = 0),
//! then replay every `log.g` with g >= G, oldest first. Records are absolute,
//! so a record the snapshot already holds replays harmlessly.
//!
//! Reading a file ([`scan`]) never stops at damage: it finds the next valid
//! frame and goes on, so start-up can tell a torn tail (nothing valid after
//! the damage) from damage in the middle, and `repair` can keep every sound
//! record.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{decode_payload, is_tag, Format, Record, RecordError};

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

/// Damage found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first byte that is not part of a good record.
    pub at: u64,
    /// What is wrong there.
    pub reason: String,
    /// Where the next valid frame starts; `None`: none follows (a torn tail).
    pub resumes_at: Option<u64>,
}

/// What reading a file came to.
#[derive(Debug, Default)]
pub struct Scan {
    /// The frame format its header announces; `None` if the header is
    /// damaged (the format was then guessed from the frames).
    pub header: Option<Format>,
    /// Whole, valid records before the first damage.
    pub records: u64,
    /// Whole, valid records after it (salvageable by `repair`).
    pub records_after: u64,
    /// Bytes up to the end of the last good record before any damage.
    pub good_bytes: u64,
    /// Bytes in the file.
    pub total_bytes: u64,
    /// Every damaged stretch, in file order.
    pub damage: Vec<Damage>,
    /// Bytes in damaged stretches.
    pub lost_bytes: u64,
}

impl Scan {
    /// The file's only damage is at its end with nothing valid after it: a
    /// crash mid-append, which start-up may cut.
    pub fn torn_tail_only(&self) -> bool {
        match self.damage.as_slice() {
            [] => false,
            [d] => d.resumes_at.is_none() && (self.header.is_some() || self.total_bytes < 8),
            _ => false,
        }
    }
}

/// A record as a scan hands it over.
pub struct Found {
    pub record: Record,
    /// It lies after damage: only a salvage may use it.
    pub after_damage: bool,
}

/// Reads every record of the file at `path`, of `kind`, handing each to
/// `each`; past damage it finds the next valid frame and goes on, so the
/// scan always covers the whole file. Memory stays bounded by the largest
/// record, whatever the file's size.
pub fn scan(path: &Path, kind: Kind, mut each: impl FnMut(Found)) -> std::io::Result<Scan> {
    let mut r = Window::open(path)?;
    let total = r.total;
    let magic = r.get(0, 8)?.map(<[u8]>::to_vec);
    let header = magic
        .as_deref()
        .and_then(|m| Format::of(m, kind == Kind::Snapshot));
    let (format, from) = match header {
        Some(f) => (f, 8),
        None => {
            // A damaged header: the frames may still be sound. Take the
            // framing that finds more of them.
            let v2 = walk(&mut r, Format::V2, 8, true, &mut |_| {})?;
            let v1 = walk(&mut r, Format::V1, 8, true, &mut |_| {})?;
            let f = if v1.records_after > v2.records_after {
                Format::V1
            } else {
                Format::V2
            };
            (f, 8)
        }
    };
    let mut report = walk(&mut r, format, from, header.is_none(), &mut each)?;
    report.header = header;
    report.total_bytes = total;
    if header.is_none() {
        // The frames' first damage, if it is right after the header, is the
        // header's: one stretch from byte 0 to the first valid frame.
        let first = report.damage.first().filter(|d| d.at == 8).cloned();
        let resumes_at = if report.records_after == 0 {
            None
        } else if let Some(d) = first {
            report.damage.remove(0);
            d.resumes_at
        } else {
            Some(8)
        };
        report.damage.insert(
            0,
            Damage {
                at: 0,
                reason: "missing or wrong file header".into(),
                resumes_at,
            },
        );
        report.good_bytes = 0;
        report.lost_bytes += 8.min(total);
    }
    Ok(report)
}

/// Walks the frames of `r` from `at`. With `damaged_from_start` every
/// record counts as after damage (the header was bad).
fn walk(
    r: &mut Window,
    format: Format,
    mut at: u64,
    damaged_from_start: bool,
    each: &mut dyn FnMut(Found),
) -> std::io::Result<Scan> {
    let mut report = Scan {
        good_bytes: at.min(r.total),
        ..Scan::default()
    };
    if damaged_from_start {
        // Find the first frame from `at` on.
        match resync(r, format, at)? {
            Some(next) => {
                if next > at {
                    report.damage.push(Damage {
                        at,
                        reason: "no valid record here".into(),
                        resumes_at: Some(next),
                    });
                    report.lost_bytes += next - at;
                }
                at = next;
            }
            None => {
                report.lost_bytes = r.total.saturating_sub(at);
                return Ok(report);
            }
        }
    }
    while at < r.total {
        match frame_at(r, format, at)? {
            Ok((record, used)) => {
                let after_damage = damaged_from_start || !report.damage.is_empty();
                if after_damage {
                    report.records_after += 1;
                } else {
                    report.records += 1;
                    report.good_bytes = at + used as u64;
                }
                each(Found {
                    record,
                    after_damage,
                });
                at += used as u64;
            }
            Err((reason, declared_end)) => {
                // A header that proves itself (format 2) says where its frame
                // ends: only past that can another frame start. Otherwise try
                // every byte after the damage.
                let next = match declared_end {
                    Some(end) if end > r.total => None,
                    Some(end) => resync(r, format, end)?,
                    None => resync(r, format, at + 1)?,
                };
                report.lost_bytes += next.unwrap_or(r.total) - at;
                report.damage.push(Damage {
                    at,
                    reason: reason.to_string(),
                    resumes_at: next,
                });
                match next {
                    Some(n) => at = n,
                    None => break,
                }
            }
        }
    }
    Ok(report)
}

/// The record of the frame at `at` and the bytes it takes; or why there is
/// none, with the frame's declared end when its header proved sound.
#[allow(clippy::type_complexity)]
fn frame_at(
    r: &mut Window,
    format: Format,
    at: u64,
) -> std::io::Result<Result<(Record, usize), (RecordError, Option<u64>)>> {
    let hl = format.header_len();
    let Some(h) = r.get(at, hl)? else {
        return Ok(Err((RecordError::Truncated, None)));
    };
    let (len, crc) = match format.header(h) {
        Ok(x) => x,
        Err(e) => return Ok(Err((e, None))),
    };
    let end = at + (hl + len) as u64;
    let proven = (format == Format::V2).then_some(end);
    let Some(payload) = r.get(at + hl as u64, len)? else {
        return Ok(Err((RecordError::Truncated, proven)));
    };
    Ok(match decode_payload(payload, crc) {
        Ok(record) => Ok((record, hl + len)),
        Err(e) => Err((e, proven)),
    })
}

/// The first offset at or after `from` where a whole, valid frame starts.
fn resync(r: &mut Window, format: Format, from: u64) -> std::io::Result<Option<u64>> {
    let hl = format.header_len() as u64;
    let mut at = from;
    while at + hl < r.total {
        if let Some(h) = r.get(at, hl as usize)? {
            // Cheap tests first: a plausible header (in format 2 its own
            // CRC), a payload that fits and starts with a known tag.
            if let Ok((len, _)) = format.header(h) {
                if at + hl + len as u64 <= r.total
                    && matches!(r.get(at + hl, 1)?, Some([t]) if is_tag(*t))
                    && frame_at(r, format, at)?.is_ok()
                {
                    return Ok(Some(at));
                }
            }
        }
        at += 1;
    }
    Ok(None)
}

/// Positioned reads through a window of the file, so a scan reads each byte
/// from the OS about once however often it looks.
struct Window {
    file: File,
    total: u64,
    start: u64,
    buf: Vec<u8>,
}

const WINDOW: usize = 1 << 20;

impl Window {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let total = file.metadata()?.len();
        Ok(Self {
            file,
            total,
            start: 0,
            buf: Vec::new(),
        })
    }

    /// `n` bytes at `at`, or `None` if the file ends first.
    fn get(&mut self, at: u64, n: usize) -> std::io::Result<Option<&[u8]>> {
        let end = at.saturating_add(n as u64);
        if end > self.total {
            return Ok(None);
        }
        let have = self.start + self.buf.len() as u64;
        if at < self.start || end > have {
            // The length is checked against the file above: this never
            // allocates more than the file holds.
            let want = n.max(WINDOW) as u64;
            let len = want.min(self.total - at) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let off = (at - self.start) as usize;
        Ok(Some(&self.buf[off..off + n]))
    }
}

/// fsyncs a directory so a create, rename or delete in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sessiond_core::{Mutation, SessionId};

    use super::*;
    use crate::persist::record::{encode, LOG_MAGIC};

    fn touch(i: u64) -> Record {
        Record::Mutation(Mutation::Touch {
            id: SessionId::new(Bytes::from(format!("id{i}"))),
            accessed_ms: i,
        })
    }

    /// A log of `n` records in format 2, and where each record starts.
    fn log(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = LOG_MAGIC.to_vec();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(buf.len());
            encode(&touch(i), &mut buf);
        }
        (buf, starts)
    }

    /// The same records framed as format 1 wrote them (no header CRC).
    fn log_v1(n: u64) -> Vec<u8> {
        let mut buf = b"SDLOG001".to_vec();
        for i in 0..n {
            let mut v2 = Vec::new();
            encode(&touch(i), &mut v2);
            buf.extend_from_slice(&v2[..8]);
            buf.extend_from_slice(&v2[12..]);
        }
        buf
    }

    fn scan_bytes(bytes: &[u8]) -> (Scan, Vec<(Record, bool)>) {
        let dir = std::env::temp_dir().join(format!(
            "sessiond-scan-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log.00000001");
        fs::write(&p, bytes).unwrap();
        let mut got = Vec::new();
        let s = scan(&p, Kind::Log, |f| got.push((f.record, f.after_damage))).unwrap();
        let _ = fs::remove_dir_all(&dir);
        (s, got)
    }

    #[test]
    fn a_damaged_record_is_skipped_and_every_later_one_found() {
        let (buf, starts) = log(20);
        // A payload byte, a length byte, a CRC byte of record 7.
        for off in [14usize, 1, 5] {
            let mut bad = buf.clone();
            bad[starts[7] + off] ^= 0x04;
            let (s, got) = scan_bytes(&bad);
            assert_eq!((s.records, s.records_after), (7, 12), "offset {off}");
            assert_eq!(s.damage.len(), 1);
            assert_eq!(s.damage[0].at, starts[7] as u64);
            assert_eq!(s.damage[0].resumes_at, Some(starts[8] as u64));
            assert!(!s.torn_tail_only());
            assert_eq!(got[7], (touch(8), true));
        }
    }

    #[test]
    fn a_cut_last_record_is_a_torn_tail() {
        let (buf, starts) = log(5);
        for cut in [starts[4] + 3, starts[4] + 13, buf.len() - 1] {
            let (s, _) = scan_bytes(&buf[..cut]);
            assert_eq!((s.records, s.records_after), (4, 0));
            assert_eq!(s.good_bytes, starts[4] as u64);
            assert!(s.torn_tail_only(), "cut at {cut}");
        }
        // Zeros after the last record (a file extended at a crash).
        let mut zeros = buf.clone();
        zeros.extend_from_slice(&[0; 4096]);
        assert!(scan_bytes(&zeros).0.torn_tail_only());
    }

    #[test]
    fn a_damaged_header_keeps_every_record_for_salvage() {
        let (mut buf, _) = log(10);
        buf[2] ^= 0x01;
        let (s, got) = scan_bytes(&buf);
        assert_eq!(s.header, None);
        assert_eq!((s.records, s.records_after), (0, 10));
        assert!(!s.torn_tail_only());
        assert!(got.iter().all(|(_, after)| *after));
        // A file too short for a header (a crash as it was created) is torn.
        assert!(scan_bytes(&buf[..5]).0.torn_tail_only());
    }

    #[test]
    fn format_1_files_are_read_and_resynchronised() {
        let buf = log_v1(10);
        let (s, got) = scan_bytes(&buf);
        assert_eq!(s.header, Some(Format::V1));
        assert_eq!((s.records, s.damage.len()), (10, 0));
        assert_eq!(got[9].0, touch(9));
        let mut bad = buf.clone();
        bad[8 + 3 * 27 + 10] ^= 0x40;
        let (s, _) = scan_bytes(&bad);
        assert_eq!((s.records, s.records_after), (3, 6));
    }
}
