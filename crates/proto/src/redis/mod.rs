//! The Redis door: the commands phpredis's session handler sends (and the
//! generic ones people poke with), on the native port, translated onto
//! sessions.
//!
//! phpredis (`session.save_handler = redis`) sends, per request: `GET key`
//! (or `GETEX key EX ttl`), `SETEX key ttl data`, `DEL key`, `EXISTS key`
//! (strict mode), `EXPIRE key ttl` (lazy write); with
//! `redis.session.locking_enabled=1` also `SET key_LOCK secret NX PX ms`
//! (retried while it answers nil), `GET key_LOCK`, and the unlock script
//! through `EVALSHA`, then `EVAL`. Keys map onto sessions per [`RedisKeys`];
//! a lock key is the session's lock, shared with `SESSION.LOCK`.
//!
//! As in Redis, `SET` without `EX`/`PX` leaves a key without expiry
//! ([`sessiond_core::NEVER`]; `TTL` -1); a timeout over `max_timeout` is
//! capped by the engine.

mod keys;

use bytes::Bytes;
use sessiond_core::{Command, Error, ExpireIf, Reply, SessionId, StoreIf, StoreReply, NEVER};

pub use keys::{glob_match, Key, RedisKeys, LOCK_SUFFIX};

use crate::names::NameTable;
use crate::native::CommandError;

/// The Redis version the door claims (`INFO`'s `redis_version`, scripts'
/// `redis.REDIS_VERSION`).
pub const REDIS_VERSION: &str = "7.2.0";

/// The SHA1 of phpredis's session unlock script, which it sends first.
pub const UNLOCK_SHA: &[u8] = b"b70c2384248f88e6b75b9f89241a180f856ad852";
/// phpredis's session unlock script, which it sends when EVALSHA fails.
pub const UNLOCK_LUA: &[u8] =
    b"if redis.call(\"get\",KEYS[1]) == ARGV[1] then return redis.call(\"del\",KEYS[1]) else return 0 end";

/// Engine commands, and how their results become one Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisRequest {
    pub commands: Commands,
    pub render: Render,
}

/// A request's engine commands: most requests are one, held without an
/// allocation of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commands {
    One(Command),
    Many(Vec<Command>),
}

impl Commands {
    /// The command, when there is exactly one.
    pub fn single(self) -> Result<Command, Vec<Command>> {
        match self {
            Commands::One(c) => Ok(c),
            Commands::Many(mut v) if v.len() == 1 => v.pop().ok_or(v),
            Commands::Many(v) => Err(v),
        }
    }
}

impl std::ops::Deref for Commands {
    type Target = [Command];

    fn deref(&self) -> &[Command] {
        match self {
            Commands::One(c) => std::slice::from_ref(c),
            Commands::Many(v) => v,
        }
    }
}

impl From<Command> for Commands {
    fn from(c: Command) -> Self {
        Commands::One(c)
    }
}

impl From<Vec<Command>> for Commands {
    fn from(v: Vec<Command>) -> Self {
        Commands::Many(v)
    }
}

impl IntoIterator for Commands {
    type Item = Command;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Command>, std::vec::IntoIter<Command>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Commands::One(c) => Some(c).into_iter().chain(Vec::new()),
            Commands::Many(v) => None.into_iter().chain(v),
        }
    }
}

impl PartialEq<Vec<Command>> for Commands {
    fn eq(&self, other: &Vec<Command>) -> bool {
        **self == **other
    }
}

/// How the results of a [`RedisRequest`] become one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Render {
    /// The last result; a missing session reads as nil (`GET`, and
    /// `GETEX` after its timeout change).
    NilIfMissing,
    /// The one result as it is.
    Plain,
    /// A lock grant is `+OK`, a busy lock nil (`SET key_LOCK … NX`).
    LockAcquired,
    /// How many results were a success (`DEL`, `EXISTS`).
    Count,
    /// A TTL, or `:-2` for a missing session.
    Ttl,
    /// `+string` or `+none` (`TYPE`).
    Type,
    /// Session ids → keys matching the pattern (`KEYS`), or a one-page
    /// `SCAN` reply.
    Keys { pattern: Bytes, scan: bool },
    /// `+OK` once the flush ran (`FLUSHDB`).
    Flushed,
    /// One reply per result, a missing session as nil (`MGET`).
    Each,
    /// The integer result; a missing session as `:0` (`EXPIRE`,
    /// `PERSIST`).
    IntOrZero,
    /// A `PTTL` result as the Unix time of the deadline, in ms or s; `-1`
    /// without expiry, `-2` without the key (`EXPIRETIME`).
    ExpireTime { ms: bool },
    /// `+OK` once every result is (`MSET`); else the first error.
    AllOk,
    /// `:1` if stored, `:0` if not (`SETNX`).
    Stored,
    /// Scripting: the connection answers it with the server's script
    /// host and the tenant's script cache; no engine command yet.
    Script(Scripting),

    /// A fixed reply computed by the codec; no engine command.
    Fixed(Reply),
}

