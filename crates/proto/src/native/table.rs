//! The native command table: one row per command with everything about
//! it the protocol knows — its name, arity, one-line syntax and summary
//! (for argument checks, error messages and `COMMAND`), and its parser,
//! which turns the arguments into the engine [`Command`] (or a request the
//! connection answers itself). What the command then does is its arm of
//! `Engine::execute` in `sessiond-core`; docs/protocol.md documents it
//! (tests/it/docs.rs checks every row is there).

use sessiond_core::{Command, SessionId};

use crate::names::NameTable;

use super::{
    command_reply, number, parse_i64, printable, seconds_to_ms, Args, CommandError, Request, Result,
};

/// One native command.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// The upper-case name clients send.
    pub name: &'static str,
    /// Redis-style arity counting the name: `n` exactly, `-n` at least n.
    pub arity: i64,
    /// Whether it changes data (for `COMMAND`'s flags).
    pub write: bool,
    /// The syntax after the name.
    pub syntax: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Its arguments (after the name, arity checked) into a request.
    pub(super) parse: fn(&mut Args) -> Result<Request>,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .field("arity", &self.arity)
            .finish_non_exhaustive()
    }
}

const fn spec(
    name: &'static str,
    arity: i64,
    write: bool,
    syntax: &'static str,
    summary: &'static str,
    parse: fn(&mut Args) -> Result<Request>,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        write,
        syntax,
        summary,
        parse,
    }
}

