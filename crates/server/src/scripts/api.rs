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

/// The session object for `id`: `s.id`, and methods called as `s:get(name)`.
pub(super) fn session<'scope, 'env, 't: 'env>(
    lua: &Lua,
    scope: &'scope Scope<'scope, 'env>,
    tx: &'env RefCell<&'t mut (dyn Txn + 't)>,
    id: &'env SessionId,
) -> mlua::Result<Table> {
    let s = lua.create_table()?;
    s.set("id", lua.create_string(id.as_bytes())?)?;
    let run = move |cmd: Command| -> mlua::Result<Reply> {
        tx.borrow_mut().run(cmd).map_err(mlua::Error::external)
    };
    let me = move || id.clone();
    let method = |name: &str, f: mlua::Function| s.set(name, f);

    method(
        "exists",
        scope.create_function(move |_, _this: Value| {
            Ok(matches!(run(Command::Exists { id: me() })?, Reply::Int(1)))
        })?,
    )?;
    method(
        "get",
        scope.create_function(move |lua, (_this, name): (Value, Value)| {
            let name = arg(lua, name, "the variable name")?;
            to_lua(
                lua,
                run(Command::Get {
                    id: me(),
                    name,
                    default: None,
                })?,
            )
        })?,
    )?;
    method(
        "set",
        scope.create_function(move |lua, (_this, name, value): (Value, Value, Value)| {
            let name = arg(lua, name, "the variable name")?;
            let value = arg(lua, value, "the value")?;
            run(Command::Set {
                id: me(),
                name,
                value,
            })?;
            Ok(())
        })?,
    )?;
    method(
        "del",
        scope.create_function(move |lua, (_this, name): (Value, Value)| {
            let name = arg(lua, name, "the variable name")?;
            Ok(matches!(
                run(Command::Del { id: me(), name })?,
                Reply::Int(1)
            ))
        })?,
    )?;
    method(
        "incr",
        scope.create_function(move |lua, (_this, name, by): (Value, Value, Option<i64>)| {
            let name = arg(lua, name, "the variable name")?;
            to_lua(
                lua,
                run(Command::Inc {
                    id: me(),
                    name,
                    by: by.unwrap_or(1),
                })?,
            )
        })?,
    )?;
    method(
        "vars",
        scope.create_function(move |lua, _this: Value| {
            let t = lua.create_table()?;
            if let Reply::Map(pairs) = run(Command::GetAll { id: me() })? {
                for (k, v) in pairs {
                    t.set(to_lua(lua, k)?, to_lua(lua, v)?)?;
                }
            }
            Ok(t)
        })?,
    )?;
    method(
        "data",
        scope.create_function(move |lua, _this: Value| {
            to_lua(
                lua,
                run(Command::GetData {
                    id: me(),
                    touch: true,
                })?,
            )
        })?,
    )?;
    method(
        "set_data",
        scope.create_function(move |lua, (_this, data): (Value, Value)| {
            let data = arg(lua, data, "the data")?;
            run(Command::SetData { id: me(), data })?;
            Ok(())
        })?,
    )?;
    method(
        "timeout",
        scope.create_function(move |lua, _this: Value| {
            to_lua(
                lua,
                run(Command::Timeout {
                    id: me(),
                    timeout_ms: None,
                })?,
            )
        })?,
    )?;
    method(
        "set_timeout",
        scope.create_function(move |_, (_this, seconds): (Value, u64)| {
            run(Command::Timeout {
                id: me(),
                timeout_ms: Some(seconds.saturating_mul(1000)),
            })?;
            Ok(())
        })?,
    )?;
    method(
        "touch",
        scope.create_function(move |_, _this: Value| {
            run(Command::Touch { id: me() })?;
            Ok(())
        })?,
    )?;
    method(
        "create",
        scope.create_function(move |lua, (_this, data): (Value, Option<Value>)| {
            let data = data.map(|d| arg(lua, d, "the data")).transpose()?;
            run(Command::Create {
                id: me(),
                class: None,
                data,
                timeout_ms: None,
            })?;
            Ok(())
        })?,
    )?;
    method(
        "destroy",
        scope.create_function(move |_, _this: Value| {
            Ok(matches!(run(Command::Destroy { id: me() })?, Reply::Int(1)))
        })?,
    )?;
    Ok(s)
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