/// A scripting request (`EVAL`, `EVALSHA`, `FCALL`, `SCRIPT …`), which
/// the connection resolves (an `EVALSHA` against the tenant's cache)
/// before it becomes a [`Command::Call`] ([`script_call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripting {
    /// `EVAL script numkeys key... arg...`.
    Eval {
        source: Bytes,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
    },
    /// `EVALSHA sha numkeys key... arg...`.
    EvalSha {
        sha: Bytes,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
    },
    /// `FCALL function numkeys key... arg...`.
    FCall {
        name: Bytes,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
    },
    /// `SCRIPT LOAD script`.
    Load(Bytes),
    /// `SCRIPT EXISTS sha...`.
    Exists(Vec<Bytes>),
    /// `SCRIPT FLUSH [ASYNC|SYNC]`.
    Flush,
}

/// The [`Command::Call`] of `func`, on the sessions its `keys` map onto
/// (lock keys onto their sessions), in order.
pub fn script_call(
    func: sessiond_core::script::Func,
    keys: &[Bytes],
    args: Vec<Bytes>,
    map: &RedisKeys,
) -> Command {
    Command::Call {
        ids: keys.iter().map(|k| lock_id(map, k)).collect(),
        func,
        args,
    }
}

/// An argument kept past its request (a stored value, a lock's owner, a
/// cached script), copied out of the request's bytes: the door's arguments
/// are slices of its read buffer ([`crate::resp::with_args`]), which
/// cannot outlive the request. Everything else a parser takes
/// from the arguments lives only as long as the request.
fn kept(arg: &[u8]) -> Bytes {
    Bytes::copy_from_slice(arg)
}

fn err(msg: impl Into<String>) -> CommandError {
    CommandError {
        code: "ERR",
        message: msg.into(),
    }
}

fn arity(name: &str) -> CommandError {
    err(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

fn int(v: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err("value is not an integer or out of range"))
}

/// A positive expire in ms from `n` units of `unit_ms`.
fn expire_ms(n: i64, unit_ms: u64, cmd: &str) -> Result<u64, CommandError> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(|| err(format!("invalid expire time in '{cmd}' command")))
}

/// The ms from now until Unix time `at` (in units of `unit_ms`); an error
/// when it is already past (the caller deletes the key then).
fn expire_at(at: i64, unit_ms: u64, cmd: &str) -> Result<u64, CommandError> {
    let unit = i64::try_from(unit_ms).unwrap_or(1);
    expire_ms(
        at.saturating_mul(unit).saturating_sub(now_unix_ms()),
        1,
        cmd,
    )
}

/// The Unix time now, in ms.
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `name` is a Redis command this door knows (any case).
pub fn is_redis_command(name: &[u8]) -> bool {
    find(name).is_some()
}

/// A Redis command name, found: look a request's name up once
/// ([`lookup`]) and hand it to [`Known::transaction`] and
/// [`Known::parse`].
#[derive(Clone, Copy)]
pub struct Known {
    name: &'static str,
    /// None: a transaction command.
    row: Option<&'static RedisCommand>,
}

/// The Redis command `name` spells (any case), if it is one.
pub fn lookup(name: &[u8]) -> Option<Known> {
    find(name).map(|(name, row)| Known { name, row })
}

impl Known {
    /// The request (name first) as a transaction command, if it is one.
    pub fn transaction(
        self,
        args: &[&[u8]],
        keys: &RedisKeys,
    ) -> Option<Result<Transaction, CommandError>> {
        match self.row {
            Some(_) => None,
            None => transaction(args, keys),
        }
    }

    /// Translates the request (name first; not a transaction command).
    pub fn parse(
        self,
        args: &[&[u8]],
        keys: &RedisKeys,
        client_id: u64,
    ) -> Result<RedisRequest, CommandError> {
        match self.row {
            Some(c) => (c.parse)(
                self.name,
                args.get(1..).unwrap_or_default(),
                keys,
                client_id,
            ),
            None => parse(args, keys, client_id),
        }
    }
}

/// The commands of a Redis transaction, which the connection answers
/// itself (it holds the queue and the watched keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    Multi,
    Exec,
    Discard,
    /// The sessions whose change makes the next `EXEC` fail.
    Watch(Vec<SessionId>),
    Unwatch,
}

const TRANSACTION_WORDS: &[&str] = &["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"];

/// `args` as a transaction command, if it is one (name first).
pub fn transaction(args: &[&[u8]], keys: &RedisKeys) -> Option<Result<Transaction, CommandError>> {
    let (name, rest) = args.split_first()?;
    let word = TRANSACTION_WORDS
        .iter()
        .find(|w| w.as_bytes().eq_ignore_ascii_case(name))?;
    let none = |t: Transaction| {
        if rest.is_empty() {
            Ok(t)
        } else {
            Err(arity(word))
        }
    };
    Some(match *word {
        "MULTI" => none(Transaction::Multi),
        "EXEC" => none(Transaction::Exec),
        "DISCARD" => none(Transaction::Discard),
        "UNWATCH" => none(Transaction::Unwatch),
        _ if rest.is_empty() => Err(arity(word)),
        _ => Ok(Transaction::Watch(
            rest.iter().map(|k| lock_id(keys, k)).collect(),
        )),
    })
}

