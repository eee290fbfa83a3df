//! Redis scripting on sessions: what `EVAL` scripts and Redis-style
//! functions (`redis.register_function`, called by `FCALL`) see — `KEYS`,
//! `ARGV` and the `redis` library, whose `redis.call` runs a command
//! through the Redis door's own parser, on the call's sessions only — and
//! the conversions between Redis replies and Lua values, Redis's own.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use mlua::{Function, Lua, MultiValue, Scope, Table, Value};
use sessiond_core::script::Txn;
use sessiond_core::{Error, Reply};
use sessiond_proto::redis::{self, RedisKeys, Render};
use sessiond_proto::resp::{encode_reply, parse_value, Protocol, Value as Resp};
use sessiond_proto::Limits;
use sha1::{Digest, Sha1};

/// Where the running call's command runner waits in the Lua registry
/// while a call runs (absent otherwise).
const CURRENT: &str = "sessiond.redis_call";

/// Most nesting of tables a script may answer.
const MAX_DEPTH: usize = 16;

/// The Redis version scripts are told (`redis.REDIS_VERSION`), the one
/// `INFO` reports.
const VERSION: &str = redis::REDIS_VERSION;

/// A script's SHA1, hex in lower case (what `SCRIPT LOAD` answers).
pub(crate) fn sha1_hex(source: &[u8]) -> String {
    Sha1::digest(source)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds the `redis` library to a fresh state (before it is sealed).
/// `redis.call` and `redis.pcall` reach the running call's sessions
/// through the runner [`runner`] installs for the length of a call.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let current = lua.create_function(|lua, args: MultiValue| {
        match lua.named_registry_value::<Option<Function>>(CURRENT)? {
            Some(run) => run.call::<MultiValue>(args),
            None => Err(mlua::Error::runtime(
                "redis.call works in Redis scripts (EVAL) and functions registered with redis.register_function, while they run; a sessiond.register function uses its session object",
            )),
        }
    })?;
    let sha1hex =
        lua.create_function(|lua, s: mlua::String| lua.create_string(sha1_hex(&s.as_bytes())))?;
    let log = lua.create_function(|lua, (level, args): (i64, MultiValue)| {
        let mut line = String::new();
        for a in args {
            if let Some(s) = lua.coerce_string(a)? {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&s.to_string_lossy());
            }
        }
        line.truncate(floor_char_boundary(&line, 1024));
        match level {
            3 => tracing::warn!(target: "sessiond::script", "{line}"),
            2 => tracing::info!(target: "sessiond::script", "{line}"),
            _ => tracing::debug!(target: "sessiond::script", "{line}"),
        }
        Ok(())
    })?;
    let setup: Function = lua
        .load(
            r#"
            local current, sha1hex, log, version = ...
            local r = {}
            function r.call(...)
                local ok, reply = current(...)
                if not ok then error(reply, 0) end
                return reply
            end
            function r.pcall(...)
                local _, reply = current(...)
                return reply
            end
            function r.error_reply(msg) return { err = msg } end
            function r.status_reply(msg) return { ok = msg } end
            r.sha1hex = sha1hex
            r.log = log
            r.LOG_DEBUG, r.LOG_VERBOSE, r.LOG_NOTICE, r.LOG_WARNING = 0, 1, 2, 3
            function r.setresp(n)
                if n ~= 2 then error("sessiond's scripts speak RESP2 only", 2) end
            end
            -- Replication is the storage's business here: accepted, no-ops.
            function r.replicate_commands() return true end
            function r.set_repl(_) end
            r.REPL_NONE, r.REPL_AOF, r.REPL_SLAVE, r.REPL_REPLICA, r.REPL_ALL = 0, 1, 2, 2, 3
            r.REDIS_VERSION = version
            local major, minor, patch = version:match("(%d+)%.(%d+)%.(%d+)")
            r.REDIS_VERSION_NUM = major * 65536 + minor * 256 + patch
            rawset(_G, "redis", r)
            "#,
        )
        .set_name("=redis")
        .into_function()?;
    setup.call::<()>((current, sha1hex, log, VERSION))
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Makes `redis.call` run commands on the call's sessions through `tx`
/// until the scope ends (then [`done`] takes it away).
pub(super) fn runner<'scope, 'env, 't: 'env>(
    lua: &Lua,
    scope: &'scope Scope<'scope, 'env>,
    tx: &'env RefCell<&'t mut (dyn Txn + 't)>,
    keys: &'env RedisKeys,
) -> mlua::Result<()> {
    let run = scope.create_function(move |lua, args: MultiValue| {
        let mut words = Vec::with_capacity(args.len());
        for a in args {
            let word = match a {
                Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
                Value::Integer(_) | Value::Number(_) => match lua.coerce_string(a)? {
                    Some(s) => Bytes::copy_from_slice(&s.as_bytes()),
                    None => Bytes::new(),
                },
                _ => {
                    return Err(mlua::Error::runtime(
                        "Lua redis lib command arguments must be strings or integers",
                    ))
                }
            };
            words.push(word);
        }
        if words.is_empty() {
            return Err(mlua::Error::runtime(
                "Please specify at least one argument for this redis lib call",
            ));
        }
        let outcome = command(&mut **tx.borrow_mut(), keys, words);
        Ok(match outcome {
            Ok(reply) => (true, to_lua(lua, &reply)?),
            Err(line) => (false, error_table(lua, &line)?),
        })
    })?;
    lua.set_named_registry_value(CURRENT, run)
}

/// Ends what [`runner`] began.
pub(super) fn done(lua: &Lua) -> mlua::Result<()> {
    lua.unset_named_registry_value(CURRENT)
}

/// Runs one Redis command for a script: the reply, or the error line
/// Redis would send.
fn command(tx: &mut dyn Txn, keys: &RedisKeys, words: Vec<Bytes>) -> Result<Reply, String> {
    let not_allowed = || "ERR This Redis command is not allowed from script".to_string();
    let words: Vec<&[u8]> = words.iter().map(|w| &w[..]).collect();
    if redis::transaction(&words, keys).is_some() {
        return Err(not_allowed());
    }
    if !words.first().is_some_and(|w| redis::is_redis_command(w)) {
        return Err("ERR Unknown Redis command called from script".into());
    }
    let request = redis::parse(&words, keys, 0).map_err(|e| format!("{} {}", e.code, e.message))?;
    if matches!(request.render, Render::Script(_)) {
        return Err(not_allowed());
    }
    let results = request.commands.into_iter().map(|c| tx.run(c)).collect();
    redis::render(&request.render, keys, results).map_err(|(code, message)| line(code, message))
}

/// An error as the one line RESP sends (without its `-`): the code, then
/// the message; no code: the message is the whole line (a script's own).
fn line(code: &str, message: String) -> String {
    if code.is_empty() {
        message
    } else {
        format!("{code} {message}")
    }
}

/// `{err = line}`, what `redis.pcall` answers for a refusal.
fn error_table(lua: &Lua, line: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", line)?;
    Ok(Value::Table(t))
}

/// A reply as a script sees it — Redis's RESP2 conversion: integer →
/// number, bulk → string, nil → false, array → table, status → `{ok=}`,
/// error → `{err=}`.
fn to_lua(lua: &Lua, reply: &Reply) -> mlua::Result<Value> {
    let mut wire = BytesMut::new();
    encode_reply(reply, Protocol::Resp2, &mut wire);
    // The reply was made here, within the engine's own limits.
    let limits = Limits {
        max_bulk_len: usize::MAX,
        max_args: usize::MAX,
        max_request_len: usize::MAX,
        ..Limits::default()
    };
    match parse_value(&mut wire, &limits) {
        Ok(Some(v)) => resp_to_lua(lua, v),
        _ => Err(mlua::Error::runtime(
            "internal error: a reply did not read back",
        )),
    }
}

fn resp_to_lua(lua: &Lua, v: Resp) -> mlua::Result<Value> {
    Ok(match v {
        Resp::Int(n) => Value::Number(n as f64),
        Resp::Bulk(b) => Value::String(lua.create_string(&b)?),
        Resp::Nil => Value::Boolean(false),
        Resp::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Value::Table(t)
        }
        Resp::Error(e) => error_table(lua, &e)?,
        Resp::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, resp_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Resp::Map(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            let mut i = 0;
            for (k, v) in pairs {
                i += 1;
                t.raw_set(i, resp_to_lua(lua, k)?)?;
                i += 1;
                t.raw_set(i, resp_to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        Resp::Bool(b) => {
            if b {
                Value::Number(1.0)
            } else {
                Value::Boolean(false)
            }
        }
        Resp::Number(text) => Value::String(lua.create_string(&text)?),
    })
}

/// A script's answer as a reply — Redis's conversion: a number is an
/// integer (its fraction dropped), a string a bulk, `true` 1, `false` and
/// `nil` nil, `{ok=}` a status, `{err=}` an error, a table its array part.
pub(super) fn from_lua(values: MultiValue) -> Result<Reply, Error> {
    match values.into_iter().next() {
        None => Ok(Reply::Nil),
        Some(v) => reply_of(v, 0),
    }
}

fn reply_of(v: Value, depth: usize) -> Result<Reply, Error> {
    Ok(match v {
        Value::Nil | Value::Boolean(false) => Reply::Nil,
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(n) => Reply::Int(n),
        Value::Number(n) => Reply::Int(n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Err(Error::Raised(e.to_string_lossy()));
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return Ok(if &*ok.as_bytes() == b"OK" {
                    Reply::Ok
                } else {
                    Reply::StatusText(Bytes::copy_from_slice(&ok.as_bytes()))
                });
            }
            if depth >= MAX_DEPTH {
                return Err(Error::Raised(format!(
                    "ERR the script's answer nests tables deeper than {MAX_DEPTH}"
                )));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(reply_of(v, depth + 1)?),
                }
            }
            Reply::Array(items)
        }
        // Functions, userdata and the rest have no reply form: nil, as
        // Redis answers.
        _ => Reply::Nil,
    })
}

/// The error a script ended with (the value it raised): a table's `err`
/// as it is, a message as `ERR <message>` (with `where_` after it, as
/// Redis names the script).
pub(super) fn raised(v: &Value, where_: &str) -> Error {
    let line = match v {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(e)) => format!("{}{where_}", e.to_string_lossy()),
            _ => "ERR the script raised a table without 'err'".to_string(),
        },
        Value::String(s) => format!("ERR {}{where_}", s.to_string_lossy()),
        Value::Error(e) => match super::api::engine_error(e) {
            Some(engine) => {
                let (code, message) = sessiond_proto::resp::error_parts(&engine);
                line(code, message)
            }
            None => format!("ERR {}{where_}", super::lua_message(e)),
        },
        other => format!("ERR the script raised a {}{where_}", other.type_name()),
    };
    Error::Raised(line)
}

/// `KEYS` or `ARGV`: the strings as a Lua array.
pub(super) fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}