/// Every command the native door understands.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "SESSION.CREATE",
        -2,
        true,
        "id [CLASS c] [DATA blob] [TIMEOUT s]",
        "Create a session; error if it exists.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let o = a.options(&["CLASS", "DATA", "TIMEOUT"])?;
                Command::Create {
                    id,
                    class: o.get("CLASS"),
                    data: o.get("DATA"),
                    timeout_ms: o.seconds("TIMEOUT")?,
                }
            }))
        },
    ),
    spec(
        "SESSION.UNIQ",
        -1,
        true,
        "[LEN n] [CLASS c] [DATA blob] [TIMEOUT s]",
        "Create a session with a fresh random id and return the id.",
        |a| {
            Ok(Request::Engine({
                let o = a.options(&["LEN", "CLASS", "DATA", "TIMEOUT"])?;
                Command::Uniq {
                    len: o
                        .number("LEN")?
                        .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                    class: o.get("CLASS"),
                    data: o.get("DATA"),
                    timeout_ms: o.seconds("TIMEOUT")?,
                }
            }))
        },
    ),
    spec(
        "SESSION.DESTROY",
        2,
        true,
        "id",
        "Delete a session, its variables and its lock.",
        |a| Ok(Request::Engine(Command::Destroy { id: a.id()? })),
    ),
    spec(
        "SESSION.EXISTS",
        2,
        false,
        "id",
        "1 if the session exists, else 0.",
        |a| Ok(Request::Engine(Command::Exists { id: a.id()? })),
    ),
    spec(
        "SESSION.INFO",
        2,
        false,
        "id",
        "Metadata: class, times, timeout, ttl, version, lock state.",
        |a| Ok(Request::Engine(Command::Info { id: a.id()? })),
    ),
    spec(
        "SESSION.EXPORT",
        2,
        false,
        "id",
        "The whole session (times, data, explicit variables), unrefreshed.",
        |a| Ok(Request::Engine(Command::Export { id: a.id()? })),
    ),
    spec(
        "SESSION.COUNT",
        -1,
        false,
        "[CLASS c]",
        "How many sessions (of a class).",
        |a| {
            Ok(Request::Engine(Command::Count {
                class: a.options(&["CLASS"])?.get("CLASS"),
            }))
        },
    ),
    spec(
        "SESSION.LIST",
        -1,
        false,
        "[CLASS c]",
        "Every session id (of a class).",
        |a| {
            Ok(Request::Engine(Command::List {
                class: a.options(&["CLASS"])?.get("CLASS"),
            }))
        },
    ),
    spec(
        "SESSION.SCAN",
        -2,
        false,
        "cursor [COUNT n] [CLASS c]",
        "One page of ids; start at 0, stop when 0 comes back.",
        |a| {
            Ok(Request::Engine({
                let cursor = a.next()?;
                let o = a.options(&["COUNT", "CLASS"])?;
                Command::Scan {
                    cursor,
                    count: o.page_count()?,
                    class: o.get("CLASS"),
                }
            }))
        },
    ),
    spec(
        "SESSION.GET",
        -3,
        false,
        "id name [DEFAULT v]",
        "One variable (DEFAULT or nil when absent).",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let name = a.next()?;
                Command::Get {
                    id,
                    name,
                    default: a.options(&["DEFAULT"])?.get("DEFAULT"),
                }
            }))
        },
    ),
    spec(
        "SESSION.SET",
        4,
        true,
        "id name value",
        "Set one variable.",
        |a| {
            Ok(Request::Engine(Command::Set {
                id: a.id()?,
                name: a.next()?,
                value: a.next()?,
            }))
        },
    ),
    spec(
        "SESSION.DEL",
        3,
        true,
        "id name",
        "Remove one variable; 1 if it was there.",
        |a| {
            Ok(Request::Engine(Command::Del {
                id: a.id()?,
                name: a.next()?,
            }))
        },
    ),
    spec(
        "SESSION.GETALL",
        2,
        false,
        "id",
        "Every variable, as a map.",
        |a| Ok(Request::Engine(Command::GetAll { id: a.id()? })),
    ),
    spec(
        "SESSION.SETALL",
        -4,
        true,
        "id name value [name value ...]",
        "Set many variables atomically.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                Command::SetAll {
                    id,
                    pairs: a.pairs()?,
                }
            }))
        },
    ),
    spec(
        "SESSION.GETDATA",
        2,
        false,
        "id",
        "The unstructured data blob.",
        |a| {
            Ok(Request::Engine(Command::GetData {
                id: a.id()?,
                touch: true,
            }))
        },
    ),
    spec(
        "SESSION.SETDATA",
        3,
        true,
        "id blob",
        "Replace the unstructured data blob.",
        |a| {
            Ok(Request::Engine(Command::SetData {
                id: a.id()?,
                data: a.next()?,
            }))
        },
    ),
    spec(
        "SESSION.INC",
        -3,
        true,
        "id name [BY n]",
        "Add n (default 1) to an integer variable; return the sum.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let name = a.next()?;
                let by = match a.options(&["BY"])?.get("BY") {
                    None => 1,
                    Some(v) => parse_i64(&v)
                        .ok_or_else(|| CommandError::new(String::from("BY must be an integer")))?,
                };
                Command::Inc { id, name, by }
            }))
        },
    ),
    spec(
        "SESSION.FIND",
        -3,
        false,
        "name value [CURSOR c [COUNT n]]",
        "Ids of sessions whose variable equals value; with CURSOR, one page (start at 0).",
        |a| {
            Ok(Request::Engine({
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
            }))
        },
    ),
    spec(
        "SESSION.LISTVAR",
        -2,
        false,
        "name [CURSOR c [COUNT n]]",
        "Map of id to value for sessions having the variable; with CURSOR, one page.",
        |a| {
            Ok(Request::Engine({
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
            }))
        },
    ),
    spec(
        "SESSION.TIMEOUT",
        -2,
        true,
        "id [seconds]",
        "Get, or set, the idle timeout.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let timeout_ms = match a.it.next() {
                    None => None,
                    Some(s) => Some(seconds_to_ms(number(&s, "the timeout")?)),
                };
                Command::Timeout { id, timeout_ms }
            }))
        },
    ),
    spec(
        "SESSION.TTL",
        2,
        false,
        "id",
        "Seconds left before the session expires.",
        |a| Ok(Request::Engine(Command::Ttl { id: a.id()? })),
    ),
    spec(
        "SESSION.TOUCH",
        2,
        true,
        "id",
        "Refresh the session's expiry.",
        |a| Ok(Request::Engine(Command::Touch { id: a.id()? })),
    ),
    spec(
        "SESSION.LOCK",
        -2,
        true,
        "id [MODE write|read] [WAIT ms] [LEASE ms]",
        "Take the lock, waiting up to WAIT ms; return the fencing key.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let o = a.options(&["MODE", "WAIT", "LEASE"])?;
                Command::Lock {
                    id,
                    mode: o.mode()?,
                    wait_ms: o.number("WAIT")?.unwrap_or(0),
                    lease_ms: o.number("LEASE")?,
                }
            }))
        },
    ),
    spec(
        "SESSION.UNLOCK",
        3,
        true,
        "id key",
        "Release the lock held by key.",
        |a| {
            Ok(Request::Engine(Command::Unlock {
                id: a.id()?,
                key: a.key()?,
            }))
        },
    ),
    spec(
        "SESSION.COMMIT",
        3,
        true,
        "id key",
        "Turn a write lock into a read lock.",
        |a| {
            Ok(Request::Engine(Command::Commit {
                id: a.id()?,
                key: a.key()?,
            }))
        },
    ),
    spec(
        "SESSION.OPEN",
        -2,
        true,
        "id [MODE write|read] [WAIT ms] [LEASE ms] [CREATE]",
        "Lock and read data and variables in one round trip.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let o = a.options(&["MODE", "WAIT", "LEASE", "CREATE"])?;
                Command::Open {
                    id,
                    mode: o.mode()?,
                    wait_ms: o.number("WAIT")?.unwrap_or(0),
                    lease_ms: o.number("LEASE")?,
                    create: o.flag("CREATE"),
                }
            }))
        },
    ),
    spec(
        "SESSION.CLOSE",
        -3,
        true,
        "id key [DATA blob] [SET name value [name value ...]]",
        "Write, then unlock, in one round trip.",
        |a| {
            Ok(Request::Engine({
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
            }))
        },
    ),
    spec(
        "SESSION.REGENERATE",
        -2,
        true,
        "id [newid]",
        "Rename the session atomically, keeping data, variables and lock.",
        |a| {
            Ok(Request::Engine(Command::Regenerate {
                id: a.id()?,
                new_id: a.it.next().map(SessionId::new),
            }))
        },
    ),
    spec(
        "SESSION.PLUGIN",
        -3,
        true,
        "id name [param ...]",
        "Run plugin function name on the session, all or nothing; its answer.",
        |a| {
            Ok(Request::Engine({
                let id = a.id()?;
                let name = a.next()?;
                let args = a.it.by_ref().collect();
                Command::Call {
                    func: sessiond_core::script::Func::Plugin(name),
                    ids: vec![id],
                    args,
                }
            }))
        },
    ),
    spec(
        "SESSION.RANDSTR",
        2,
        false,
        "n",
        "A random string of n URL-safe characters.",
        |a| {
            Ok(Request::Engine(Command::RandStr {
                len: usize::try_from(number(&a.next()?, "the length")?).unwrap_or(usize::MAX),
            }))
        },
    ),
    spec(
        "PING",
        -1,
        false,
        "[message]",
        "PONG, or the message.",
        |a| {
            Ok(Request::Engine({
                let message = a.it.next();
                a.done()?;
                Command::Ping { message }
            }))
        },
    ),
    spec("ECHO", 2, false, "message", "The message.", |a| {
        Ok(Request::Engine(Command::Echo { message: a.next()? }))
    }),
    spec(
        "HELLO",
        -1,
        false,
        "[2|3 [AUTH user password] [SETNAME name]]",
        "Switch RESP version, optionally logging in; describe the server.",
        |a| {
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
            Ok(Request::Hello { protover, auth })
        },
    ),
    spec(
        "AUTH",
        -2,
        false,
        "[user] password",
        "Log in (without a user: as the user named default).",
        |a| {
            let first = a.next()?;
            Ok(match a.it.next() {
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
            })
        },
    ),
    spec(
        "SESSION.RELOAD",
        1,
        false,
        "",
        "Read the plugins directory again (admin); the functions loaded and the files that failed.",
        |_| Ok(Request::Reload),
    ),
    spec("QUIT", 1, false, "", "Close the connection.", |_| {
        Ok(Request::Quit)
    }),
    spec(
        "INFO",
        -1,
        false,
        "[section ...]",
        "Server statistics, in Redis's INFO format.",
        |a| {
            Ok(Request::Info {
                sections: a.it.by_ref().collect(),
            })
        },
    ),
    spec(
        "COMMAND",
        -1,
        false,
        "[COUNT|DOCS|INFO ...]",
        "This table.",
        |a| command_reply(a.it.next()),
    ),
];

/// The spec for `name` (any case; every name is up to 32 bytes, as a
/// test checks).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static NAMES: std::sync::OnceLock<NameTable<32, &'static CommandSpec>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| NameTable::new(COMMANDS.iter().map(|c| (c.name, c))));
    names.get(name).map(|(_, spec)| spec)
}