/// One Redis command (or a family spelled several ways): its names and its
/// parser, which turns the arguments (after the name) into engine commands
/// and how their results fold into one Redis reply.
pub struct RedisCommand {
    pub names: &'static [&'static str],
    parse: Parse,
}

/// A Redis command's parser: its name as sent (upper case), the arguments
/// after it, the key mapping, the connection's id (`CLIENT ID`).
type Parse = fn(&str, &[&[u8]], &RedisKeys, u64) -> Result<RedisRequest, CommandError>;

/// Every Redis command the door knows, one row each.
pub const COMMANDS: &[RedisCommand] = &[
    RedisCommand {
        names: &["GET"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            match keys.map(key) {
                Key::Session(id) => {
                    one(Command::GetData { id, touch: false }, Render::NilIfMissing)
                }
                Key::Lock(id) => one(Command::LockOwner { id }, Render::Plain),
            }
        },
    },
    RedisCommand {
        names: &["GETEX"],
        parse: |name, a, keys, _| {
            let (key, opts) = a.split_first().ok_or_else(|| arity(name))?;
            let Key::Session(id) = keys.map(key) else {
                return one(
                    Command::LockOwner {
                        id: lock_id(keys, key),
                    },
                    Render::Plain,
                );
            };
            // None: leave the timeout; Some(None): no expiry (PERSIST).
            let timeout = match opts {
                [] => None,
                [w] if w.eq_ignore_ascii_case(b"PERSIST") => Some(None),
                [w, n] if w.eq_ignore_ascii_case(b"EX") => {
                    Some(Some(expire_ms(int(n)?, 1000, "getex")?))
                }
                [w, n] if w.eq_ignore_ascii_case(b"PX") => {
                    Some(Some(expire_ms(int(n)?, 1, "getex")?))
                }
                [w, n] if w.eq_ignore_ascii_case(b"EXAT") => {
                    Some(Some(expire_at(int(n)?, 1000, "getex")?))
                }
                [w, n] if w.eq_ignore_ascii_case(b"PXAT") => {
                    Some(Some(expire_at(int(n)?, 1, "getex")?))
                }
                _ => return Err(err("syntax error")),
            };
            let mut commands = Vec::new();
            if let Some(timeout_ms) = timeout {
                commands.push(Command::Expire {
                    id: id.clone(),
                    timeout_ms,
                    when: ExpireIf::Always,
                });
            }
            commands.push(Command::GetData { id, touch: false });
            one(commands, Render::NilIfMissing)
        },
    },
    RedisCommand {
        names: &["SET"],
        parse: |_, a, keys, _| parse_set(a, keys),
    },
    RedisCommand {
        names: &["SETEX", "PSETEX"],
        parse: |name, a, keys, _| {
            let [key, n, value] = a else {
                return Err(arity(name));
            };
            let unit = if name == "SETEX" { 1000 } else { 1 };
            let ms = expire_ms(int(n)?, unit, &name.to_ascii_lowercase())?;
            match keys.map(key) {
                Key::Session(id) => one(
                    Command::Store {
                        id,
                        data: kept(value),
                        timeout_ms: Some(ms),
                        condition: StoreIf::Always,
                        flags: None,
                        reply: StoreReply::Ok,
                        key_form: keys.form_of(key),
                    },
                    Render::Plain,
                ),
                Key::Lock(_) => Err(lock_key_misuse()),
            }
        },
    },
    RedisCommand {
        names: &["DEL", "UNLINK"],
        parse: |name, a, keys, _| {
            let mut commands = per_key(
                name,
                a,
                keys,
                |id| Command::Destroy { id },
                |id| Command::UnlockOwned { id, owner: None },
            )?;
            // Locks first: a session destroyed takes its lock with it, so
            // `DEL sess sess_LOCK` would count the lock as not there.
            commands.sort_by_key(|c| !matches!(c, Command::UnlockOwned { .. }));
            one(commands, Render::Count)
        },
    },
    RedisCommand {
        names: &["EXISTS"],
        parse: |name, a, keys, _| {
            let commands = per_key(
                name,
                a,
                keys,
                |id| Command::Exists { id },
                |id| Command::LockOwner { id },
            )?;
            one(commands, Render::Count)
        },
    },
    RedisCommand {
        names: &["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"],
        parse: |name, a, keys, _| {
            let [key, n, opts @ ..] = a else {
                return Err(arity(name));
            };
            let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
            for o in opts {
                match o.to_ascii_uppercase().as_slice() {
                    b"NX" => nx = true,
                    b"XX" => xx = true,
                    b"GT" => gt = true,
                    b"LT" => lt = true,
                    _ => {
                        return Err(err(format!(
                            "Unsupported option {}",
                            String::from_utf8_lossy(o)
                        )))
                    }
                }
            }
            if nx && (xx || gt || lt) {
                return Err(err(
                    "NX and XX, GT or LT options at the same time are not compatible",
                ));
            }
            if gt && lt {
                return Err(err("GT and LT options at the same time are not compatible"));
            }
            // GT already implies an expiry (none counts as infinite).
            let when = match (nx, xx, gt, lt) {
                (true, ..) => ExpireIf::NoExpiry,
                (_, _, true, _) => ExpireIf::Later,
                (_, true, _, true) => ExpireIf::SoonerWithExpiry,
                (_, _, _, true) => ExpireIf::Sooner,
                (_, true, ..) => ExpireIf::HasExpiry,
                _ => ExpireIf::Always,
            };
            let n = int(n)?;
            let Key::Session(id) = keys.map(key) else {
                return fixed(Reply::Int(0));
            };
            let lower = name.to_ascii_lowercase();
            let unit = if name.starts_with('P') { 1 } else { 1000 };
            // A deadline already past deletes the key (Redis): Some(0).
            let timeout_ms = if name.ends_with("AT") {
                expire_at(n, unit, &lower).unwrap_or(0)
            } else if n <= 0 {
                0
            } else {
                expire_ms(n, unit, &lower)?
            };
            let cmd = Command::Expire {
                id,
                timeout_ms: Some(timeout_ms),
                when,
            };
            one(cmd, Render::IntOrZero)
        },
    },
    RedisCommand {
        names: &["PERSIST"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            let Key::Session(id) = keys.map(key) else {
                return fixed(Reply::Int(0));
            };
            let cmd = Command::Expire {
                id,
                timeout_ms: None,
                when: ExpireIf::HasExpiry,
            };
            one(cmd, Render::IntOrZero)
        },
    },
    RedisCommand {
        names: &["EXPIRETIME", "PEXPIRETIME"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            let Key::Session(id) = keys.map(key) else {
                return fixed(Reply::Int(-2));
            };
            let ms = name.starts_with('P');
            one(Command::PTtl { id }, Render::ExpireTime { ms })
        },
    },
    RedisCommand {
        names: &["INCRBYFLOAT"],
        parse: |name, a, keys, _| {
            let [key, by] = a else {
                return Err(arity(name));
            };
            let Key::Session(id) = keys.map(key) else {
                return Err(lock_key_misuse());
            };
            let cmd = Command::IncrByFloat {
                id,
                by: kept(by),
                key_form: keys.form_of(key),
            };
            one(cmd, Render::Plain)
        },
    },
    RedisCommand {
        names: &["INCR", "DECR", "INCRBY", "DECRBY"],
        parse: |name, a, keys, _| {
            let (key, by) = match (name, a) {
                ("INCR", [key]) => (key, 1),
                ("DECR", [key]) => (key, -1),
                ("INCRBY", [key, by]) => (key, int(by)?),
                ("DECRBY", [key, by]) => (
                    key,
                    int(by)?
                        .checked_neg()
                        .ok_or_else(|| err("decrement would overflow"))?,
                ),
                _ => return Err(arity(name)),
            };
            let Key::Session(id) = keys.map(key) else {
                return Err(lock_key_misuse());
            };
            let key_form = keys.form_of(key);
            one(Command::IncrBy { id, by, key_form }, Render::Plain)
        },
    },
    RedisCommand {
        names: &["TTL", "PTTL"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            let Key::Session(id) = keys.map(key) else {
                return fixed(Reply::Int(-2));
            };
            let cmd = if name == "TTL" {
                Command::Ttl { id }
            } else {
                Command::PTtl { id }
            };
            one(cmd, Render::Ttl)
        },
    },
    RedisCommand {
        names: &["TYPE"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            match keys.map(key) {
                Key::Session(id) => one(Command::Exists { id }, Render::Type),
                Key::Lock(id) => one(Command::LockOwner { id }, Render::Type),
            }
        },
    },
    RedisCommand {
        names: &["KEYS"],
        parse: |name, a, _, _| {
            let [pattern] = a else {
                return Err(arity(name));
            };
            one(
                vec![Command::Keys],
                Render::Keys {
                    pattern: kept(pattern),
                    scan: false,
                },
            )
        },
    },
    RedisCommand {
        names: &["SCAN"],
        parse: |name, a, _, _| {
            let (cursor, opts) = a.split_first().ok_or_else(|| arity(name))?;
            let cursor = u64::try_from(int(cursor).map_err(|_| err("invalid cursor"))?)
                .map_err(|_| err("invalid cursor"))?;
            let mut pattern = Bytes::from_static(b"*");
            // Redis's default COUNT: about ten keys' work per call.
            let mut count = 10;
            // Every key is a string: TYPE of anything else finds nothing.
            let mut other_type = false;
            let mut it = opts.iter();
            while let Some(o) = it.next() {
                let v = it.next().ok_or_else(|| err("syntax error"))?;
                if o.eq_ignore_ascii_case(b"MATCH") {
                    pattern = kept(v);
                } else if o.eq_ignore_ascii_case(b"COUNT") {
                    let n = int(v)?;
                    if n < 1 {
                        return Err(err("syntax error"));
                    }
                    count = usize::try_from(n).unwrap_or(usize::MAX);
                } else if o.eq_ignore_ascii_case(b"TYPE") {
                    other_type = !v.eq_ignore_ascii_case(b"string");
                } else {
                    return Err(err("syntax error"));
                }
            }
            if other_type {
                // No key is empty, so this matches none.
                pattern = Bytes::new();
            }
            // A page visits about COUNT sessions (capped by max_scan_count)
            // and MATCH filters what it found, as in Redis: a pattern that
            // matches nothing costs a page's work, not the whole store's.
            one(
                Command::KeyScan { cursor, count },
                Render::Keys {
                    pattern,
                    scan: true,
                },
            )
        },
    },
    RedisCommand {
        names: &["MGET"],
        parse: |name, a, keys, _| {
            let commands = per_key(
                name,
                a,
                keys,
                |id| Command::GetData { id, touch: false },
                |id| Command::LockOwner { id },
            )?;
            one(commands, Render::Each)
        },
    },
    RedisCommand {
        names: &["MSET"],
        parse: |name, a, keys, _| {
            if a.is_empty() || !a.len().is_multiple_of(2) {
                return Err(arity(name));
            }
            let commands = a
                .chunks(2)
                .map(|kv| match keys.map(kv[0]) {
                    Key::Session(id) => Ok(Command::Store {
                        id,
                        data: kept(kv[1]),
                        timeout_ms: Some(NEVER),
                        condition: StoreIf::Always,
                        flags: None,
                        reply: StoreReply::Ok,
                        key_form: keys.form_of(kv[0]),
                    }),
                    Key::Lock(_) => Err(lock_key_misuse()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            one(commands, Render::AllOk)
        },
    },
    RedisCommand {
        names: &["SETNX"],
        parse: |name, a, keys, _| {
            let [key, value] = a else {
                return Err(arity(name));
            };
            let Key::Session(id) = keys.map(key) else {
                return Err(lock_key_misuse());
            };
            let store = Command::Store {
                id,
                data: kept(value),
                timeout_ms: Some(NEVER),
                condition: StoreIf::Absent,
                flags: None,
                reply: StoreReply::Ok,
                key_form: keys.form_of(key),
            };
            one(store, Render::Stored)
        },
    },
    RedisCommand {
        names: &["GETDEL"],
        parse: |name, a, keys, _| {
            let [key] = a else { return Err(arity(name)) };
            let Key::Session(id) = keys.map(key) else {
                return Err(lock_key_misuse());
            };
            one(Command::Take { id }, Render::NilIfMissing)
        },
    },
    RedisCommand {
        names: &["DBSIZE"],
        parse: |_, _, _, _| one(Command::Count { class: None }, Render::Plain),
    },
    RedisCommand {
        names: &["FLUSHDB", "FLUSHALL"],
        parse: |_, a, _, _| match a {
            [] => one(Command::FlushAll, Render::Flushed),
            [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
                one(Command::FlushAll, Render::Flushed)
            }
            _ => Err(err("syntax error")),
        },
    },
    RedisCommand {
        names: &["EVALSHA", "EVAL", "FCALL"],
        parse: |name, a, keys, _| parse_eval(name, a, keys),
    },
    RedisCommand {
        names: &["SCRIPT"],
        parse: |_, a, _, _| {
            let sub = a.first().map(|s| s.to_ascii_uppercase());
            let script = |s| {
                Ok(RedisRequest {
                    commands: Commands::Many(Vec::new()),
                    render: Render::Script(s),
                })
            };
            match (sub.as_deref(), &a[1.min(a.len())..]) {
                (Some(b"LOAD"), [source]) => script(Scripting::Load(kept(source))),
                (Some(b"EXISTS"), shas) if !shas.is_empty() => {
                    script(Scripting::Exists(shas.iter().map(|s| kept(s)).collect()))
                }
                (Some(b"FLUSH"), []) => script(Scripting::Flush),
                (Some(b"FLUSH"), [mode])
                    if mode.eq_ignore_ascii_case(b"ASYNC")
                        || mode.eq_ignore_ascii_case(b"SYNC") =>
                {
                    script(Scripting::Flush)
                }
                (Some(b"KILL"), []) => Err(CommandError {
                    code: "NOTBUSY",
                    message: "No scripts in execution right now.".into(),
                }),
                (Some(b"LOAD" | b"EXISTS" | b"FLUSH" | b"KILL"), _) => Err(err(format!(
                    "wrong number of arguments for 'script|{}' command",
                    String::from_utf8_lossy(sub.as_deref().unwrap_or_default()).to_lowercase()
                ))),
                _ => Err(err("SCRIPT supports LOAD, EXISTS, FLUSH and KILL")),
            }
        },
    },
    RedisCommand {
        names: &["FUNCTION"],
        parse: |_, _, _, _| {
            Err(err(
                "FUNCTION is not supported: put the library in a file of the plugins directory (plugins_dir) and reload; FCALL calls its functions (docs/plugins.md)",
            ))
        },
    },
    RedisCommand {
        names: &["SELECT"],
        parse: |name, a, _, _| {
            let [db] = a else { return Err(arity(name)) };
            // Every database number names the same sessions.
            int(db).map_err(|_| err("value is not an integer or out of range"))?;
            fixed(Reply::Ok)
        },
    },
    RedisCommand {
        names: &["TIME"],
        parse: |_, _, _, _| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            fixed(Reply::Array(vec![
                Reply::bulk(now.as_secs().to_string()),
                Reply::bulk(now.subsec_micros().to_string()),
            ]))
        },
    },
    RedisCommand {
        names: &["CLIENT"],
        parse: |_, a, _, client_id| {
            let sub = a.first().map(|s| s.to_ascii_uppercase());
            match sub.as_deref() {
                Some(b"SETNAME") | Some(b"SETINFO") => fixed(Reply::Ok),
                Some(b"GETNAME") => fixed(Reply::Nil),
                Some(b"ID") => fixed(Reply::Int(i64::try_from(client_id).unwrap_or(i64::MAX))),
                _ => Err(err("CLIENT supports SETNAME, GETNAME, SETINFO and ID")),
            }
        },
    },
];

/// The request of `commands` folded by `render`.
fn one(commands: impl Into<Commands>, render: Render) -> Result<RedisRequest, CommandError> {
    Ok(RedisRequest {
        commands: commands.into(),
        render,
    })
}

/// A reply the codec computes, with no engine command.
fn fixed(reply: Reply) -> Result<RedisRequest, CommandError> {
    Ok(RedisRequest {
        commands: Commands::Many(Vec::new()),
        render: Render::Fixed(reply),
    })
}

/// Every name of [`COMMANDS`] and of the transaction commands (each up to
/// 16 bytes: a test checks every one is found), with its row (None: a
/// transaction command).
fn names() -> &'static NameTable<16, Option<&'static RedisCommand>> {
    static NAMES: std::sync::OnceLock<NameTable<16, Option<&'static RedisCommand>>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        NameTable::new(
            COMMANDS
                .iter()
                .flat_map(|c| c.names.iter().map(move |n| (*n, Some(c))))
                .chain(TRANSACTION_WORDS.iter().map(|n| (*n, None))),
        )
    })
}

