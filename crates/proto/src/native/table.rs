//! The native command table: names, arities and one-line summaries, for
//! argument checks and for `COMMAND`.

/// One native command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

const fn spec(
    name: &'static str,
    arity: i64,
    write: bool,
    syntax: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        write,
        syntax,
        summary,
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
    ),
    spec(
        "SESSION.UNIQ",
        -1,
        true,
        "[LEN n] [CLASS c] [DATA blob] [TIMEOUT s]",
        "Create a session with a fresh random id and return the id.",
    ),
    spec(
        "SESSION.DESTROY",
        2,
        true,
        "id",
        "Delete a session, its variables and its lock.",
    ),
    spec(
        "SESSION.EXISTS",
        2,
        false,
        "id",
        "1 if the session exists, else 0.",
    ),
    spec(
        "SESSION.INFO",
        2,
        false,
        "id",
        "Metadata: class, times, timeout, ttl, version, lock state.",
    ),
    spec(
        "SESSION.EXPORT",
        2,
        false,
        "id",
        "The whole session (times, data, explicit variables), unrefreshed.",
    ),
    spec(
        "SESSION.COUNT",
        -1,
        false,
        "[CLASS c]",
        "How many sessions (of a class).",
    ),
    spec(
        "SESSION.LIST",
        -1,
        false,
        "[CLASS c]",
        "Every session id (of a class).",
    ),
    spec(
        "SESSION.SCAN",
        -2,
        false,
        "cursor [COUNT n] [CLASS c]",
        "One page of ids; start at 0, stop when 0 comes back.",
    ),
    spec(
        "SESSION.GET",
        -3,
        false,
        "id name [DEFAULT v]",
        "One variable (DEFAULT or nil when absent).",
    ),
    spec("SESSION.SET", 4, true, "id name value", "Set one variable."),
    spec(
        "SESSION.DEL",
        3,
        true,
        "id name",
        "Remove one variable; 1 if it was there.",
    ),
    spec(
        "SESSION.GETALL",
        2,
        false,
        "id",
        "Every variable, as a map.",
    ),
    spec(
        "SESSION.SETALL",
        -4,
        true,
        "id name value [name value ...]",
        "Set many variables atomically.",
    ),
    spec(
        "SESSION.GETDATA",
        2,
        false,
        "id",
        "The unstructured data blob.",
    ),
    spec(
        "SESSION.SETDATA",
        3,
        true,
        "id blob",
        "Replace the unstructured data blob.",
    ),
    spec(
        "SESSION.INC",
        -3,
        true,
        "id name [BY n]",
        "Add n (default 1) to an integer variable; return the sum.",
    ),
    spec(
        "SESSION.FIND",
        -3,
        false,
        "name value [CURSOR c [COUNT n]]",
        "Ids of sessions whose variable equals value; with CURSOR, one page (start at 0).",
    ),
    spec(
        "SESSION.LISTVAR",
        -2,
        false,
        "name [CURSOR c [COUNT n]]",
        "Map of id to value for sessions having the variable; with CURSOR, one page.",
    ),
    spec(
        "SESSION.TIMEOUT",
        -2,
        true,
        "id [seconds]",
        "Get, or set, the idle timeout.",
    ),
    spec(
        "SESSION.TTL",
        2,
        false,
        "id",
        "Seconds left before the session expires.",
    ),
    spec(
        "SESSION.TOUCH",
        2,
        true,
        "id",
        "Refresh the session's expiry.",
    ),
    spec(
        "SESSION.LOCK",
        -2,
        true,
        "id [MODE write|read] [WAIT ms] [LEASE ms]",
        "Take the lock, waiting up to WAIT ms; return the fencing key.",
    ),
    spec(
        "SESSION.UNLOCK",
        3,
        true,
        "id key",
        "Release the lock held by key.",
    ),
    spec(
        "SESSION.COMMIT",
        3,
        true,
        "id key",
        "Turn a write lock into a read lock.",
    ),
    spec(
        "SESSION.OPEN",
        -2,
        true,
        "id [MODE write|read] [WAIT ms] [LEASE ms] [CREATE]",
        "Lock and read data and variables in one round trip.",
    ),
    spec(
        "SESSION.CLOSE",
        -3,
        true,
        "id key [DATA blob] [SET name value [name value ...]]",
        "Write, then unlock, in one round trip.",
    ),
    spec(
        "SESSION.REGENERATE",
        -2,
        true,
        "id [newid]",
        "Rename the session atomically, keeping data, variables and lock.",
    ),
    spec(
        "SESSION.RANDSTR",
        2,
        false,
        "n",
        "A random string of n URL-safe characters.",
    ),
    spec("PING", -1, false, "[message]", "PONG, or the message."),
    spec("ECHO", 2, false, "message", "The message."),
    spec(
        "HELLO",
        -1,
        false,
        "[2|3 [AUTH user password] [SETNAME name]]",
        "Switch RESP version, optionally logging in; describe the server.",
    ),
    spec(
        "AUTH",
        -2,
        false,
        "[user] password",
        "Log in (without a user: as the user named default).",
    ),
    spec("QUIT", 1, false, "", "Close the connection."),
    spec(
        "INFO",
        -1,
        false,
        "[section ...]",
        "Server statistics, in Redis's INFO format.",
    ),
    spec("COMMAND", -1, false, "[COUNT|DOCS|INFO ...]", "This table."),
];

/// The spec for `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}
