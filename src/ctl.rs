//! `sessiond ctl`: the operator's command line over the native protocol.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value as Json};
use sessiond_client::{Client, RespValue};

use crate::remote::{ids, json_bytes, pairs, text, Progress, RemoteArgs};

/// `INFO all`'s sections, in order, each with its fields in order.
type Info = Vec<(String, Vec<(String, String)>)>;

#[derive(Args)]
pub struct CtlArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    command: CtlCmd,
}

#[derive(Subcommand)]
enum CtlCmd {
    /// The server's figures (every INFO section), once.
    Stats,
    /// A live view: rates, busiest commands, contended sessions; refreshed
    /// every --interval seconds until interrupted.
    Top {
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: run until Ctrl-C).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Look at and end sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Every live session as JSON lines on standard output, read without
    /// refreshing them: an online backup; `sessiond import --from-dump`
    /// restores it.
    Dump,
    /// Whether the server answers, logged in, with its storage keeping up:
    /// exit status 0 if so, 1 if not.
    Check,
    /// Read the plugins directory again (as SIGHUP does; an admin's): the
    /// functions loaded, and each file that failed (its old version stays).
    /// Exit status 1 if any failed.
    Reload,
}

#[derive(Subcommand)]
enum SessionsCmd {
    /// Every session id (of a class).
    List {
        #[arg(long)]
        class: Option<String>,
    },
    /// Sessions whose variable (or PHP entry) NAME has VALUE.
    Find { name: String, value: String },
    /// One session: metadata, variables and data.
    Show { id: String },
    /// Destroy sessions by id, or with --var/--value every session where
    /// that variable has that value (log a user out everywhere).
    Destroy {
        ids: Vec<String>,
        #[arg(long, requires = "value", conflicts_with = "ids")]
        var: Option<String>,
        #[arg(long, requires = "var")]
        value: Option<String>,
    },
}

pub async fn run(args: &CtlArgs) -> Result<bool, String> {
    let mut c = args.remote.connect().await?;
    match &args.command {
        CtlCmd::Stats => {
            let info = info(&mut c).await?;
            for (section, fields) in &info {
                println!("# {section}");
                for (k, v) in fields {
                    println!("{k:<32} {v}");
                }
                println!();
            }
            Ok(true)
        }
        CtlCmd::Top {
            interval,
            iterations,
        } => top(&mut c, *interval, *iterations).await,
        CtlCmd::Sessions(cmd) => sessions(&mut c, cmd).await,
        CtlCmd::Dump => dump(&mut c).await,
        CtlCmd::Check => check(&mut c).await,
        CtlCmd::Reload => reload(&mut c).await,
    }
}

/// `INFO all`, as sections of fields in order.
async fn info(c: &mut Client) -> Result<Info, String> {
    let reply = call(c, &["INFO", "all"]).await?;
    let mut sections: Info = Vec::new();
    for line in text(&reply).lines() {
        if let Some(name) = line.strip_prefix("# ") {
            sections.push((name.to_string(), Vec::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once(':'), sections.last_mut()) {
            last.1.push((k.to_string(), v.to_string()));
        }
    }
    Ok(sections)
}

fn field<'a>(info: &'a Info, name: &str) -> Option<&'a str> {
    info.iter()
        .flat_map(|(_, f)| f.iter())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn number(info: &Info, name: &str) -> u64 {
    field(info, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `cmdstat_<name>:calls=N` fields as name → calls.
fn command_calls(info: &Info) -> BTreeMap<String, u64> {
    info.iter()
        .flat_map(|(_, f)| f.iter())
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?;
            let calls = v.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

async fn top(c: &mut Client, interval: f64, iterations: Option<u64>) -> Result<bool, String> {
    let every = Duration::from_secs_f64(interval.max(0.1));
    let mut before: Option<(Instant, Info)> = None;
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        let info = info(c).await?;
        let mut screen = String::new();
        // Clear the screen and go home, as top does.
        screen.push_str("\x1b[H\x1b[2J");
        let secs = before
            .as_ref()
            .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64());
        let rate = |name: &str| -> f64 {
            match &before {
                Some((_, old)) if secs > 0.0 => {
                    number(&info, name).saturating_sub(number(old, name)) as f64 / secs
                }
                _ => 0.0,
            }
        };
        screen.push_str(&format!(
            "sessiond {}  tenant {}  up {} s  clients {}  waiting for locks {}\n\n",
            field(&info, "sessiond_version").unwrap_or("?"),
            field(&info, "tenant").unwrap_or("?"),
            field(&info, "uptime_in_seconds").unwrap_or("?"),
            field(&info, "connected_clients").unwrap_or("?"),
            field(&info, "blocked_clients").unwrap_or("0"),
        ));
        screen.push_str(&format!(
            "sessions {:>10}   memory {:>10}   log pending {:>6}\n",
            field(&info, "sessions").unwrap_or("?"),
            field(&info, "used_memory_human").unwrap_or("?"),
            field(&info, "log_pending_records").unwrap_or("-"),
        ));
        screen.push_str(&format!(
            "commands/s {:>8.1}   errors/s {:>8.1}   lock waits/s {:>6.1}   expired/s {:>6.1}\n\n",
            rate("total_commands_processed"),
            rate("total_error_replies"),
            rate("lock_waits"),
            rate("expired_keys"),
        ));
        let calls = command_calls(&info);
        let old_calls = before.as_ref().map(|(_, o)| command_calls(o));
        let mut busiest: Vec<(String, f64, u64)> = calls
            .iter()
            .map(|(name, &total)| {
                let was = old_calls
                    .as_ref()
                    .and_then(|o| o.get(name).copied())
                    .unwrap_or(total);
                let per = if secs > 0.0 {
                    total.saturating_sub(was) as f64 / secs
                } else {
                    0.0
                };
                (name.clone(), per, total)
            })
            .collect();
        busiest.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)));
        screen.push_str(&format!(
            "{:<16} {:>10} {:>12}\n",
            "COMMAND", "PER SEC", "TOTAL"
        ));
        for (name, per, total) in busiest.iter().take(10) {
            screen.push_str(&format!("{name:<16} {per:>10.1} {total:>12}\n"));
        }
        screen.push_str(&format!("\n{:<8} {}\n", "WAITS", "CONTENDED SESSION"));
        let mut any = false;
        for (k, v) in info.iter().flat_map(|(_, f)| f.iter()) {
            if k.starts_with("contended_") {
                if let Some((waits, id)) =
                    v.strip_prefix("waits=").and_then(|r| r.split_once(",id="))
                {
                    screen.push_str(&format!("{waits:<8} {id}\n"));
                    any = true;
                }
            }
        }
        if !any {
            screen.push_str("(no lock waits yet)\n");
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(screen.as_bytes());
        let _ = out.flush();
        drop(out);
        before = Some((now, info));
        n += 1;
        if iterations.is_some_and(|max| n >= max) {
            return Ok(true);
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(true),
        }
    }
}

