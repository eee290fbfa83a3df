//! `sessiond repair`: the explicit salvage of a damaged data directory.
//!
//! Never run by start-up. It reads every sound record of every file (past
//! damage, see `files::scan`), writes them as one new verified snapshot
//! generation, and only then moves each damaged file aside as
//! `<name>.damaged`, so nothing is deleted and the directory starts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sessiond_core::{Engine, EngineConfig, SystemClock};

use super::files::{generations, path, sync_dir, Kind};
use super::recovery::{salvage, Salvage};
use super::{lock_dir, open_log, write_snapshot};
use crate::error::ServerError;

/// Repairs `dir` and every tenant directory under it (`tenants/*`),
/// reporting to `out`. Returns whether anything was changed.
pub fn repair(dir: &Path, out: &mut impl Write) -> Result<bool, ServerError> {
    let mut changed = false;
    for d in data_dirs(dir)? {
        changed |= repair_one(&d, out)?;
    }
    Ok(changed)
}

/// `dir`, then each tenant's directory under it.
pub(crate) fn data_dirs(dir: &Path) -> Result<Vec<PathBuf>, ServerError> {
    if !dir.is_dir() {
        return Err(ServerError::Storage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(dir.join("tenants")) {
        let mut tenants: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        tenants.sort();
        dirs.extend(tenants);
    }
    Ok(dirs)
}

fn repair_one(dir: &Path, out: &mut impl Write) -> Result<bool, ServerError> {
    let io = |e: std::io::Error| ServerError::Storage(format!("{}: {e}", dir.display()));
    let _lock = lock_dir(dir)?;
    let engine = Engine::new(EngineConfig::default(), Arc::new(SystemClock));
    let found = salvage(dir, &engine)?;
    report(dir, &found, out).map_err(io)?;
    if !found.damaged() {
        writeln!(out, "{}: nothing to repair", dir.display()).map_err(io)?;
        return Ok(false);
    }

    // One new generation above every file: a snapshot of all that was
    // salvaged and an empty log. Until both are in place the old files
    // are untouched.
    let newest = [Kind::Snapshot, Kind::Log]
        .iter()
        .filter_map(|&k| generations(dir, k).ok()?.last().copied())
        .max()
        .unwrap_or(0);
    let gen = newest + 1;
    let (bytes, sessions) = write_snapshot(dir, gen, &engine)?;
    open_log(dir, gen).map_err(io)?;
    writeln!(
        out,
        "{}: wrote {} sessions, {bytes} bytes, read back whole",
        path(dir, Kind::Snapshot, gen).display(),
        sessions
    )
    .map_err(io)?;

    for f in &found.files {
        if f.scan.damage.is_empty() && !f.incomplete {
            continue;
        }
        let aside = aside_name(&f.path);
        fs::rename(&f.path, &aside).map_err(io)?;
        writeln!(
            out,
            "{}: moved aside as {}",
            f.path.display(),
            aside.display()
        )
        .map_err(io)?;
    }
    sync_dir(dir).map_err(io)?;
    writeln!(
        out,
        "{}: repaired; the server starts with these {sessions} sessions",
        dir.display()
    )
    .map_err(io)?;
    Ok(true)
}

/// One line per damaged or missing file: what was kept, what was lost.
fn report(dir: &Path, found: &Salvage, out: &mut impl Write) -> std::io::Result<()> {
    for f in &found.files {
        if f.scan.damage.is_empty() && !f.incomplete {
            continue;
        }
        let kept = f.scan.records + f.scan.records_after;
        let mut line = format!(
            "{}: kept {kept} records ({} after the damage)",
            f.path.display(),
            f.scan.records_after
        );
        if !f.scan.damage.is_empty() {
            let places: Vec<String> = f
                .scan
                .damage
                .iter()
                .map(|d| format!("byte {}: {}", d.at, d.reason))
                .collect();
            line.push_str(&format!(
                "; lost {} bytes in {} damaged stretch(es) ({})",
                f.scan.lost_bytes,
                f.scan.damage.len(),
                places.join("; ")
            ));
        }
        if f.incomplete {
            line.push_str("; the snapshot has no valid end marker");
        }
        writeln!(out, "{line}")?;
    }
    for g in &found.missing_logs {
        writeln!(
            out,
            "{}: missing; the changes made in generation {g} are lost",
            path(dir, Kind::Log, *g).display()
        )?;
    }
    Ok(())
}

/// `<name>.damaged`, or `<name>.damaged.N` when that is taken.
fn aside_name(p: &Path) -> PathBuf {
    let base = format!("{}.damaged", p.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}