/// The known name `name` spells (any case, in upper case), and its row
/// (None: a transaction command).
fn find(name: &[u8]) -> Option<(&'static str, Option<&'static RedisCommand>)> {
    names().get(name)
}

/// Translates one Redis request (name first).
pub fn parse(
    args: &[&[u8]],
    keys: &RedisKeys,
    client_id: u64,
) -> Result<RedisRequest, CommandError> {
    let Some(name) = args.first() else {
        return Err(err("empty command"));
    };
    match find(name) {
        Some((name, Some(c))) => (c.parse)(name, &args[1..], keys, client_id),
        _ => Err(err(format!(
            "unknown command '{}'; COMMAND lists the commands, docs/protocol.md explains them",
            SessionId::copy_from_slice(name)
        ))),
    }
}

/// One command per key (at least one): `session` for a session key,
/// `lock` for a lock key.
fn per_key(
    name: &str,
    a: &[&[u8]],
    keys: &RedisKeys,
    session: fn(SessionId) -> Command,
    lock: fn(SessionId) -> Command,
) -> Result<Vec<Command>, CommandError> {
    if a.is_empty() {
        return Err(arity(name));
    }
    Ok(a.iter()
        .map(|k| match keys.map(k) {
            Key::Session(id) => session(id),
            Key::Lock(id) => lock(id),
        })
        .collect())
}

