//! What a function sees: the session it was called on (an object whose
//! methods run the engine's commands through the call's [`Txn`]), and the
//! conversion of its answer into a [`Reply`].

use std::cell::RefCell;

use bytes::Bytes;
use mlua::{Lua, MultiValue, Scope, Table, Value};
use sessiond_core::script::Txn;
use sessiond_core::{Command, Error, Reply, SessionId};

/// Most nesting of tables a function may answer.
const MAX_DEPTH: usize = 16;

/// Where the running call's session dispatcher waits in the Lua registry
/// while a call runs.
const CURRENT: &str = "sessiond.session_call";

/// Sessions `sessiond.find` looks at by default, per call.
const FIND_DEFAULT: usize = 1_000;

/// The session object's methods, in the order of their numbers; the last,
/// `find`, is `sessiond.find`, not a method.
const METHODS: [&str; 14] = [
    "exists",
    "get",
    "set",
    "del",
    "incr",
    "vars",
    "data",
    "set_data",
    "timeout",
    "set_timeout",
    "touch",
    "create",
    "destroy",
    "find",
];

/// The metatable of session objects, made once per state: each method
/// forwards to the running call's dispatcher ([`session`]), so a call
/// makes one callback, not one per method.
pub(super) fn session_class(lua: &Lua) -> mlua::Result<Table> {
    let methods = lua.create_table()?;
    for (op, name) in METHODS.iter().enumerate().filter(|(_, n)| **n != "find") {
        let forward = lua.create_function(move |lua, mut args: MultiValue| {
            let run: Option<mlua::Function> = lua.named_registry_value(CURRENT)?;
            let Some(run) = run else {
                return Err(mlua::Error::runtime(
                    "a session object works only during its call",
                ));
            };
            // The object itself (s:get(...)) is not an argument.
            args.pop_front();
            args.push_front(Value::Integer(op as i64));
            run.call::<MultiValue>(args)
        })?;
        methods.raw_set(*name, forward)?;
    }
    let class = lua.create_table()?;
    class.raw_set("__index", methods)?;
    class.raw_set("__metatable", false)?;
    Ok(class)
}

/// `sessiond.find(name, value [, limit [, cursor]])`: forwards to the
/// running call as the methods do.
pub(super) fn find_helper(lua: &Lua) -> mlua::Result<mlua::Function> {
    let op = METHODS.iter().position(|m| *m == "find").unwrap_or(0) as i64;
    lua.create_function(move |lua, mut args: MultiValue| {
        let run: Option<mlua::Function> = lua.named_registry_value(CURRENT)?;
        let Some(run) = run else {
            return Err(mlua::Error::runtime(
                "sessiond.find works only during a call of a function registered with sessiond.register",
            ));
        };
        args.push_front(Value::Integer(op));
        run.call::<MultiValue>(args)
    })
}

/// The session object for `id` (`s.id`, and the methods of `class`, called
/// as `s:get(name)`), working through `tx` until [`done`].
pub(super) fn session<'scope, 'env, 't: 'env>(
    lua: &Lua,
    scope: &'scope Scope<'scope, 'env>,
    tx: &'env RefCell<&'t mut (dyn Txn + 't)>,
    id: &'env SessionId,
    class: &Table,
) -> mlua::Result<Table> {
    let run = scope.create_function(move |lua, mut args: MultiValue| {
        let op = match args.pop_front() {
            Some(Value::Integer(op)) => op,
            _ => return Err(mlua::Error::runtime("internal: no method number")),
        };
        let mut next = || args.pop_front().unwrap_or(Value::Nil);
        let run = |cmd: Command| -> mlua::Result<Reply> {
            tx.borrow_mut().run(cmd).map_err(mlua::Error::external)
        };
        let me = || id.clone();
        let value: Value = match METHODS.get(op as usize).copied().unwrap_or("") {
            "find" => {
                let name = arg(lua, next(), "the variable name")?;
                let value = arg(lua, next(), "the value")?;
                let limit = match next() {
                    Value::Nil => FIND_DEFAULT,
                    Value::Integer(n) if n > 0 => n as usize,
                    Value::Number(n) if n >= 1.0 => n as usize,
                    _ => return Err(mlua::Error::runtime(
                        "sessiond.find: the limit is a number of sessions to look at, 1 or more",
                    )),
                };
                let cursor = match next() {
                    Value::Nil => Bytes::from_static(b"0"),
                    c => arg(lua, c, "the cursor")?,
                };
                let page = tx
                    .borrow_mut()
                    .find(&name, &value, &cursor, limit)
                    .map_err(mlua::Error::external)?;
                let Reply::Page { cursor, ids } = page else {
                    return Err(mlua::Error::runtime("internal: find answered no page"));
                };
                let found = to_lua(lua, Reply::Ids(ids))?;
                let cursor = Value::String(lua.create_string(&cursor)?);
                return Ok(MultiValue::from_vec(vec![found, cursor]));
            }
            "exists" => Value::Boolean(matches!(run(Command::Exists { id: me() })?, Reply::Int(1))),
            "get" => {
                let name = arg(lua, next(), "the variable name")?;
                to_lua(
                    lua,
                    run(Command::Get {
                        id: me(),
                        name,
                        default: None,
                    })?,
                )?
            }
            "set" => {
                let name = arg(lua, next(), "the variable name")?;
                let value = arg(lua, next(), "the value")?;
                run(Command::Set {
                    id: me(),
                    name,
                    value,
                })?;
                Value::Nil
            }
            "del" => {
                let name = arg(lua, next(), "the variable name")?;
                Value::Boolean(matches!(
                    run(Command::Del { id: me(), name })?,
                    Reply::Int(1)
                ))
            }
            "incr" => {
                let name = arg(lua, next(), "the variable name")?;
                let by = match next() {
                    Value::Nil => 1,
                    Value::Integer(n) => n,
                    Value::Number(n) if n.fract() == 0.0 => n as i64,
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "the increment must be an integer, not {}",
                            other.type_name()
                        )))
                    }
                };
                to_lua(lua, run(Command::Inc { id: me(), name, by })?)?
            }
            "vars" => {
                let t = lua.create_table()?;
                if let Reply::Map(pairs) = run(Command::GetAll { id: me() })? {
                    for (k, v) in pairs {
                        t.set(to_lua(lua, k)?, to_lua(lua, v)?)?;
                    }
                }
                Value::Table(t)
            }
            "data" => to_lua(
                lua,
                run(Command::GetData {
                    id: me(),
                    touch: true,
                })?,
            )?,
            "set_data" => {
                let data = arg(lua, next(), "the data")?;
                run(Command::SetData { id: me(), data })?;
                Value::Nil
            }
            "timeout" => to_lua(
                lua,
                run(Command::Timeout {
                    id: me(),
                    timeout_ms: None,
                })?,
            )?,
            "set_timeout" => {
                let seconds = match next() {
                    Value::Integer(n) if n >= 0 => n as u64,
                    Value::Number(n) if n >= 0.0 && n.fract() == 0.0 => n as u64,
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "the timeout must be whole seconds, not {}",
                            other.type_name()
                        )))
                    }
                };
                run(Command::Timeout {
                    id: me(),
                    timeout_ms: Some(seconds.saturating_mul(1000)),
                })?;
                Value::Nil
            }
            "touch" => {
                run(Command::Touch { id: me() })?;
                Value::Nil
            }
            "create" => {
                let data = match next() {
                    Value::Nil => None,
                    d => Some(arg(lua, d, "the data")?),
                };
                run(Command::Create {
                    id: me(),
                    class: None,
                    data,
                    timeout_ms: None,
                })?;
                Value::Nil
            }
            "destroy" => {
                Value::Boolean(matches!(run(Command::Destroy { id: me() })?, Reply::Int(1)))
            }
            _ => return Err(mlua::Error::runtime("internal: no such method")),
        };
        Ok(MultiValue::from_vec(vec![value]))
    })?;
    lua.set_named_registry_value(CURRENT, run)?;
    let s = lua.create_table()?;
    s.raw_set("id", lua.create_string(id.as_bytes())?)?;
    s.set_metatable(Some(class.clone()))?;
    Ok(s)
}

