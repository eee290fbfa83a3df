//! The native protocol: RESP arguments → a [`Request`].
//!
//! Session commands are named `SESSION.*` so that the Redis-compatible
//! commands (`GET`, `SET`, …) of the PHP drop-in can share the port.

mod table;

use bytes::Bytes;
use sessiond_core::{Command, LockMode, Reply, SessionId};

pub use table::{lookup, CommandSpec, COMMANDS};

/// What one native request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Work for the engine.
    Engine(Command),
    /// `HELLO [protover [AUTH user password] [SETNAME name]]`: log in if
    /// asked, switch RESP version and describe the server.
    Hello {
        protover: Option<u8>,
        auth: Option<(Bytes, Bytes)>,
    },
    /// `AUTH [user] password`: log in.
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    /// `QUIT`: answer OK and close.
    Quit,
    /// Answered from the codec alone (`COMMAND`).
    Reply(Reply),
    /// `INFO [section ...]`: the server's statistics, the named sections
    /// only (none: the default set).
    Info { sections: Vec<Bytes> },
}

/// A request that is well framed but wrong: the client gets `-ERR …` and the
/// connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct CommandError {
    /// The RESP error code (`ERR`, `NOPROTO`).
    pub code: &'static str,
    /// What is wrong and how to put it right.
    pub message: String,
}

impl CommandError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            code: "ERR",
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, CommandError>;

/// Translates one request's arguments (name first).
pub fn parse(args: Vec<Bytes>) -> Result<Request> {
    let mut it = args.into_iter();
    let Some(name) = it.next() else {
        return Err(CommandError::new(String::from("empty command")));
    };
    let Some(spec) = lookup(&name) else {
        return Err(CommandError::new(format!(
            "unknown command '{}'; COMMAND lists the commands, docs/protocol.md explains them",
            printable(&name)
        )));
    };
    parse_command(spec, it.collect())
}

