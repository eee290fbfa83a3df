//! Reading a data directory back: the strict recovery start-up runs, and
//! the salvage that `repair` and `dump` run.
//!
//! Start-up cuts only a torn tail: damage at the end of the newest log with
//! no valid record after it (a crash mid-append). Any other damage — a
//! damaged record with sound ones after it, a damaged header, a damaged
//! snapshot that no older generation covers, a missing log — stops start-up
//! with a message that names the file, the offset, what starting would lose
//! and the command that resolves it, and nothing on disk is changed.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use sessiond_core::{Engine, Mutation};

use super::files::{generations, path, scan, Kind, Scan};
use super::record::Record;
use super::RecoveryReport;
use crate::error::ServerError;

/// What strict recovery loaded.
#[derive(Debug, Default)]
pub struct Recovered {
    pub report: RecoveryReport,
    /// The snapshot generation loaded (0: none).
    pub base: u64,
    /// The newest log generation present.
    pub last_log: Option<u64>,
    /// Bytes of the snapshot loaded.
    pub snapshot_bytes: u64,
    /// Damaged snapshots that an older generation covered: left in place,
    /// never to be deleted by compaction (`repair` moves them aside).
    pub quarantined: Vec<PathBuf>,
}

/// A snapshot is sound when it reads without damage and ends with a marker
/// that counts its sessions (the fencing-key record, the sessions, the end).
pub(super) fn snapshot_sound(p: &Path) -> std::io::Result<(Scan, bool)> {
    let mut records = 0u64;
    let mut end = None;
    let s = scan(p, Kind::Snapshot, |f| {
        records += 1;
        end = match f.record {
            Record::End { sessions } => Some(sessions),
            Record::Mutation(_) => None,
        };
    })?;
    let complete = matches!(end, Some(n) if n + 2 == records);
    let sound = s.damage.is_empty() && complete;
    Ok((s, sound))
}

/// The log generations a base needs that are not there: `base..=last`
/// (from 1 when there is no snapshot).
pub(super) fn missing_logs(logs: &[u64], base: u64) -> Vec<u64> {
    let Some(&last) = logs.last() else {
        return if base > 0 { vec![base] } else { Vec::new() };
    };
    (base.max(1)..=last.max(base))
        .filter(|g| logs.binary_search(g).is_err())
        .collect()
}

/// One line on a file's first damage, for messages.
pub(super) fn describe(p: &Path, s: &Scan) -> String {
    let mut out = format!("{}", p.display());
    if let Some(d) = s.damage.first() {
        let _ = write!(out, " is damaged at byte {} ({})", d.at, d.reason);
        if s.records_after > 0 {
            let _ = write!(out, "; {} valid records follow it", s.records_after);
        }
    }
    out
}

