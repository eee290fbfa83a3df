//! The HTTP_SessionServer line-protocol door (`--listen-line`): one
//! connection, one open session at a time, `ok …`/`err …` reply lines.
//! The grammar is in `sessiond_proto::line` and docs/protocol-line.md.

use std::sync::Arc;

use sessiond_core::{Command, Error, LockMode, Outcome, Reply, SessionId};
use sessiond_proto::line::{self, LineCommand};
use tokio::sync::watch;

use super::FLUSH_AT;
use crate::conn::link::Link;
use crate::conn::stream::Stream;
use crate::shared::Shared;

/// The session this connection has open.
struct Opened {
    id: SessionId,
    key: u64,
    write: bool,
}

/// Serves one line-protocol connection to the end.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut link = Link::new(stream, shared, stop, 4096, crate::door::Door::Line);
    let mut open: Option<Opened> = None;
    loop {
        loop {
            let cmd = match line::parse_line(&mut link.inbuf, &link.shared.limits) {
                Ok(None) => break,
                Ok(Some(Ok(cmd))) => cmd,
                Ok(Some(Err(e))) => {
                    line::err(&mut link.out, &e.0);
                    continue;
                }
                Err(e) => {
                    line::err(&mut link.out, &e.0);
                    let _ = link.flush().await;
                    return;
                }
            };
            if cmd == LineCommand::Quit {
                line::ok(&mut link.out, None);
                let _ = link.flush().await;
                return;
            }
            if let LineCommand::Auth { user, password } = cmd {
                // Whatever happens, the open session is given up first: a
                // new login may work in another tenant.
                if let Some(o) = open.take() {
                    let _ = link.execute_now(Command::Unlock {
                        id: o.id,
                        key: o.key,
                    });
                }
                match link.login(Some(&user), &password).await {
                    Ok(_) => line::ok(&mut link.out, None),
                    Err(refused) => line::err(&mut link.out, &refused.message()),
                }
                continue;
            }
            let before = link.durable_before(cmd.writes());
            // Everything else runs against the engine; a lock wait flushes
            // what is pending first.
            let result = match run(&link, &mut open, cmd) {
                Step::Done(r) => r,
                Step::Wait(pending, write) => {
                    if link.flush().await.is_err() {
                        return;
                    }
                    let max = link.shared.limits.max_inline_len;
                    match link.await_lock(pending, max).await {
                        Ok(Some(r)) => opened(&mut open, r, write),
                        _ => return,
                    }
                }
            };
            link.durable_after(before);
            match result {
                Ok(text) => line::ok(&mut link.out, text.as_deref()),
                Err(message) => line::err(&mut link.out, &message),
            }
            // Many buffered requests with large replies: write as we go
            // rather than holding them all.
            if link.out.len() >= FLUSH_AT && link.flush().await.is_err() {
                return;
            }
        }
        if link.flush().await.is_err() || !matches!(link.read_more().await, Ok(true)) {
            return;
        }
    }
}

type LineResult = Result<Option<Vec<u8>>, String>;

enum Step {
    Done(LineResult),
    /// `open` is waiting for the lock (write mode or not).
    Wait(sessiond_core::PendingLock, bool),
}

fn exec(link: &Link, cmd: Command) -> Result<Reply, String> {
    link.execute_now(cmd).map_err(|e| e.to_string())
}

/// Records a granted `open`.
fn opened(open: &mut Option<Opened>, r: Result<Reply, Error>, write: bool) -> LineResult {
    match r {
        Ok(Reply::Int(key)) => {
            // Known gap: if another connection REGENERATEs the session while
            // this one waits, the grant is for the new id but the reply holds
            // only the key, so this connection keeps the old id (its writes
            // then fail with NOSESSION; closing the connection frees the lock).
            if let Some(o) = open.as_mut() {
                o.key = u64::try_from(key).unwrap_or(0);
                o.write = write;
            }
            Ok(None)
        }
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => {
            *open = None;
            Err(e.to_string())
        }
    }
}

