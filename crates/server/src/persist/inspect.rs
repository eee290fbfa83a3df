//! Offline tools over a data directory: `sessiond check` and `sessiond dump`.
//! Neither changes anything on disk.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use sessiond_core::{Engine, EngineConfig, Session, SessionId, SystemClock};

use super::files::{generations, path, scan, Kind, Scan};
use super::recovery::{recover, salvage, snapshot_sound};
use super::repair::data_dirs;
use crate::error::ServerError;

/// Verifies every file of `dir` and of each tenant directory under it:
/// headers, frames, CRCs, snapshot end markers; then says what start-up
/// would do (start, cut a torn tail, fall back, or refuse and ask for
/// `sessiond repair`). Writes one line per file to `out`; returns whether
/// all is well.
pub fn check(dir: &Path, out: &mut impl Write) -> Result<bool, ServerError> {
    let mut ok = true;
    for d in data_dirs(dir)? {
        ok &= check_one(&d, out)?;
    }
    Ok(ok)
}

fn check_one(dir: &Path, out: &mut impl Write) -> Result<bool, ServerError> {
    let io = |e: std::io::Error| ServerError::Storage(format!("{}: {e}", dir.display()));
    let mut ok = true;
    let mut files = 0;
    for kind in [Kind::Snapshot, Kind::Log] {
        for g in generations(dir, kind).map_err(io)? {
            files += 1;
            let p = path(dir, kind, g);
            let (s, complete) = match kind {
                Kind::Snapshot => {
                    let (s, sound) = snapshot_sound(&p).map_err(io)?;
                    let complete = sound || !s.damage.is_empty();
                    (s, complete)
                }
                Kind::Log => (scan(&p, Kind::Log, |_| {}).map_err(io)?, true),
            };
            ok &= s.damage.is_empty() && complete;
            let verdict = if !complete {
                "INCOMPLETE: no valid end marker".to_string()
            } else {
                verdict(dir, kind, &s)
            };
            writeln!(
                out,
                "{}: {} records, {} bytes, {verdict}",
                p.display(),
                s.records + s.records_after,
                s.total_bytes
            )
            .map_err(io)?;
        }
    }
    if files == 0 {
        writeln!(out, "{}: no data files", dir.display()).map_err(io)?;
        return Ok(ok);
    }
    let engine = Engine::new(EngineConfig::default(), Arc::new(SystemClock));
    let line = match recover(dir, &engine, false) {
        Ok(r) if r.quarantined.is_empty() && r.report.truncated_bytes == 0 => {
            format!("start-up: starts with {} sessions", r.report.live_sessions)
        }
        Ok(r) => format!(
            "start-up: starts with {} sessions{}{}",
            r.report.live_sessions,
            if r.report.truncated_bytes > 0 {
                format!(
                    ", after cutting a torn tail of {} bytes",
                    r.report.truncated_bytes
                )
            } else {
                String::new()
            },
            if r.quarantined.is_empty() {
                String::new()
            } else {
                ", falling back past the damaged snapshot (nothing lost; `sessiond repair` moves it aside)".into()
            }
        ),
        Err(ServerError::NeedsRepair(why)) => format!("start-up: REFUSES: {why}"),
        Err(e) => return Err(e),
    };
    writeln!(out, "{}: {line}", dir.display()).map_err(io)?;
    Ok(ok)
}

/// A file's verdict: ok, a torn tail start-up cuts, or damage to repair.
fn verdict(dir: &Path, kind: Kind, s: &Scan) -> String {
    let Some(d) = s.damage.first() else {
        return "ok".into();
    };
    let head = format!(
        "DAMAGED at byte {}: {} ({} bytes after it)",
        d.at,
        d.reason,
        s.total_bytes - d.at
    );
    if kind == Kind::Log && s.torn_tail_only() {
        format!("{head}: a torn tail, which start-up cuts")
    } else {
        format!(
            "{head}; {} damaged stretch(es), {} valid records after the damage: run `sessiond repair --data-dir {}`",
            s.damage.len(),
            s.records_after,
            dir.display()
        )
    }
}

/// Writes every live session of `dir` as one JSON object per line, without
/// changing the directory; records past damage are read too (as `repair`
/// would keep them), and each damaged file is named on `notes`. Returns
/// how many sessions.
pub fn dump(
    dir: &Path,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<usize, ServerError> {
    let io = |e: std::io::Error| ServerError::Storage(format!("{}: {e}", dir.display()));
    let engine = Engine::new(EngineConfig::default(), Arc::new(SystemClock));
    let found = salvage(dir, &engine)?;
    for f in &found.files {
        if let Some(d) = f.scan.damage.first() {
            writeln!(
                notes,
                "sessiond: {} is damaged at byte {} ({}); dumping every sound record",
                f.path.display(),
                d.at,
                d.reason
            )
            .map_err(io)?;
        }
    }
    let mut n = 0;
    let mut line = String::new();
    for i in 0..engine.shard_count() {
        for (id, s) in engine.shard_sessions(i) {
            line.clear();
            session_json(&id, &s, &mut line);
            out.write_all(line.as_bytes()).map_err(io)?;
            n += 1;
        }
    }
    Ok(n)
}

fn session_json(id: &SessionId, s: &Session, out: &mut String) {
    out.push_str("{\"id\":");
    json_bytes(id.as_bytes(), out);
    out.push_str(",\"class\":");
    match s.class() {
        Some(c) => json_bytes(c, out),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"created_ms\":{},\"accessed_ms\":{},\"timeout_ms\":{},\"version\":{},\"data\":",
        s.created_ms, s.accessed_ms, s.timeout_ms, s.version
    );
    json_bytes(&s.data, out);
    out.push_str(",\"vars\":{");
    for (i, (k, v)) in s.vars().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Object keys must be strings: a binary name is written hex-escaped.
        json_string(
            &String::from_utf8(k.to_vec()).unwrap_or_else(|_| hex(k)),
            out,
        );
        out.push(':');
        json_bytes(v, out);
    }
    out.push_str("}}\n");
}

/// UTF-8 bytes as a JSON string; anything else as `{"hex":"…"}`, so a dump
/// loses nothing.
fn json_bytes(b: &[u8], out: &mut String) {
    match std::str::from_utf8(b) {
        Ok(s) => json_string(s, out),
        Err(_) => {
            out.push_str("{\"hex\":\"");
            out.push_str(&hex(b));
            out.push_str("\"}");
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn json_escapes_and_keeps_binary() {
        let mut vars = std::collections::BTreeMap::new();
        vars.insert(
            Bytes::from_static(b"q\"uote"),
            Bytes::from_static(b"\xff\x00"),
        );
        let s = Session::restored(None, Bytes::from_static(b"a\nb"), vars, 0, 1, 2, 3, 4);
        let mut out = String::new();
        session_json(&SessionId::new(Bytes::from_static(b"id")), &s, &mut out);
        assert_eq!(
            out,
            "{\"id\":\"id\",\"class\":null,\"created_ms\":1,\"accessed_ms\":2,\"timeout_ms\":3,\"version\":4,\"data\":\"a\\nb\",\"vars\":{\"q\\\"uote\":{\"hex\":\"ff00\"}}}\n"
        );
    }
}