/// Ends what [`session`] began: the object's methods refuse from now on.
pub(super) fn done(lua: &Lua) -> mlua::Result<()> {
    lua.unset_named_registry_value(CURRENT)
}

/// A string argument: a Lua string, or a number in Lua's own spelling.
pub(super) fn arg(lua: &Lua, v: Value, what: &str) -> mlua::Result<Bytes> {
    match v {
        Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(_) | Value::Number(_) => match lua.coerce_string(v)? {
            Some(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            None => Err(mlua::Error::runtime(format!("{what} must be a string"))),
        },
        other => Err(mlua::Error::runtime(format!(
            "{what} must be a string or a number, not {}",
            other.type_name()
        ))),
    }
}

/// A reply as a Lua value: bulk → string, nil → nil, integer → number,
/// OK → true, lists → arrays, maps → tables.
pub(super) fn to_lua(lua: &Lua, r: Reply) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Ok => Value::Boolean(true),
        Reply::Status(s) => Value::String(lua.create_string(s)?),
        Reply::Nil => Value::Nil,
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Version(n) | Reply::Key(n) => Value::Number(n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                t.raw_set(to_lua(lua, k)?, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        Reply::Ids(ids) => {
            let t = lua.create_table()?;
            for (i, id) in ids.into_iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(id.as_bytes())?)?;
            }
            Value::Table(t)
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "a {other:?} answer has no Lua form"
            )))
        }
    })
}

/// A function's answer as a reply: a string → bulk, a number → integer
/// (or its text if it has a fraction), true → 1, false and nil → nil, a
/// table → its array part (or `{ok = "…"}` → status, `{err = "…"}` → an
/// error), as Redis answers for scripts.
pub(super) fn from_lua(v: MultiValue) -> Result<Reply, String> {
    match v.into_iter().next() {
        None => Ok(Reply::Nil),
        Some(v) => value(v, 0),
    }
}

fn value(v: Value, depth: usize) -> Result<Reply, String> {
    Ok(match v {
        Value::Nil | Value::Boolean(false) => Reply::Nil,
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(n) => Reply::Int(n),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                Reply::Int(n as i64)
            } else {
                Reply::Bulk(Bytes::from(n.to_string()))
            }
        }
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(format!("its answer nests tables deeper than {MAX_DEPTH}"));
            }
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Err(e.to_string_lossy());
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return Ok(Reply::Bulk(Bytes::copy_from_slice(&ok.as_bytes())));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(value(v, depth + 1)?),
                }
            }
            Reply::Array(items)
        }
        other => {
            return Err(format!(
                "it answered a {}, which has no reply form",
                other.type_name()
            ))
        }
    })
}

/// The engine's error behind a Lua error, if a command a function ran was
/// refused and the function did not catch it.
pub(super) fn engine_error(e: &mlua::Error) -> Option<Error> {
    match e {
        mlua::Error::CallbackError { cause, .. } => engine_error(cause),
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<Error>().cloned(),
        mlua::Error::WithContext { cause, .. } => engine_error(cause),
        _ => None,
    }
}