fn run(link: &Link, open: &mut Option<Opened>, cmd: LineCommand) -> Step {
    let cfg = link.engine().config();
    let lock = |id: SessionId, write: bool, wait_ms: u64| Command::Lock {
        id,
        mode: if write {
            LockMode::Write
        } else {
            LockMode::Read
        },
        wait_ms,
        // The lock lasts as long as the connection holds it open.
        lease_ms: Some(cfg.max_lease_ms),
    };
    let need = |open: &Option<Opened>, write: bool| -> Result<(SessionId, u64), String> {
        match open {
            None => Err("no session is open: use new or open <id>".into()),
            Some(o) if write && !o.write => {
                Err("the session is open read-only: open it with w to change it".into())
            }
            Some(o) => Ok((o.id.clone(), o.key)),
        }
    };
    let close_open = |open: &mut Option<Opened>| {
        if let Some(o) = open.take() {
            let _ = exec(
                link,
                Command::Unlock {
                    id: o.id,
                    key: o.key,
                },
            );
        }
    };
    Step::Done(match cmd {
        LineCommand::New => {
            close_open(open);
            let id = match exec(
                link,
                Command::Uniq {
                    len: None,
                    class: None,
                    data: None,
                    timeout_ms: None,
                },
            ) {
                Ok(Reply::Bulk(id)) => SessionId::new(id),
                Ok(other) => return Step::Done(Err(format!("unexpected reply {other:?}"))),
                Err(e) => return Step::Done(Err(e)),
            };
            match exec(link, lock(id.clone(), true, 0)) {
                Ok(Reply::Int(key)) => {
                    let text = id.as_bytes().to_vec();
                    *open = Some(Opened {
                        id,
                        key: u64::try_from(key).unwrap_or(0),
                        write: true,
                    });
                    Ok(Some(text))
                }
                Ok(other) => Err(format!("unexpected reply {other:?}")),
                Err(e) => Err(e),
            }
        }
        LineCommand::Open { id, write } => {
            close_open(open);
            let id = SessionId::new(id);
            match link.execute(lock(id.clone(), write, cfg.max_wait_ms)) {
                Ok(Outcome::Reply(r)) => {
                    *open = Some(Opened { id, key: 0, write });
                    opened(open, Ok(r), write)
                }
                Ok(Outcome::Wait(p)) => {
                    *open = Some(Opened { id, key: 0, write });
                    return Step::Wait(p, write);
                }
                Err(e) => Err(e.to_string()),
            }
        }
        LineCommand::Put { name, value } => need(open, true)
            .and_then(|(id, _)| exec(link, Command::Set { id, name, value }))
            .map(|_| None),
        LineCommand::Get { name } => need(open, false).and_then(|(id, _)| {
            match exec(
                link,
                Command::Get {
                    id,
                    name: name.clone(),
                    default: None,
                },
            )? {
                Reply::Bulk(v) => Ok(Some(line::escape(&v))),
                _ => Err(format!("no variable '{}'", String::from_utf8_lossy(&name))),
            }
        }),
        LineCommand::Remove { name } => need(open, true)
            .and_then(|(id, _)| exec(link, Command::Del { id, name }))
            .map(|_| None),
        LineCommand::GetAll => {
            need(open, false).and_then(|(id, _)| match exec(link, Command::GetAll { id })? {
                Reply::Map(pairs) => {
                    let pairs = pairs.into_iter().filter_map(|(k, v)| match (k, v) {
                        (Reply::Bulk(k), Reply::Bulk(v)) => Some((k, v)),
                        _ => None,
                    });
                    let q = line::query_encode(pairs);
                    Ok((!q.is_empty()).then_some(q))
                }
                other => Err(format!("unexpected reply {other:?}")),
            })
        }
        LineCommand::PutAll { pairs } => need(open, true)
            .and_then(|(id, _)| exec(link, Command::SetAll { id, pairs }))
            .map(|_| None),
        LineCommand::Commit => need(open, true).and_then(|(id, key)| {
            exec(link, Command::Commit { id, key })?;
            if let Some(o) = open.as_mut() {
                o.write = false;
            }
            Ok(None)
        }),
        LineCommand::RegenerateId => need(open, true).and_then(|(id, _)| {
            match exec(link, Command::Regenerate { id, new_id: None })? {
                Reply::Bulk(new) => {
                    if let Some(o) = open.as_mut() {
                        o.id = SessionId::new(new.clone());
                    }
                    Ok(Some(new.to_vec()))
                }
                other => Err(format!("unexpected reply {other:?}")),
            }
        }),
        LineCommand::Close => match open.take() {
            None => Err("no session is open".into()),
            Some(o) => exec(
                link,
                Command::Unlock {
                    id: o.id,
                    key: o.key,
                },
            )
            .map(|_| None),
        },
        LineCommand::Quit | LineCommand::Auth { .. } => Ok(None),
    })
}