/// Loads the newest sound snapshot of `dir` and replays the logs after it
/// into `engine`. With `cut_torn_tail`, a torn tail of the newest log is cut
/// so that logging resumes after it; without, nothing on disk is changed
/// (`check`). Any other damage is an error that says what to do.
pub fn recover(dir: &Path, engine: &Engine, cut_torn_tail: bool) -> Result<Recovered, ServerError> {
    let io = |what: &str, e: std::io::Error| {
        ServerError::Storage(format!("{what} in {}: {e}", dir.display()))
    };
    let snaps = generations(dir, Kind::Snapshot).map_err(|e| io("cannot list", e))?;
    let logs = generations(dir, Kind::Log).map_err(|e| io("cannot list", e))?;
    let mut out = Recovered {
        last_log: logs.last().copied(),
        ..Recovered::default()
    };
    let mut problems: Vec<String> = Vec::new();

    // The newest sound snapshot whose logs are all there; a damaged newer
    // one is passed over only when the older generation holds everything
    // it held.
    let mut skipped = Vec::new();
    let mut base = None;
    for &g in snaps.iter().rev() {
        let p = path(dir, Kind::Snapshot, g);
        let (s, sound) = snapshot_sound(&p).map_err(|e| io("cannot read a snapshot", e))?;
        if !sound {
            let mut line = describe(&p, &s);
            if s.damage.is_empty() {
                let _ = write!(
                    line,
                    " ends at byte {} without the end marker that counts its sessions (it is cut short)",
                    s.total_bytes
                );
            }
            skipped.push((g, p, line));
            continue;
        }
        base = Some((g, s.total_bytes));
        break;
    }
    let (g, bytes) = base.unwrap_or((0, 0));
    let mut missing = missing_logs(&logs, g);
    if base.is_none() {
        // Logs older than a damaged snapshot were compacted into it: it is
        // their loss that the snapshot's line reports.
        if let Some(oldest) = skipped.iter().map(|s| s.0).min() {
            missing.retain(|&m| m >= oldest);
        }
    }
    let chain_broken = !missing.is_empty()
        || base.is_none() && !skipped.is_empty() && {
            // Without a sound snapshot the logs must reach back to the start.
            logs.first() != Some(&1)
        };
    if chain_broken {
        for (_, _, line) in &skipped {
            problems.push(format!(
                "{line}: the sessions it holds exist in no other file"
            ));
        }
        for m in &missing {
            problems.push(format!(
                "{} is missing: the changes made in generation {m} exist in no other file",
                path(dir, Kind::Log, *m).display()
            ));
        }
        return Err(needs_repair(dir, &problems));
    }
    for (_, p, line) in skipped {
        tracing::error!(
            "{line}; starting from {} and the logs after it, which hold everything it held. \
             `sessiond repair --data-dir {}` moves it aside",
            if g == 0 {
                "the first log".to_string()
            } else {
                path(dir, Kind::Snapshot, g).display().to_string()
            },
            dir.display()
        );
        out.quarantined.push(p);
    }
    out.base = g;
    out.snapshot_bytes = bytes;
    if g > 0 {
        let p = path(dir, Kind::Snapshot, g);
        scan(&p, Kind::Snapshot, |f| {
            if let Record::Mutation(m) = f.record {
                if matches!(m, Mutation::Put { .. }) {
                    out.report.snapshot_sessions += 1;
                }
                engine.apply(m);
            }
        })
        .map_err(|e| io("cannot read a snapshot", e))?;
        out.report.snapshot_generation = Some(g);
    }

    let replay: Vec<u64> = logs.iter().copied().filter(|&l| l >= g).collect();
    for (i, &l) in replay.iter().enumerate() {
        let p = path(dir, Kind::Log, l);
        let s = scan(&p, Kind::Log, |f| {
            if let (false, Record::Mutation(m)) = (f.after_damage, f.record) {
                engine.apply(m);
            }
        })
        .map_err(|e| io("cannot read the log", e))?;
        out.report.log_records += s.records;
        if s.damage.is_empty() {
            continue;
        }
        if !s.torn_tail_only() {
            problems.push(format!("{}: starting would lose them", describe(&p, &s)));
            continue;
        }
        let dropped = s.total_bytes - s.good_bytes;
        out.report.truncated_bytes += dropped;
        let newest = i + 1 == replay.len();
        tracing::warn!(
            file = %p.display(),
            damage = %s.damage[0].reason,
            kept_records = s.records,
            dropped_bytes = dropped,
            "log ends in a torn record (a crash mid-write); keeping everything before it"
        );
        if cut_torn_tail && newest {
            let f = OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| io("cannot open the log", e))?;
            f.set_len(s.good_bytes)
                .map_err(|e| io("cannot truncate the log", e))?;
            f.sync_all().map_err(|e| io("cannot sync the log", e))?;
        }
    }
    if !problems.is_empty() {
        return Err(needs_repair(dir, &problems));
    }
    // Sessions that expired while the server was down go at once.
    while engine.tick().expired_sessions > 0 {}
    out.report.live_sessions = engine.session_count();
    Ok(out)
}

fn needs_repair(dir: &Path, problems: &[String]) -> ServerError {
    let mut msg = String::new();
    for p in problems {
        msg.push_str(p);
        msg.push_str(". ");
    }
    let _ = write!(
        msg,
        "Nothing was changed on disk. `sessiond repair --data-dir {d}` keeps every \
         sound record and moves the damaged files aside as *.damaged; \
         `sessiond check --data-dir {d}` lists the damage",
        d = dir.display()
    );
    ServerError::NeedsRepair(msg)
}