async fn sessions(c: &mut Client, cmd: &SessionsCmd) -> Result<bool, String> {
    match cmd {
        SessionsCmd::List { class } => {
            let mut cursor = Bytes::from_static(b"0");
            let mut out = std::io::stdout().lock();
            loop {
                let (next, page) = scan_page(c, cursor, 1000, class.as_deref()).await?;
                for id in page {
                    let _ = out.write_all(&id);
                    let _ = out.write_all(b"\n");
                }
                if next.as_ref() == b"0" {
                    return Ok(true);
                }
                cursor = next;
            }
        }
        SessionsCmd::Find { name, value } => {
            for id in ids(call(c, &["SESSION.FIND", name, value]).await?) {
                println!("{}", String::from_utf8_lossy(&id));
            }
            Ok(true)
        }
        SessionsCmd::Show { id } => {
            let s = export(c, id.as_bytes()).await?;
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            Ok(true)
        }
        SessionsCmd::Destroy {
            ids: list,
            var,
            value,
        } => {
            let targets: Vec<Bytes> = match (var, value) {
                (Some(var), Some(value)) => ids(call(c, &["SESSION.FIND", var, value]).await?),
                _ => list.iter().map(|s| Bytes::from(s.clone())).collect(),
            };
            if targets.is_empty() && var.is_none() {
                return Err("name the sessions to destroy, or give --var and --value".into());
            }
            let mut destroyed = 0;
            let mut ok = true;
            for id in &targets {
                match c.call(&[&b"SESSION.DESTROY"[..], id]).await {
                    Ok(_) => destroyed += 1,
                    Err(e) => {
                        eprintln!("{}: {e}", String::from_utf8_lossy(id));
                        ok = false;
                    }
                }
            }
            println!("destroyed {destroyed}");
            Ok(ok)
        }
    }
}

/// One page of `SESSION.SCAN` from `cursor`: the next cursor (`0` when
/// the walk is over) and the page's ids.
async fn scan_page(
    c: &mut Client,
    cursor: Bytes,
    count: usize,
    class: Option<&str>,
) -> Result<(Bytes, Vec<Bytes>), String> {
    let mut args: Vec<Bytes> = vec![
        "SESSION.SCAN".into(),
        cursor,
        "COUNT".into(),
        count.to_string().into(),
    ];
    if let Some(class) = class {
        args.extend(["CLASS".into(), Bytes::from(class.to_string())]);
    }
    match call(c, &args).await? {
        RespValue::Array(mut page) if page.len() == 2 => {
            let list = ids(page.pop().unwrap_or(RespValue::Nil));
            let next = match page.pop() {
                Some(RespValue::Bulk(b)) => b,
                _ => Bytes::from_static(b"0"),
            };
            Ok((next, list))
        }
        other => Err(format!("unexpected SCAN reply {other:?}")),
    }
}

