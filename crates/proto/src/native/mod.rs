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
    /// `SESSION.RELOAD`: read the plugins directory again (an admin's,
    /// server-wide, like SIGHUP).
    Reload,
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
    (spec.parse)(&mut a)
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