/// What a salvage read from one file.
#[derive(Debug)]
pub struct Salvaged {
    pub path: PathBuf,
    pub scan: Scan,
    /// A snapshot without its end marker (written only in part).
    pub incomplete: bool,
}

/// What a salvage loaded.
#[derive(Debug, Default)]
pub struct Salvage {
    /// Every file, damaged or not.
    pub files: Vec<Salvaged>,
    /// Log generations missing from the chain that was loaded.
    pub missing_logs: Vec<u64>,
    /// The sound snapshot the load started from (0: none).
    pub base: u64,
}

impl Salvage {
    /// Whether anything is damaged or missing.
    pub fn damaged(&self) -> bool {
        !self.missing_logs.is_empty()
            || self
                .files
                .iter()
                .any(|f| !f.scan.damage.is_empty() || f.incomplete)
    }
}

/// Loads every sound record of `dir` into `engine`, past damage: the
/// newest sound snapshot, then in generation order every record of the logs
/// after it and the sessions of any damaged snapshot after it. Reads every
/// file, and changes none.
pub fn salvage(dir: &Path, engine: &Engine) -> Result<Salvage, ServerError> {
    let io = |what: &str, e: std::io::Error| {
        ServerError::Storage(format!("{what} in {}: {e}", dir.display()))
    };
    let snaps = generations(dir, Kind::Snapshot).map_err(|e| io("cannot list", e))?;
    let logs = generations(dir, Kind::Log).map_err(|e| io("cannot list", e))?;
    let mut out = Salvage::default();
    for &g in snaps.iter().rev() {
        let (_, sound) = snapshot_sound(&path(dir, Kind::Snapshot, g))
            .map_err(|e| io("cannot read a snapshot", e))?;
        if sound {
            out.base = g;
            break;
        }
    }
    let start = if out.base > 0 {
        out.base
    } else {
        snaps.iter().chain(&logs).copied().min().unwrap_or(1)
    };
    out.missing_logs = missing_logs(&logs, out.base);
    let mut gens: Vec<u64> = snaps.iter().chain(&logs).copied().collect();
    gens.sort_unstable();
    gens.dedup();
    let mut lost = false;
    let mut reserved = 0u64;
    for g in gens {
        for kind in [Kind::Snapshot, Kind::Log] {
            let p = path(dir, kind, g);
            let present = match kind {
                Kind::Snapshot => snaps.binary_search(&g).is_ok(),
                Kind::Log => logs.binary_search(&g).is_ok(),
            };
            if !present {
                continue;
            }
            let apply = g >= start;
            let mut end = None;
            let mut records = 0u64;
            let s = scan(&p, kind, |f| {
                records += 1;
                match f.record {
                    Record::End { sessions } => end = Some(sessions),
                    Record::Mutation(m) => {
                        end = None;
                        if let Mutation::FencingKeys { up_to } = m {
                            reserved = reserved.max(up_to);
                        }
                        if apply {
                            engine.apply(m);
                        }
                    }
                }
            })
            .map_err(|e| io("cannot read", e))?;
            let incomplete = kind == Kind::Snapshot && !matches!(end, Some(n) if n + 2 == records);
            lost |= !s.damage.is_empty() || incomplete;
            out.files.push(Salvaged {
                path: p,
                scan: s,
                incomplete,
            });
        }
    }
    if lost || !out.missing_logs.is_empty() {
        // A lost reservation record could let keys repeat: continue far
        // above every key any file mentions.
        let up_to = engine
            .next_fencing_key()
            .max(reserved)
            .saturating_add(FENCING_MARGIN);
        engine.apply(Mutation::FencingKeys { up_to });
    }
    while engine.tick().expired_sessions > 0 {}
    Ok(out)
}

/// How far above every known key a salvage continues: far more keys than
/// any lost reservation can have covered (each covers 65,536).
const FENCING_MARGIN: u64 = 1 << 32;