fn lock_id(keys: &RedisKeys, key: &[u8]) -> SessionId {
    match keys.map(key) {
        Key::Session(id) | Key::Lock(id) => id,
    }
}

fn lock_key_misuse() -> CommandError {
    err("a *_LOCK key is a session lock: take it with SET key value NX PX ms, release it with the unlock script or DEL")
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT|PXAT|KEEPTTL]`.
fn parse_set(a: &[&[u8]], keys: &RedisKeys) -> Result<RedisRequest, CommandError> {
    let [key, value, opts @ ..] = a else {
        return Err(arity("SET"));
    };
    let mut condition = StoreIf::Always;
    let mut timeout = None;
    let mut get = false;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let o = o.to_ascii_uppercase();
        match o.as_slice() {
            b"NX" if condition == StoreIf::Always => condition = StoreIf::Absent,
            b"XX" if condition == StoreIf::Always => condition = StoreIf::Present,
            b"GET" => get = true,
            b"KEEPTTL" if timeout.is_none() => timeout = Some(None),
            b"EX" | b"PX" if timeout.is_none() => {
                let n = int(it.next().ok_or_else(|| err("syntax error"))?)?;
                let unit = if o == b"EX" { 1000 } else { 1 };
                timeout = Some(Some(expire_ms(n, unit, "set")?));
            }
            b"EXAT" | b"PXAT" if timeout.is_none() => {
                let n = int(it.next().ok_or_else(|| err("syntax error"))?)?;
                let unit = if o == b"EXAT" { 1000 } else { 1 };
                timeout = Some(Some(expire_at(n, unit, "set")?));
            }
            _ => return Err(err("syntax error")),
        }
    }
    // No EX/PX: no expiry, as Redis (and it removes an existing one);
    // KEEPTTL: keep it.
    let timeout_ms = match timeout {
        None => Some(NEVER),
        Some(t) => t,
    };
    match keys.map(key) {
        Key::Session(id) => Ok(RedisRequest {
            commands: Commands::One(Command::Store {
                id,
                data: kept(value),
                timeout_ms,
                condition,
                flags: None,
                reply: if get { StoreReply::Old } else { StoreReply::Ok },
                key_form: keys.form_of(key),
            }),
            render: Render::Plain,
        }),
        // phpredis's lock: SET <key>_LOCK <secret> NX [PX ms].
        Key::Lock(id) if condition == StoreIf::Absent && !get => Ok(RedisRequest {
            // No PX: no expiry (held until released or the connection
            // closes). A held lock is waited for, as configured
            // (`door_lock_wait_ms`), so phpredis's own retries rarely run.
            commands: Commands::One(Command::LockOwned {
                id,
                owner: kept(value),
                lease_ms: timeout_ms,
                wait_ms: None,
            }),
            render: Render::LockAcquired,
        }),
        Key::Lock(_) => Err(lock_key_misuse()),
    }
}

/// Whether `script` is the compare-and-delete idiom — phpredis's unlock
/// script, and Laravel's and Redlock's lock release — in any of its common
/// spellings (spacing, quotes, the case of `get`/`del`).
fn is_unlock_lua(script: &[u8]) -> bool {
    let squash = |b: &[u8]| {
        b.iter()
            .filter(|c| !c.is_ascii_whitespace())
            .map(|&c| if c == b'\'' { b'"' } else { c })
            .collect::<Vec<u8>>()
    };
    let lower = |b: Vec<u8>| {
        let text = String::from_utf8_lossy(&b).into_owned();
        text.replace("\"GET\"", "\"get\"")
            .replace("\"DEL\"", "\"del\"")
    };
    lower(squash(script)) == lower(squash(UNLOCK_LUA))
}

/// `EVAL script numkeys key... arg...`, `EVALSHA sha …`, `FCALL name …`.
/// The compare-and-delete script (phpredis's unlock, Laravel's and
/// Redlock's lock release) on one key runs as one engine command: on a
/// lock key it releases the session's lock, which no script may do.
fn parse_eval(name: &str, a: &[&[u8]], keys: &RedisKeys) -> Result<RedisRequest, CommandError> {
    let [script, numkeys, rest @ ..] = a else {
        return Err(arity(name));
    };
    let n = int(numkeys)?;
    let n = match usize::try_from(n) {
        Ok(n) if n <= rest.len() => n,
        Ok(_) => return Err(err("Number of keys can't be greater than number of args")),
        Err(_) => return Err(err("Number of keys can't be negative")),
    };
    let (declared, args) = rest.split_at(n);
    let unlock = match name {
        "EVALSHA" => script.eq_ignore_ascii_case(UNLOCK_SHA),
        "EVAL" => is_unlock_lua(script),
        _ => false,
    };
    if let (true, [key], [value]) = (unlock, declared, args) {
        let command = match keys.map(key) {
            // phpredis's unlock: release the lock if that secret holds it.
            Key::Lock(id) => Command::UnlockOwned {
                id,
                owner: Some(kept(value)),
            },
            // Any other key: delete it if it holds that value, atomically.
            Key::Session(id) => Command::DestroyIf {
                id,
                data: kept(value),
            },
        };
        return Ok(RedisRequest {
            commands: Commands::One(command),
            render: Render::Plain,
        });
    }
    let all = |a: &[&[u8]]| a.iter().map(|a| kept(a)).collect::<Vec<_>>();
    let (keys, args) = (all(declared), all(args));
    let request = match name {
        "EVAL" => Scripting::Eval {
            source: kept(script),
            keys,
            args,
        },
        "EVALSHA" => Scripting::EvalSha {
            sha: kept(script),
            keys,
            args,
        },
        _ => Scripting::FCall {
            name: kept(script),
            keys,
            args,
        },
    };
    Ok(RedisRequest {
        commands: Commands::Many(Vec::new()),
        render: Render::Script(request),
    })
}

/// Folds the engine's results into the Redis reply.
pub fn render(
    render: &Render,
    keys: &RedisKeys,
    results: Vec<Result<Reply, Error>>,
) -> Result<Reply, (&'static str, String)> {
    let fail = crate::resp::error_parts;
    let success = succeeded;
    let missing = |e: &Error| matches!(e, Error::NoSession(_));
    let mut results = results;
    match render {
        Render::Fixed(r) => Ok(r.clone()),
        // The connection answers scripting itself; reaching here is a bug.
        Render::Script(_) => Err((
            "ERR",
            "internal error: a scripting request reached the reply fold".into(),
        )),
        Render::Flushed => match results.pop() {
            Some(Err(e)) => Err(fail(&e)),
            _ => Ok(Reply::Ok),
        },
        Render::Each => results
            .into_iter()
            .map(|r| match r {
                Ok(reply) => Ok(reply),
                Err(e) if missing(&e) => Ok(Reply::Nil),
                Err(e) => Err(fail(&e)),
            })
            .collect::<Result<_, _>>()
            .map(Reply::Array),
        Render::IntOrZero => match results.pop() {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(e)) if missing(&e) => Ok(Reply::Int(0)),
            Some(Err(e)) => Err(fail(&e)),
            None => Ok(Reply::Int(0)),
        },
        Render::ExpireTime { ms } => match results.pop() {
            Some(Ok(Reply::Int(left))) if left >= 0 => {
                let at = now_unix_ms().saturating_add(left);
                Ok(Reply::Int(if *ms { at } else { (at + 500) / 1000 }))
            }
            Some(Ok(reply)) => Ok(reply),
            Some(Err(e)) if missing(&e) => Ok(Reply::Int(-2)),
            Some(Err(e)) => Err(fail(&e)),
            None => Ok(Reply::Int(-2)),
        },
        Render::AllOk => match results.into_iter().find_map(Result::err) {
            Some(e) => Err(fail(&e)),
            None => Ok(Reply::Ok),
        },
        Render::Stored => match results.pop() {
            Some(Ok(Reply::Nil)) => Ok(Reply::Int(0)),
            Some(Ok(_)) => Ok(Reply::Int(1)),
            Some(Err(e)) => Err(fail(&e)),
            None => Ok(Reply::Int(0)),
        },
        Render::Count => Ok(Reply::Int(
            results.iter().filter(|r| success(r)).count() as i64
        )),
        Render::Keys { pattern, scan } => {
            let (cursor, found) = match results.pop() {
                Some(Ok(Reply::Keys { cursor, keys })) => (cursor, keys),
                Some(Err(e)) => return Err(fail(&e)),
                // KEYS runs Keys, SCAN runs KeyScan, which answer the shape
                // above; the parser pairs them, so this is a bug.
                other => {
                    return Err(("ERR", format!("internal error: KEYS/SCAN got {other:?}")));
                }
            };
            let keys: Vec<Reply> = found
                .iter()
                .map(|(id, form)| keys.key_of(*form, id.as_bytes()))
                .filter(|k| glob_match(pattern, k))
                .map(Reply::Bulk)
                .collect();
            Ok(if *scan {
                Reply::Array(vec![Reply::Bulk(cursor), Reply::Array(keys)])
            } else {
                Reply::Array(keys)
            })
        }
        _ => fold_last(render, results.pop().unwrap_or(Ok(Reply::Nil))),
    }
}

/// [`render`] of a request of one command: the common replies straight
/// from its result, with no vector made for it.
pub fn render_one(
    how: &Render,
    keys: &RedisKeys,
    result: Result<Reply, Error>,
) -> Result<Reply, (&'static str, String)> {
    match how {
        Render::Plain
        | Render::NilIfMissing
        | Render::LockAcquired
        | Render::Ttl
        | Render::Type => fold_last(how, result),
        _ => render(how, keys, vec![result]),
    }
}

/// The reply of the renders that look at the last result only.
fn fold_last(render: &Render, last: Result<Reply, Error>) -> Result<Reply, (&'static str, String)> {
    let fail = crate::resp::error_parts;
    let missing = |e: &Error| matches!(e, Error::NoSession(_));
    match (render, last) {
        (Render::NilIfMissing, Err(e)) if missing(&e) => Ok(Reply::Nil),
        (Render::LockAcquired, Ok(_)) => Ok(Reply::Ok),
        (Render::LockAcquired, Err(Error::Locked { .. })) => Ok(Reply::Nil),
        (Render::Ttl, Err(e)) if missing(&e) => Ok(Reply::Int(-2)),
        (Render::Type, r) => Ok(Reply::Status(if succeeded(&r) { "string" } else { "none" })),
        (_, Ok(r)) => Ok(r),
        (_, Err(e)) => Err(fail(&e)),
    }
}

/// Whether a result counts as done (DEL's count, TYPE's "string").
fn succeeded(r: &Result<Reply, Error>) -> bool {
    match r {
        Ok(Reply::Ok | Reply::Bulk(_) | Reply::Key(_) | Reply::Version(_)) => true,
        Ok(Reply::Int(n)) => *n > 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