/// One session as the dump writes it (the offline `sessiond dump`'s shape).
async fn export(c: &mut Client, id: &[u8]) -> Result<Json, String> {
    let reply = c
        .call(&[&b"SESSION.EXPORT"[..], id])
        .await
        .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(id)))?;
    Ok(export_json(reply))
}

fn export_json(reply: RespValue) -> Json {
    let mut out = Map::new();
    for (k, v) in pairs(reply) {
        let j = match (k.as_str(), v) {
            ("vars", vars) => Json::Object(
                pairs(vars)
                    .into_iter()
                    .map(|(name, v)| {
                        let b = match v {
                            RespValue::Bulk(b) => json_bytes(&b),
                            other => Json::from(text(&other)),
                        };
                        (name, b)
                    })
                    .collect(),
            ),
            (_, RespValue::Int(n)) => json!(n),
            (_, RespValue::Nil) => Json::Null,
            (_, RespValue::Bulk(b)) => json_bytes(&b),
            (_, other) => Json::from(text(&other)),
        };
        out.insert(k, j);
    }
    Json::Object(out)
}

async fn dump(c: &mut Client) -> Result<bool, String> {
    let total = call(c, &["SESSION.COUNT"])
        .await
        .ok()
        .and_then(|v| match v {
            RespValue::Int(n) => u64::try_from(n).ok(),
            _ => None,
        });
    let mut bar = Progress::new("sessions", total);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut cursor = Bytes::from_static(b"0");
    let mut written = 0u64;
    loop {
        let (next, list) = scan_page(c, cursor, 500, None).await?;
        cursor = next;
        let commands: Vec<Vec<Bytes>> = list
            .iter()
            .map(|id| vec![Bytes::from_static(b"SESSION.EXPORT"), id.clone()])
            .collect();
        let replies = c
            .pipeline(&commands)
            .await
            .map_err(|e| format!("the server went away: {e}"))?;
        for reply in replies {
            match &reply {
                // One gone between the page and the read is not there.
                RespValue::Error(e) if e.starts_with("NOSESSION") => continue,
                RespValue::Error(e) => return Err(format!("SESSION.EXPORT: {e}")),
                _ => {}
            }
            let line = export_json(reply).to_string();
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| format!("cannot write the dump: {e}"))?;
            written += 1;
        }
        bar.add(list.len() as u64);
        if cursor.as_ref() == b"0" {
            break;
        }
    }
    out.flush()
        .map_err(|e| format!("cannot write the dump: {e}"))?;
    bar.finish();
    eprintln!("sessiond: dumped {written} sessions");
    Ok(true)
}

async fn check(c: &mut Client) -> Result<bool, String> {
    let started = Instant::now();
    let pong = c.ping().await.map_err(|e| format!("PING failed: {e}"))?;
    let rtt = started.elapsed();
    let info = info(c).await?;
    let pending = number(&info, "log_pending_records");
    println!(
        "server answers: {} (round trip {} µs)",
        if pong { "yes" } else { "no" },
        rtt.as_micros()
    );
    println!(
        "version {}, tenant {}, {} sessions, storage {} (fsync {}), {} records not yet durable",
        field(&info, "sessiond_version").unwrap_or("?"),
        field(&info, "tenant").unwrap_or("?"),
        field(&info, "sessions").unwrap_or("?"),
        field(&info, "storage").unwrap_or("?"),
        field(&info, "fsync").unwrap_or("-"),
        pending,
    );
    // Under `always` nothing stays pending for long; a backlog that big
    // means the disk is not keeping up.
    let healthy = pong && pending < 100_000;
    println!("{}", if healthy { "ok" } else { "NOT OK" });
    Ok(healthy)
}

async fn reload(c: &mut Client) -> Result<bool, String> {
    let report = pairs(call(c, &["SESSION.RELOAD"]).await?);
    let mut ok = true;
    for (k, v) in report {
        match (k.as_str(), v) {
            ("functions", RespValue::Array(names)) => {
                let names: Vec<String> = names.iter().map(text).collect();
                println!("{} functions loaded: {}", names.len(), names.join(" "));
            }
            ("failed", RespValue::Array(failed)) => {
                for f in failed {
                    ok = false;
                    match f {
                        RespValue::Array(f) if f.len() == 2 => {
                            println!(
                                "not loaded: {}: {} (its previous version, if any, stays)",
                                text(&f[0]),
                                text(&f[1])
                            );
                        }
                        other => println!("not loaded: {}", text(&other)),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ok)
}

async fn call<A: AsRef<[u8]>>(c: &mut Client, args: &[A]) -> Result<RespValue, String> {
    c.call(args).await.map_err(|e| {
        let name = args
            .first()
            .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
            .unwrap_or_default();
        format!("{name}: {e}")
    })
}
