//! A Lua state fit to run other people's code inside the server: Lua 5.1
//! (the language Redis scripts are written in) with its `table`, `string`
//! and `math` libraries and the safe part of the base library — no `os`,
//! `io`, `require`, `load`/`loadstring`/`dofile`, `debug` or bytecode —
//! and globals that are read-only once the plugins are loaded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

/// Base-library functions a sandboxed script must not have: they read
/// files, load code (bytecode can break the interpreter) or reach past the
/// sandbox.
const REMOVED: &[&str] = &[
    "dofile",
    "loadfile",
    "load",
    "loadstring",
    "getfenv",
    "setfenv",
    "collectgarbage",
    "gcinfo",
    "newproxy",
    "module",
    "require",
    "print",
];

/// Where the state's own `pcall` is kept, for the host to run calls
/// through (the scripts' `pcall` is guarded).
pub(super) const REAL_PCALL: &str = "sessiond.pcall";

/// What the sandbox says of a global it does not have.
const MISSING: &str = "sessiond's sandbox has no global '%s' (no os, io, require, load, debug or file access; see docs/plugins.md)";

/// A fresh sandboxed state, globals still writable (the plugin files are
/// run next, then [`seal`]). Once `stopped` is set (a call ran past its
/// budget), `pcall` and `xpcall` raise the error again instead of
/// catching it, so a function cannot go on by catching its own stop.
pub(super) fn new_state(stopped: Arc<AtomicBool>) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    let g = lua.globals();
    for name in REMOVED {
        g.raw_set(*name, Value::Nil)?;
    }
    // string.dump makes bytecode of a function: nothing may load it here,
    // and nothing needs it.
    let string: Table = g.raw_get("string")?;
    string.raw_set("dump", Value::Nil)?;
    let real_pcall: Function = g.raw_get("pcall")?;
    lua.set_named_registry_value(REAL_PCALL, real_pcall)?;
    for name in ["pcall", "xpcall"] {
        let real: Function = g.raw_get(name)?;
        let flag = stopped.clone();
        let guarded = lua.create_function(move |_, args: MultiValue| {
            let mut out: MultiValue = real.call(args)?;
            if flag.load(Ordering::Relaxed) {
                return Err(mlua::Error::runtime("stopped: the call is over its budget"));
            }
            // As in Redis, a caught `{err = …}` (what redis.call raises)
            // is its message.
            if let (Some(Value::Boolean(false)), Some(Value::Table(t))) = (out.front(), out.get(1))
            {
                if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                    out[1] = Value::String(e);
                }
            }
            Ok(out)
        })?;
        g.raw_set(name, guarded)?;
    }
    super::redis::install(&lua)?;
    Ok(lua)
}

/// The metatable of an `EVAL` script's globals (its `KEYS` and `ARGV`):
/// everything else is read from the sealed globals, and nothing may be
/// set, as in Redis.
pub(super) fn script_globals(lua: &Lua) -> mlua::Result<Table> {
    let mt = lua.create_table()?;
    mt.raw_set("__index", lua.globals())?;
    mt.raw_set(
        "__newindex",
        lua.create_function(|_, (_t, name): (Value, Value)| -> mlua::Result<()> {
            let name = match name {
                Value::String(s) => s.to_string_lossy(),
                other => other.type_name().to_string(),
            };
            Err(mlua::Error::runtime(format!(
                "Attempt to modify a readonly table: a script may not set the global '{name}' (use local variables)"
            )))
        })?,
    )?;
    mt.raw_set("__metatable", false)?;
    Ok(mt)
}

/// Makes the globals read-only and their absence an error that says so:
/// a typo in a variable name fails loudly instead of reading nil, and no
/// call leaves state behind for the next one.
pub(super) fn seal(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let guard: Function = lua
        .load(
            r#"
            local missing = ...
            local function readonly(t, what)
                return setmetatable({}, {
                    __index = t,
                    __newindex = function(_, name)
                        error(string.format("%s is read-only: a function may not set '%s' (use local variables)", what, tostring(name)), 2)
                    end,
                    __metatable = false,
                })
            end
            -- The libraries behind read-only fronts, and the strings'
            -- metatable out of reach, so no call changes them for the next.
            local g = _G
            for _, lib in ipairs({ "string", "table", "math", "sessiond", "redis" }) do
                if rawget(g, lib) ~= nil then
                    rawset(g, lib, readonly(rawget(g, lib), lib))
                end
            end
            getmetatable("").__metatable = false
            local mt = {}
            mt.__index = function(_, name)
                error(string.format(missing, tostring(name)), 2)
            end
            mt.__newindex = function(_, name)
                error(string.format("a function may not set the global '%s': use local variables (globals are read-only once the plugins are loaded)", tostring(name)), 2)
            end
            mt.__metatable = false
            setmetatable(g, mt)
            "#,
        )
        .set_name("=sandbox")
        .into_function()?;
    guard.call::<()>(MISSING)?;
    // rawset writes past the read-only guards; the guard needed it.
    g.raw_set("rawset", Value::Nil)?;
    Ok(())
}
