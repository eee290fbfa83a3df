//! The HTTP_SessionServer line-protocol door (`--listen-line`): one
//! connection, one open session at a time, `ok …`/`err …` reply lines.
//! The grammar is in `sessiond_proto::line` and docs/protocol-line.md.
//! Every engine command runs through `Link::run`, which also waits for a
//! queued `open` and for the disk under `fsync always`.

use std::sync::Arc;

use sessiond_core::script::Func;
use sessiond_core::{Command, Error, LockMode, Reply, SessionId};
use sessiond_proto::line::{self, LineCommand};

use super::{Next, SocketDoor, FLUSH_AT};
use crate::conn::link::Link;
use crate::conn::stream::Stream;
use crate::door::Door;
use crate::shared::Shared;

/// The session this connection has open.
struct Opened {
    id: SessionId,
    key: u64,
    write: bool,
}

/// Serves one line-protocol connection to the end.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>) {
    let mut conn = Conn {
        link: Link::new(stream, shared, 4096, Door::Line),
        open: None,
    };
    super::serve(&mut conn).await;
}

struct Conn {
    link: Link,
    open: Option<Opened>,
}

/// What a command answers: `ok [text]` or `err message`.
type LineResult = Result<Option<Vec<u8>>, String>;

impl SocketDoor for Conn {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Answers every whole line in the input buffer.
    async fn answer_buffered(&mut self) -> std::io::Result<Next> {
        loop {
            let cmd = match line::parse_line(&mut self.link.inbuf, &self.link.shared.limits) {
                Ok(None) => return Ok(Next::Continue),
                Ok(Some(Ok(cmd))) => cmd,
                Ok(Some(Err(e))) => {
                    line::err(&mut self.link.out, &e.0);
                    continue;
                }
                Err(e) => {
                    line::err(&mut self.link.out, &e.0);
                    return Ok(Next::Close);
                }
            };
            if cmd == LineCommand::Quit {
                line::ok(&mut self.link.out, None);
                return Ok(Next::Close);
            }
            match self.answer(cmd).await? {
                Ok(text) => line::ok(&mut self.link.out, text.as_deref()),
                Err(message) => line::err(&mut self.link.out, &message),
            }
            // Many buffered requests with large replies: write as we go
            // rather than holding them all.
            if self.link.out.len() >= FLUSH_AT {
                self.link.flush().await?;
            }
        }
    }
}

impl Conn {
    /// Runs one engine command; a refusal as its message.
    async fn exec(&mut self, cmd: Command) -> std::io::Result<Result<Reply, String>> {
        Ok(self.link.run(cmd).await?.map_err(|e| e.to_string()))
    }

    /// The open session, if there is one (and, for `write`, open for writing).
    fn need(&self, write: bool) -> Result<(SessionId, u64), String> {
        match &self.open {
            None => Err("no session is open: use new or open <id>".into()),
            Some(o) if write && !o.write => {
                Err("the session is open read-only: open it with w to change it".into())
            }
            Some(o) => Ok((o.id.clone(), o.key)),
        }
    }

    /// Gives up the open session's lock, if one is open.
    async fn close_open(&mut self) -> std::io::Result<()> {
        if let Some(o) = self.open.take() {
            // Gone meanwhile (its lease expired) is no error: it is closed.
            let _ = self
                .exec(Command::Unlock {
                    id: o.id,
                    key: o.key,
                })
                .await?;
        }
        Ok(())
    }

    /// The lock an `open` or `new` takes: for as long as the connection
    /// holds the session open, up to the longest lease.
    fn lock(&self, id: SessionId, write: bool, wait_ms: u64) -> Command {
        Command::Lock {
            id,
            mode: if write {
                LockMode::Write
            } else {
                LockMode::Read
            },
            wait_ms,
            lease_ms: Some(self.link.engine().config().max_lease_ms),
        }
    }

