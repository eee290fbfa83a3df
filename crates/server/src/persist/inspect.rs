//! Offline tools over a data directory: `sessiond check` and `sessiond dump`.
//! Neither changes anything on disk.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use sessiond_core::{Engine, EngineConfig, Session, SessionId, SystemClock};

use super::files::{generations, path, read_frames, Kind};
use super::record::{Record, LOG_MAGIC, SNAPSHOT_MAGIC};
use crate::error::ServerError;

/// Verifies every file of `dir`: headers, frames, CRCs, snapshot end
/// markers. Writes one line per file to `out`; returns whether all is well.
pub fn check(dir: &Path, out: &mut impl Write) -> Result<bool, ServerError> {
    let io = |e: std::io::Error| ServerError::Storage(format!("{}: {e}", dir.display()));
    let mut ok = true;
    let mut files = 0;
    for (kind, magic) in [(Kind::Snapshot, SNAPSHOT_MAGIC), (Kind::Log, LOG_MAGIC)] {
        for g in generations(dir, kind).map_err(io)? {
            files += 1;
            let p = path(dir, kind, g);
            let mut end = None;
            let mut records = 0u64;
            let r = read_frames(&p, magic, |rec| {
                records += 1;
                end = match rec {
                    Record::End { sessions } => Some(sessions),
                    Record::Mutation(_) => None,
                };
            })
            .map_err(io)?;
            let mut verdict = match &r.damage {
                None => "ok".to_string(),
                Some(d) => {
                    ok = false;
                    format!(
                        "DAMAGED at byte {}: {d} ({} bytes after it)",
                        r.good_bytes,
                        r.total_bytes - r.good_bytes
                    )
                }
            };
            if kind == Kind::Snapshot
                && r.damage.is_none()
                && !matches!(end, Some(n) if n + 2 == records)
            {
                ok = false;
                verdict = "INCOMPLETE: no valid end marker".into();
            }
            writeln!(
                out,
                "{}: {} records, {} bytes, {verdict}",
                p.display(),
                r.records,
                r.total_bytes
            )
            .map_err(io)?;
        }
    }
    if files == 0 {
        writeln!(out, "{}: no data files", dir.display()).map_err(io)?;
    }
    Ok(ok)
}

/// Writes every live session of `dir` as one JSON object per line, without
/// changing the directory. Returns how many.
pub fn dump(dir: &Path, out: &mut impl Write) -> Result<usize, ServerError> {
    let io = |e: std::io::Error| ServerError::Storage(format!("{}: {e}", dir.display()));
    let engine = Engine::new(EngineConfig::default(), Arc::new(SystemClock));
    super::recover(dir, &engine, false)?;
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
