//! `sessiond import`: sessions into a running server over the native
//! protocol, from PHP's `files` save handler directory or from a dump
//! (`sessiond ctl dump`, `sessiond dump`). Idempotent: a session already
//! on the server is left as it is (it may be newer), so a re-run imports
//! only what is missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::Args;
use sessiond_client::{Client, RespValue};

use crate::remote::{bytes_of, Progress, RemoteArgs};

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// A PHP `files` session directory (`session.save_path`; the nested
    /// `N;/path` layout included: every `sess_*` file below it is read).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "from_dump",
        required_unless_present = "from_dump"
    )]
    from_php_files: Option<PathBuf>,
    /// A dump: JSON lines as `sessiond ctl dump` and `sessiond dump` write.
    #[arg(long, value_name = "FILE")]
    from_dump: Option<PathBuf>,
    /// PHP's `session.gc_maxlifetime`, in seconds: a file not modified for
    /// longer is expired and skipped; the others get it as their timeout.
    #[arg(long, default_value_t = 1440)]
    lifetime: u64,
    /// Sessions per round trip.
    #[arg(long, default_value_t = 200)]
    batch: usize,
}

/// One session to create.
struct Item {
    id: Bytes,
    class: Option<Bytes>,
    data: Bytes,
    timeout_s: u64,
    vars: Vec<(Bytes, Bytes)>,
}

#[derive(Default)]
struct Summary {
    imported: u64,
    existing: u64,
    expired: u64,
    failed: u64,
    /// The first few failures, to show.
    reasons: Vec<String>,
}

impl Summary {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.reasons.len() < 10 {
            self.reasons.push(what);
        }
    }
}

pub async fn run(args: &ImportArgs) -> Result<bool, String> {
    let mut summary = Summary::default();
    let items = match (&args.from_php_files, &args.from_dump) {
        (Some(dir), _) => php_files(dir, args.lifetime, &mut summary)?,
        (None, Some(file)) => dump_lines(file, &mut summary)?,
        (None, None) => return Err("give --from-php-files DIR or --from-dump FILE".into()),
    };
    let mut client = args.remote.connect().await?;
    let mut bar = Progress::new("sessions", Some(items.len() as u64));
    for batch in items.chunks(args.batch.max(1)) {
        send(&mut client, batch, &mut summary).await?;
        bar.add(batch.len() as u64);
    }
    bar.finish();
    println!(
        "imported {}, skipped {} ({} already there, {} expired), failed {}",
        summary.imported,
        summary.existing + summary.expired,
        summary.existing,
        summary.expired,
        summary.failed
    );
    for r in &summary.reasons {
        println!("  failed: {r}");
    }
    Ok(summary.failed == 0)
}

/// Creates a batch in one round trip; then the variables of those it
/// created (never of one that was there already).
async fn send(client: &mut Client, batch: &[Item], summary: &mut Summary) -> Result<(), String> {
    let commands: Vec<Vec<Bytes>> = batch
        .iter()
        .map(|it| {
            let mut c = vec![Bytes::from_static(b"SESSION.CREATE"), it.id.clone()];
            if let Some(class) = &it.class {
                c.extend([Bytes::from_static(b"CLASS"), class.clone()]);
            }
            c.extend([
                Bytes::from_static(b"DATA"),
                it.data.clone(),
                Bytes::from_static(b"TIMEOUT"),
                Bytes::from(it.timeout_s.max(1).to_string()),
            ]);
            c
        })
        .collect();
    let replies = client
        .pipeline(&commands)
        .await
        .map_err(|e| format!("the server went away: {e}"))?;
    let mut vars = Vec::new();
    for (it, reply) in batch.iter().zip(replies) {
        let id = String::from_utf8_lossy(&it.id);
        match reply {
            RespValue::Error(e) if e.starts_with("EXISTS") => summary.existing += 1,
            RespValue::Error(e) => summary.fail(format!("{id}: {e}")),
            _ => {
                summary.imported += 1;
                if !it.vars.is_empty() {
                    let mut c = vec![Bytes::from_static(b"SESSION.SETALL"), it.id.clone()];
                    for (k, v) in &it.vars {
                        c.extend([k.clone(), v.clone()]);
                    }
                    vars.push((id.into_owned(), c));
                }
            }
        }
    }
    if !vars.is_empty() {
        let commands: Vec<_> = vars.iter().map(|(_, c)| c.clone()).collect();
        let replies = client
            .pipeline(&commands)
            .await
            .map_err(|e| format!("the server went away: {e}"))?;
        for ((id, _), reply) in vars.iter().zip(replies) {
            if let RespValue::Error(e) = reply {
                summary.fail(format!("{id}: variables not set: {e}"));
            }
        }
    }
    Ok(())
}

/// Every `sess_<id>` file below `dir`, at any depth (PHP's `N;/path`
/// spreads them over N levels of one-character directories).
fn php_files(dir: &Path, lifetime: u64, summary: &mut Summary) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    let now = SystemTime::now();
    let lifetime = Duration::from_secs(lifetime);
    let mut seen = 0u64;
    while let Some(d) = dirs.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", d.display()))?;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix("sess_")) else {
                continue;
            };
            seen += 1;
            if id.is_empty() {
                summary.fail(format!("{}: no session id in the name", path.display()));
                continue;
            }
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|m| now.duration_since(m).unwrap_or_default())
                .unwrap_or_default();
            if age > lifetime {
                summary.expired += 1;
                continue;
            }
            match std::fs::read(&path) {
                Ok(data) => items.push(Item {
                    id: Bytes::from(id.to_string()),
                    class: None,
                    data: Bytes::from(data),
                    timeout_s: lifetime.as_secs(),
                    vars: Vec::new(),
                }),
                Err(e) => summary.fail(format!("{}: {e}", path.display())),
            }
        }
    }
    if seen == 0 {
        return Err(format!(
            "no sess_* files under {}: is it PHP's session.save_path?",
            dir.display()
        ));
    }
    Ok(items)
}

/// The sessions of a dump that have not expired.
fn dump_lines(file: &Path, summary: &mut Summary) -> Result<Vec<Item>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        let item = parsed.ok().and_then(|v| {
            let timeout_ms = v["timeout_ms"].as_u64()?;
            let accessed_ms = v["accessed_ms"].as_u64()?;
            let vars = match v["vars"].as_object() {
                Some(o) => o
                    .iter()
                    .map(|(k, v)| Some((Bytes::from(k.clone()), Bytes::from(bytes_of(v)?))))
                    .collect::<Option<Vec<_>>>()?,
                None => Vec::new(),
            };
            let class = match &v["class"] {
                serde_json::Value::Null => None,
                c => Some(Bytes::from(bytes_of(c)?)),
            };
            Some((
                accessed_ms.saturating_add(timeout_ms),
                Item {
                    id: Bytes::from(bytes_of(&v["id"])?),
                    class,
                    data: Bytes::from(bytes_of(&v["data"])?),
                    timeout_s: timeout_ms.div_ceil(1000),
                    vars,
                },
            ))
        });
        match item {
            Some((deadline, _)) if deadline <= now_ms => summary.expired += 1,
            Some((_, item)) => items.push(item),
            None => summary.fail(format!(
                "{}: line {} is not a session",
                file.display(),
                n + 1
            )),
        }
    }
    Ok(items)
}