/// Translates a request whose command `spec` is already looked up; `rest`
/// are the arguments after the name.
pub fn parse_command(spec: &'static CommandSpec, rest: Vec<Bytes>) -> Result<Request> {
    let n = rest.len() as i64 + 1;
    if (spec.arity >= 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err(CommandError::new(format!(
            "wrong number of arguments for '{}': {} {}",
            spec.name, spec.name, spec.syntax
        )));
    }
    let mut a = Args {
        spec,
        it: rest.into_iter(),
    };
    let cmd = match spec.name {
        "SESSION.CREATE" => {
            let id = a.id()?;
            let o = a.options(&["CLASS", "DATA", "TIMEOUT"])?;
            Command::Create {
                id,
                class: o.get("CLASS"),
                data: o.get("DATA"),
                timeout_ms: o.seconds("TIMEOUT")?,
            }
        }
        "SESSION.UNIQ" => {
            let o = a.options(&["LEN", "CLASS", "DATA", "TIMEOUT"])?;
            Command::Uniq {
                len: o
                    .number("LEN")?
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                class: o.get("CLASS"),
                data: o.get("DATA"),
                timeout_ms: o.seconds("TIMEOUT")?,
            }
        }
        "SESSION.DESTROY" => Command::Destroy { id: a.id()? },
        "SESSION.EXISTS" => Command::Exists { id: a.id()? },
        "SESSION.INFO" => Command::Info { id: a.id()? },
        "SESSION.EXPORT" => Command::Export { id: a.id()? },
        "SESSION.COUNT" => Command::Count {
            class: a.options(&["CLASS"])?.get("CLASS"),
        },
        "SESSION.LIST" => Command::List {
            class: a.options(&["CLASS"])?.get("CLASS"),
        },
        "SESSION.SCAN" => {
            let cursor = a.next()?;
            let o = a.options(&["COUNT", "CLASS"])?;
            Command::Scan {
                cursor,
                count: o.page_count()?,
                class: o.get("CLASS"),
            }
        }
        "SESSION.GET" => {
            let id = a.id()?;
            let name = a.next()?;
            Command::Get {
                id,
                name,
                default: a.options(&["DEFAULT"])?.get("DEFAULT"),
            }
        }
        "SESSION.SET" => Command::Set {
            id: a.id()?,
            name: a.next()?,
            value: a.next()?,
        },
        "SESSION.DEL" => Command::Del {
            id: a.id()?,
            name: a.next()?,
        },
        "SESSION.GETALL" => Command::GetAll { id: a.id()? },
        "SESSION.SETALL" => {
            let id = a.id()?;
            Command::SetAll {
                id,
                pairs: a.pairs()?,
            }
        }
        "SESSION.GETDATA" => Command::GetData {
            id: a.id()?,
            touch: true,
        },
        "SESSION.SETDATA" => Command::SetData {
            id: a.id()?,
            data: a.next()?,
        },
        "SESSION.INC" => {
            let id = a.id()?;
            let name = a.next()?;
            let by = match a.options(&["BY"])?.get("BY") {
                None => 1,
                Some(v) => parse_i64(&v)
                    .ok_or_else(|| CommandError::new(String::from("BY must be an integer")))?,
            };
            Command::Inc { id, name, by }
        }
        "SESSION.FIND" => {
            let (name, value) = (a.next()?, a.next()?);
            let o = a.options(&["CURSOR", "COUNT"])?;
            match o.get("CURSOR") {
                None => Command::Find { name, value },
                Some(cursor) => Command::FindPage {
                    name,
                    value,
                    cursor,
                    count: o.page_count()?,
                },
            }
        }
        "SESSION.LISTVAR" => {
            let name = a.next()?;
            let o = a.options(&["CURSOR", "COUNT"])?;
            match o.get("CURSOR") {
                None => Command::ListVar { name },
                Some(cursor) => Command::ListVarPage {
                    name,
                    cursor,
                    count: o.page_count()?,
                },
            }
        }
        "SESSION.TIMEOUT" => {
            let id = a.id()?;
            let timeout_ms = match a.it.next() {
                None => None,
                Some(s) => Some(seconds_to_ms(number(&s, "the timeout")?)),
            };
            Command::Timeout { id, timeout_ms }
        }
        "SESSION.TTL" => Command::Ttl { id: a.id()? },
        "SESSION.TOUCH" => Command::Touch { id: a.id()? },
        "SESSION.LOCK" => {
            let id = a.id()?;
            let o = a.options(&["MODE", "WAIT", "LEASE"])?;
            Command::Lock {
                id,
                mode: o.mode()?,
                wait_ms: o.number("WAIT")?.unwrap_or(0),
                lease_ms: o.number("LEASE")?,
            }
        }
        "SESSION.UNLOCK" => Command::Unlock {
            id: a.id()?,
            key: a.key()?,
        },
        "SESSION.COMMIT" => Command::Commit {
            id: a.id()?,
            key: a.key()?,
        },
        "SESSION.OPEN" => {
            let id = a.id()?;
            let o = a.options(&["MODE", "WAIT", "LEASE", "CREATE"])?;
            Command::Open {
                id,
                mode: o.mode()?,
                wait_ms: o.number("WAIT")?.unwrap_or(0),
                lease_ms: o.number("LEASE")?,
                create: o.flag("CREATE"),
            }
        }
        "SESSION.CLOSE" => {
            let id = a.id()?;
            let key = a.key()?;
            let mut data = None;
            let mut sets = Vec::new();
            while let Some(word) = a.it.next() {
                if word.eq_ignore_ascii_case(b"DATA") {
                    data = Some(a.next()?);
                } else if word.eq_ignore_ascii_case(b"SET") {
                    // Everything after SET is name/value pairs.
                    sets = a.pairs()?;
                } else {
                    return Err(a.syntax_error(&word));
                }
            }
            Command::Close {
                id,
                key,
                data,
                sets,
            }
        }
        "SESSION.REGENERATE" => Command::Regenerate {
            id: a.id()?,
            new_id: a.it.next().map(SessionId::new),
        },
        "SESSION.RANDSTR" => Command::RandStr {
            len: usize::try_from(number(&a.next()?, "the length")?).unwrap_or(usize::MAX),
        },
        "PING" => {
            let message = a.it.next();
            a.done()?;
            Command::Ping { message }
        }
        "ECHO" => Command::Echo { message: a.next()? },
        "INFO" => {
            return Ok(Request::Info {
                sections: a.it.collect(),
            })
        }
        "HELLO" => {
            let protover = match a.it.next() {
                None => None,
                Some(v) => match &v[..] {
                    b"2" => Some(2),
                    b"3" => Some(3),
                    _ => {
                        return Err(CommandError {
                            code: "NOPROTO",
                            message: "sorry, this protocol version is not supported; use 2 or 3"
                                .into(),
                        })
                    }
                },
            };
            let mut auth = None;
            while let Some(option) = a.it.next() {
                if option.eq_ignore_ascii_case(b"AUTH") {
                    let (Some(user), Some(password)) = (a.it.next(), a.it.next()) else {
                        return Err(CommandError::new(
                            "syntax error in HELLO option 'AUTH': it takes a user and a password",
                        ));
                    };
                    auth = Some((user, password));
                } else if option.eq_ignore_ascii_case(b"SETNAME") {
                    // Connection names are accepted and not kept.
                    if a.it.next().is_none() {
                        return Err(CommandError::new(
                            "syntax error in HELLO option 'SETNAME': it takes a name",
                        ));
                    }
                } else {
                    return Err(CommandError::new(format!(
                        "syntax error in HELLO option '{}': the options are AUTH and SETNAME",
                        printable(&option)
                    )));
                }
            }
            return Ok(Request::Hello { protover, auth });
        }
        "AUTH" => {
            let first = a.next()?;
            return Ok(match a.it.next() {
                None => Request::Auth {
                    user: None,
                    password: first,
                },
                Some(password) if a.it.len() == 0 => Request::Auth {
                    user: Some(first),
                    password,
                },
                Some(_) => {
                    return Err(CommandError::new(
                        "syntax error: AUTH takes [user] password",
                    ))
                }
            });
        }
        "QUIT" => return Ok(Request::Quit),
        "COMMAND" => return command_reply(a.it.next()),
        other => {
            return Err(CommandError::new(format!(
                "command '{other}' is listed but not handled"
            )))
        }
    };
    Ok(Request::Engine(cmd))
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`, `COMMAND INFO`.
fn command_reply(sub: Option<Bytes>) -> Result<Request> {
    let info = |c: &CommandSpec| {
        let flag = if c.write { "write" } else { "readonly" };
        let (first, last) = if c.name.starts_with("SESSION.") && c.arity.abs() > 1 {
            (1, 1)
        } else {
            (0, 0)
        };
        Reply::Array(vec![
            Reply::bulk(c.name.to_ascii_lowercase()),
            Reply::Int(c.arity),
            Reply::Array(vec![Reply::Status(flag)]),
            Reply::Int(first),
            Reply::Int(last),
            Reply::Int(i64::from(first > 0)),
        ])
    };
    let reply = match sub.as_deref().map(|s| s.to_ascii_uppercase()) {
        None => Reply::Array(COMMANDS.iter().map(info).collect()),
        Some(s) if s == b"COUNT" => Reply::Int(COMMANDS.len() as i64),
        Some(s) if s == b"INFO" => Reply::Array(COMMANDS.iter().map(info).collect()),
        Some(s) if s == b"DOCS" => Reply::Map(
            COMMANDS
                .iter()
                .map(|c| {
                    (
                        Reply::bulk(c.name.to_ascii_lowercase()),
                        Reply::Map(vec![(Reply::text("summary"), Reply::text(c.summary))]),
                    )
                })
                .collect(),
        ),
        Some(s) => {
            return Err(CommandError::new(format!(
                "unknown COMMAND subcommand '{}'; try COUNT, INFO or DOCS",
                printable(&s)
            )))
        }
    };
    Ok(Request::Reply(reply))
}

struct Args {
    spec: &'static CommandSpec,
    it: std::vec::IntoIter<Bytes>,
}

impl Args {
    fn next(&mut self) -> Result<Bytes> {
        self.it.next().ok_or_else(|| self.wrong_args())
    }

    fn id(&mut self) -> Result<SessionId> {
        self.next().map(SessionId::new)
    }

    fn key(&mut self) -> Result<u64> {
        let v = self.next()?;
        number(&v, "the lock key")
    }

    fn done(&mut self) -> Result<()> {
        match self.it.next() {
            None => Ok(()),
            Some(_) => Err(self.wrong_args()),
        }
    }

    fn wrong_args(&self) -> CommandError {
        CommandError::new(format!(
            "wrong number of arguments for '{}': {} {}",
            self.spec.name, self.spec.name, self.spec.syntax
        ))
    }

    fn syntax_error(&self, word: &[u8]) -> CommandError {
        CommandError::new(format!(
            "syntax error at '{}': {} {}",
            printable(word),
            self.spec.name,
            self.spec.syntax
        ))
    }

    /// The rest as name/value pairs (at least one).
    fn pairs(&mut self) -> Result<Vec<(Bytes, Bytes)>> {
        let rest: Vec<Bytes> = self.it.by_ref().collect();
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(self.wrong_args());
        }
        let mut pairs = Vec::with_capacity(rest.len() / 2);
        let mut it = rest.into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            pairs.push((n, v));
        }
        Ok(pairs)
    }

    /// The rest as `KEYWORD value` options in any order; `CREATE` is a flag.
    fn options(&mut self, allowed: &[&'static str]) -> Result<Options> {
        let mut found = Vec::new();
        while let Some(word) = self.it.next() {
            let Some(&kw) = allowed
                .iter()
                .find(|k| k.as_bytes().eq_ignore_ascii_case(&word))
            else {
                return Err(self.syntax_error(&word));
            };
            if kw == "CREATE" {
                found.push((kw, Bytes::new()));
                continue;
            }
            let Some(value) = self.it.next() else {
                return Err(CommandError::new(format!(
                    "{kw} needs a value: {} {}",
                    self.spec.name, self.spec.syntax
                )));
            };
            found.push((kw, value));
        }
        Ok(Options(found))
    }
}

struct Options(Vec<(&'static str, Bytes)>);

impl Options {
    /// The last value given for `kw`.
    fn get(&self, kw: &str) -> Option<Bytes> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == kw)
            .map(|(_, v)| v.clone())
    }

    fn flag(&self, kw: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == kw)
    }

    fn number(&self, kw: &str) -> Result<Option<u64>> {
        self.get(kw).map(|v| number(&v, kw)).transpose()
    }

    /// A page's `COUNT` (default 100; the engine caps it).
    fn page_count(&self) -> Result<usize> {
        Ok(self
            .number("COUNT")?
            .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    fn seconds(&self, kw: &str) -> Result<Option<u64>> {
        Ok(self.number(kw)?.map(seconds_to_ms))
    }

    fn mode(&self) -> Result<LockMode> {
        match self.get("MODE") {
            None => Ok(LockMode::Write),
            Some(m) if m.eq_ignore_ascii_case(b"write") => Ok(LockMode::Write),
            Some(m) if m.eq_ignore_ascii_case(b"read") => Ok(LockMode::Read),
            Some(m) => Err(CommandError::new(format!(
                "MODE must be write or read, not '{}'",
                printable(&m)
            ))),
        }
    }
}

fn number(v: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.starts_with('+'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            CommandError::new(format!(
                "{what} must be a non-negative integer, not '{}'",
                printable(v)
            ))
        })
}

fn parse_i64(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.starts_with('+'))?
        .parse()
        .ok()
}

/// Seconds to ms; an absurd number saturates and the engine's limit refuses it.
fn seconds_to_ms(s: u64) -> u64 {
    s.saturating_mul(1000)
}

/// A client-supplied word, safe to put in an error line.
fn printable(b: &[u8]) -> String {
    SessionId::new(Bytes::copy_from_slice(&b[..b.len().min(64)])).to_string()
}

#[cfg(test)]
mod tests;