    async fn answer(&mut self, cmd: LineCommand) -> std::io::Result<LineResult> {
        let (id, key) = match cmd {
            LineCommand::Auth { user, password } => {
                // Whatever happens, the open session is given up first: a
                // new login may work in another tenant.
                self.close_open().await?;
                return Ok(match self.link.login(Some(&user), &password).await {
                    Ok(_) => Ok(None),
                    Err(refused) => Err(refused.message()),
                });
            }
            LineCommand::New => {
                self.close_open().await?;
                let uniq = Command::Uniq {
                    len: None,
                    class: None,
                    data: None,
                    timeout_ms: None,
                };
                let id = match self.exec(uniq).await? {
                    Ok(Reply::Bulk(id)) => SessionId::new(id),
                    Ok(other) => return Ok(Err(unexpected("uniq", &other))),
                    Err(e) => return Ok(Err(e)),
                };
                let lock = self.lock(id.clone(), true, 0);
                return Ok(match self.exec(lock).await? {
                    Ok(Reply::Key(key)) => {
                        let text = id.as_bytes().to_vec();
                        self.open = Some(Opened {
                            id,
                            key,
                            write: true,
                        });
                        Ok(Some(text))
                    }
                    Ok(other) => Err(unexpected("lock", &other)),
                    Err(e) => Err(e),
                });
            }
            LineCommand::Open { id, write } => {
                self.close_open().await?;
                let id = SessionId::new(id);
                let wait_ms = self.link.engine().config().max_wait_ms;
                let lock = self.lock(id.clone(), write, wait_ms);
                // Known gap: if another connection REGENERATEs the session
                // while this one waits, the grant is for the new id but the
                // reply holds only the key, so this connection keeps the old
                // id (its writes then fail with NOSESSION; closing the
                // connection frees the lock).
                return Ok(match self.exec(lock).await? {
                    Ok(Reply::Key(key)) => {
                        self.open = Some(Opened { id, key, write });
                        Ok(None)
                    }
                    Ok(other) => Err(unexpected("lock", &other)),
                    Err(e) => Err(e),
                });
            }
            LineCommand::Close => {
                return Ok(match self.open.take() {
                    None => Err("no session is open".into()),
                    Some(o) => self
                        .exec(Command::Unlock {
                            id: o.id,
                            key: o.key,
                        })
                        .await?
                        .map(|_| None),
                });
            }
            LineCommand::Quit => return Ok(Ok(None)),
            LineCommand::Get { .. } | LineCommand::GetAll => match self.need(false) {
                Ok(open) => open,
                Err(e) => return Ok(Err(e)),
            },
            LineCommand::Put { .. }
            | LineCommand::Own { .. }
            | LineCommand::Remove { .. }
            | LineCommand::PutAll { .. }
            | LineCommand::Commit
            | LineCommand::RegenerateId => match self.need(true) {
                Ok(open) => open,
                Err(e) => return Ok(Err(e)),
            },
        };
        Ok(match cmd {
            LineCommand::Put { name, value } => self
                .exec(Command::Set { id, name, value })
                .await?
                .map(|_| None),
            LineCommand::Own { name, params } => {
                let call = Command::Call {
                    func: Func::Plugin(name.clone()),
                    ids: vec![id],
                    args: params,
                };
                match self.link.run(call).await? {
                    Ok(reply) => Ok(own_answer(reply)),
                    // Not a function either: the word is no command.
                    Err(Error::NoFunction(_)) => Err(line::unknown_command(&name)),
                    Err(e) => Err(e.to_string()),
                }
            }
            LineCommand::Get { name } => {
                let get = Command::Get {
                    id,
                    name: name.clone(),
                    default: None,
                };
                match self.exec(get).await? {
                    Ok(Reply::Bulk(v)) => Ok(Some(line::escape(&v))),
                    // Nil: not there.
                    Ok(_) => Err(format!("no variable '{}'", String::from_utf8_lossy(&name))),
                    Err(e) => Err(e),
                }
            }
            LineCommand::Remove { name } => {
                self.exec(Command::Del { id, name }).await?.map(|_| None)
            }
            LineCommand::GetAll => match self.exec(Command::GetAll { id }).await? {
                Ok(Reply::Map(pairs)) => {
                    let pairs = pairs.into_iter().filter_map(|(k, v)| match (k, v) {
                        (Reply::Bulk(k), Reply::Bulk(v)) => Some((k, v)),
                        _ => None,
                    });
                    let q = line::query_encode(pairs);
                    Ok((!q.is_empty()).then_some(q))
                }
                Ok(other) => Err(unexpected("get_all", &other)),
                Err(e) => Err(e),
            },
            LineCommand::PutAll { pairs } => self
                .exec(Command::SetAll { id, pairs })
                .await?
                .map(|_| None),
            LineCommand::Commit => match self.exec(Command::Commit { id, key }).await? {
                Ok(_) => {
                    if let Some(o) = self.open.as_mut() {
                        o.write = false;
                    }
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            LineCommand::RegenerateId => {
                match self.exec(Command::Regenerate { id, new_id: None }).await? {
                    Ok(Reply::Bulk(new)) => {
                        if let Some(o) = self.open.as_mut() {
                            o.id = SessionId::new(new.clone());
                        }
                        Ok(Some(new.to_vec()))
                    }
                    Ok(other) => Err(unexpected("regenerate", &other)),
                    Err(e) => Err(e),
                }
            }
            // Answered above.
            LineCommand::Auth { .. }
            | LineCommand::New
            | LineCommand::Open { .. }
            | LineCommand::Close
            | LineCommand::Quit => Ok(None),
        })
    }
}

/// A function's answer on one line: text percent-escaped like a value, a
/// number as digits, a list URL-encoded and separated by spaces, nil as
/// nothing.
fn own_answer(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Bulk(b) => Some(line::escape(&b)),
        Reply::Int(n) => Some(n.to_string().into_bytes()),
        Reply::Array(items) => Some(line::list_encode(items.into_iter().map(|r| match r {
            Reply::Bulk(b) => b,
            Reply::Int(n) => bytes::Bytes::from(n.to_string()),
            _ => bytes::Bytes::new(),
        }))),
        _ => None,
    }
}

/// A reply of a shape the command never answers: a bug, said loudly.
fn unexpected(command: &str, reply: &Reply) -> String {
    tracing::error!(
        command,
        ?reply,
        "the engine answered a shape the line door does not know"
    );
    format!("internal error: the engine answered {command} unexpectedly (logged)")
}
