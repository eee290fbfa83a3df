//! Server-side functions in Lua: the plugins directory, loaded at start and
//! on reload, and the host that runs a [`Command::Call`]'s function for the
//! engine (`sessiond_core::script`), with its budgets.
//!
//! Each `*.lua` file of `plugins_dir` runs once in a sandboxed state and
//! registers functions with `sessiond.register(name, fn)`. A file that
//! fails to load is reported and its previous version (if any) stays. The
//! loaded files make a [`Registry`]; calls run in states built from it,
//! kept in a small pool and rebuilt when a reload makes a new registry.
//!
//! One call may spend `scripts.max_instructions` Lua instructions,
//! `scripts.max_time_ms` of time and `scripts.max_memory_bytes` of memory;
//! past any of them it is stopped with an error naming the limit, and the
//! engine keeps nothing it did.
//!
//! [`Command::Call`]: sessiond_core::Command::Call

mod api;
mod sandbox;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, MultiValue, Value, VmState};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sessiond_core::script::{CallSpec, Func, ScriptHost, Txn};
use sessiond_core::{Error, Reply};

/// What one call of a function may spend (`[scripts]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Lua instructions one call may run.
    pub max_instructions: u64,
    /// Time one call may run, ms. Other clients of the same sessions'
    /// shards wait for it meanwhile, so keep it short.
    pub max_time_ms: u64,
    /// Memory one call may take beyond what the plugins hold, bytes.
    pub max_memory_bytes: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            // Some tens of milliseconds of plain Lua.
            max_instructions: 10_000_000,
            max_time_ms: 100,
            max_memory_bytes: 16 * 1024 * 1024,
        }
    }
}

/// How often the budget is checked, in instructions.
const CHECK_EVERY: u32 = 1_000;

/// Most idle states kept for the next calls.
const POOL: usize = 8;

/// One plugin file as loaded.
#[derive(Debug, Clone)]
struct Plugin {
    path: PathBuf,
    source: String,
    /// The functions it registers, in order.
    functions: Vec<String>,
}

/// The plugins in force: a new one on every reload that changed anything.
#[derive(Debug, Default)]
struct Registry {
    generation: u64,
    plugins: Vec<Plugin>,
    /// Function name → the file that registers it.
    functions: BTreeMap<String, PathBuf>,
}

/// One state ready to call functions.
struct Vm {
    lua: Lua,
    /// Set by the budget's hook once a call is over it.
    stopped: Arc<AtomicBool>,
    /// The engine's clock as the call started (`sessiond.now_ms()`): one
    /// time for the whole call, and the same clock as expiry.
    clock: Arc<AtomicU64>,
    generation: u64,
    functions: BTreeMap<String, Function>,
}

/// What a reload did: the functions in force after it, and the files it
/// could not load (each with why; their previous versions, if any, stay).
#[derive(Debug, Clone, Default)]
pub(crate) struct Reloaded {
    pub(crate) functions: Vec<String>,
    pub(crate) failed: Vec<(PathBuf, String)>,
}

/// Per-function figures for `/metrics` and the dashboard.
#[derive(Debug, Default)]
pub(crate) struct FnStats {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) micros: AtomicU64,
}

/// The plugins directory and the functions it holds.
pub(crate) struct Scripts {
    dir: PathBuf,
    limits: ScriptLimits,
    registry: Mutex<Arc<Registry>>,
    pool: Mutex<Vec<Vm>>,
    stats: Mutex<BTreeMap<String, Arc<FnStats>>>,
    /// Reload failures since start.
    pub(crate) load_errors: AtomicU64,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Scripts {
    /// Loads `dir`'s plugins (reporting files that fail, which are left
    /// out).
    pub(crate) fn open(dir: &Path, limits: ScriptLimits) -> Arc<Self> {
        let scripts = Arc::new(Self {
            dir: dir.to_path_buf(),
            limits,
            registry: Mutex::new(Arc::new(Registry::default())),
            pool: Mutex::new(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
            load_errors: AtomicU64::new(0),
        });
        let _ = scripts.reload();
        scripts
    }

    /// Reads the directory again: new and changed files replace their
    /// previous versions, removed ones go; a file that fails to load is
    /// reported (log, `sessiond_plugin_load_errors_total`) and its
    /// previous version stays.
    pub(crate) fn reload(&self) -> Reloaded {
        let mut failed = Vec::new();
        let mut refuse = |path: &Path, why: &str| {
            tracing::error!(path = %path.display(), "plugin not loaded: {why}");
            self.load_errors.fetch_add(1, Ordering::Relaxed);
            failed.push((path.to_path_buf(), why.to_string()));
        };
        let old = self.registry.lock().clone();
        let mut files = match list_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                // Everything stays as it was.
                refuse(
                    &self.dir,
                    &format!("cannot read the plugins directory: {e}"),
                );
                return Reloaded {
                    functions: old.functions.keys().cloned().collect(),
                    failed,
                };
            }
        };
        files.sort();
        let mut plugins: Vec<Plugin> = Vec::new();
        let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read it: {e}"))
                .and_then(|source| {
                    let functions = try_load(&path, &source)?;
                    Ok(Plugin {
                        path: path.clone(),
                        source,
                        functions,
                    })
                });
            let plugin = match loaded {
                Ok(p) => Some(p),
                Err(why) => {
                    refuse(&path, &why);
                    old.plugins.iter().find(|p| p.path == path).cloned()
                }
            };
            let Some(plugin) = plugin else { continue };
            if let Some(name) = plugin.functions.iter().find(|f| taken.contains_key(*f)) {
                let why = format!(
                    "function '{name}' is registered by {} already",
                    taken[name].display()
                );
                refuse(&plugin.path, &why);
                continue;
            }
            for f in &plugin.functions {
                taken.insert(f.clone(), plugin.path.clone());
            }
            plugins.push(plugin);
        }
        let registry = Arc::new(Registry {
            generation: old.generation + 1,
            plugins,
            functions: taken,
        });
        let functions: Vec<String> = registry.functions.keys().cloned().collect();
        tracing::info!(
            dir = %self.dir.display(),
            ?functions,
            failed = failed.len(),
            "plugins loaded"
        );
        *self.registry.lock() = registry;
        self.pool.lock().clear();
        Reloaded { functions, failed }
    }

    /// How many functions are callable now.
    pub(crate) fn function_count(&self) -> usize {
        self.registry.lock().functions.len()
    }

    /// Each function's figures so far.
    pub(crate) fn stats(&self) -> Vec<(String, Arc<FnStats>)> {
        self.stats
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The figures of a loaded function (never of a name a client made
    /// up: the table stays as small as the plugins).
    fn stats_of(&self, name: &str) -> Arc<FnStats> {
        self.stats
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// A state of the registry in force: from the pool, or built.
    fn checkout(&self) -> Result<Vm, String> {
        let registry = self.registry.lock().clone();
        {
            let mut pool = self.pool.lock();
            while let Some(vm) = pool.pop() {
                if vm.generation == registry.generation {
                    return Ok(vm);
                }
            }
        }
        build(&registry)
    }

    fn checkin(&self, vm: Vm) {
        let current = self.registry.lock().generation;
        let mut pool = self.pool.lock();
        if vm.generation == current && pool.len() < POOL {
            pool.push(vm);
        }
    }

    fn run_plugin(&self, name: &str, call: CallSpec<'_>, tx: &mut dyn Txn) -> Result<Reply, Error> {
        let failed = |message: String| Error::Script {
            function: name.to_string(),
            message,
        };
        let vm = self.checkout().map_err(failed)?;
        let Some(func) = vm.functions.get(name).cloned() else {
            return Err(failed("it is not in the loaded plugins".into()));
        };
        let Some(id) = call.ids.first() else {
            return Err(failed("it was called without a session".into()));
        };
        vm.clock.store(tx.now_ms(), Ordering::Relaxed);
        let budget = Budget::start(&vm.lua, &self.limits, vm.stopped.clone())
            .map_err(|e| failed(e.to_string()))?;
        let tx = RefCell::new(tx);
        let tx = &tx;
        let lua = &vm.lua;
        let outcome = vm.lua.scope(move |scope| {
            let session = api::session(lua, scope, tx, id)?;
            let mut args = MultiValue::new();
            args.push_back(Value::Table(session));
            for a in call.args {
                args.push_back(Value::String(lua.create_string(a)?));
            }
            func.call::<MultiValue>(args)
        });
        let spent = budget.finish(&vm.lua);
        let reply = match (spent, outcome) {
            // Past a limit, whatever the function did after (it may have
            // caught the error) does not count.
            (Some(limit), _) => Err(failed(limit)),
            (None, Ok(values)) => api::from_lua(values).map_err(failed),
            (None, Err(e)) => match api::engine_error(&e) {
                Some(engine) => Err(engine),
                None => Err(failed(lua_message(&e))),
            },
        };
        // A state stopped by a limit may be mid-way through anything.
        if reply.is_ok() || !budget.stopped() {
            self.checkin(vm);
        }
        reply
    }
}

impl ScriptHost for Scripts {
    fn call(&self, call: CallSpec<'_>, tx: &mut dyn Txn) -> Result<Reply, Error> {
        let name = String::from_utf8_lossy(call.func.name()).into_owned();
        if !self.registry.lock().functions.contains_key(&name) {
            return Err(Error::NoFunction(format!(
                "no function '{name}' is loaded from the plugins directory {} (after adding it, `sessiond ctl reload` or SIGHUP loads it)",
                self.dir.display()
            )));
        }
        let stats = self.stats_of(&name);
        let started = Instant::now();
        let reply = match call.func {
            Func::Plugin(_) => self.run_plugin(&name, call, tx),
        };
        stats.calls.fetch_add(1, Ordering::Relaxed);
        if reply.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        reply
    }
}

/// A call's instruction, time and memory budget, watched by a hook.
struct Budget {
    stop: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
}

impl Budget {
    fn start(lua: &Lua, limits: &ScriptLimits, stopped: Arc<AtomicBool>) -> mlua::Result<Self> {
        let stop: Arc<Mutex<Option<String>>> = Arc::default();
        stopped.store(false, Ordering::Relaxed);
        let (max_instructions, max_time) = (
            limits.max_instructions,
            Duration::from_millis(limits.max_time_ms),
        );
        let started = Instant::now();
        let count = AtomicU64::new(0);
        let (s, flag) = (stop.clone(), stopped.clone());
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(CHECK_EVERY),
            move |_, _| {
                let n = count.fetch_add(u64::from(CHECK_EVERY), Ordering::Relaxed)
                    + u64::from(CHECK_EVERY);
                let over = if n > max_instructions {
                    Some(format!(
                        "stopped after {max_instructions} instructions (scripts.max_instructions)"
                    ))
                } else if started.elapsed() > max_time {
                    Some(format!(
                        "stopped after {} ms (scripts.max_time_ms)",
                        max_time.as_millis()
                    ))
                } else {
                    None
                };
                match over {
                    None => Ok(VmState::Continue),
                    Some(why) => {
                        flag.store(true, Ordering::Relaxed);
                        let mut s = s.lock();
                        let why = s.get_or_insert(why).clone();
                        // Raised again every check, so catching it with
                        // pcall does not help the function go on.
                        Err(mlua::Error::runtime(why))
                    }
                }
            },
        )?;
        let limit = lua.used_memory().saturating_add(limits.max_memory_bytes);
        lua.set_memory_limit(limit)?;
        Ok(Self { stop, stopped })
    }

    /// Ends the watch; the limit the call ran into, if any.
    fn finish(&self, lua: &Lua) -> Option<String> {
        lua.remove_hook();
        // Loading and reloading are not limited; only calls are.
        let _ = lua.set_memory_limit(0);
        self.stop.lock().clone()
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// What a Lua error says, without mlua's wrapping or tracebacks.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::WithContext { cause, .. } => lua_message(cause),
        mlua::Error::MemoryError(_) => "ran out of memory (scripts.max_memory_bytes)".to_string(),
        // The message, without the traceback Lua adds.
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m
            .split("\nstack traceback:")
            .next()
            .unwrap_or_default()
            .to_string(),
        other => other.to_string(),
    }
}

/// The `*.lua` files of `dir`.
fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "lua") && path.is_file() {
            out.push(path);
        }
    }
    Ok(out)
}

/// Runs one file alone in a fresh state: the functions it registers, or
/// why it fails.
fn try_load(path: &Path, source: &str) -> Result<Vec<String>, String> {
    let lua = sandbox::new_state(Arc::default()).map_err(|e| e.to_string())?;
    let registered = run_file(&lua, path, source, Arc::default()).map_err(|e| lua_message(&e))?;
    if registered.is_empty() {
        return Err("it registers no function (call sessiond.register(name, fn))".into());
    }
    Ok(registered.into_iter().map(|(name, _)| name).collect())
}

/// Runs a plugin file in `lua`, with `sessiond.register` collecting what it
/// registers.
fn run_file(
    lua: &Lua,
    path: &Path,
    source: &str,
    clock: Arc<AtomicU64>,
) -> mlua::Result<Vec<(String, Function)>> {
    let found: Arc<Mutex<Vec<(String, Function)>>> = Arc::default();
    let sink = found.clone();
    let register = lua.create_function(move |_, (name, f): (String, Function)| {
        let mut sink = sink.lock();
        if !valid_name(&name) {
            return Err(mlua::Error::runtime(format!(
                "'{name}' is not a function name: use letters, digits, '_', '.' and '-', up to 64"
            )));
        }
        if sink.iter().any(|(n, _)| *n == name) {
            return Err(mlua::Error::runtime(format!(
                "function '{name}' is registered twice"
            )));
        }
        sink.push((name, f));
        Ok(())
    })?;
    let sessiond = helpers(lua, clock)?;
    sessiond.raw_set("register", register)?;
    lua.globals().raw_set("sessiond", sessiond)?;
    let name = format!(
        "@{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    lua.load(source).set_name(name).exec()?;
    lua.globals()
        .get::<mlua::Table>("sessiond")?
        .raw_set("register", Value::Nil)?;
    let found = std::mem::take(&mut *found.lock());
    Ok(found)
}

/// The `sessiond` table every function sees: the clock (the engine's, as
/// the call started; 0 while a file loads) and a logger.
fn helpers(lua: &Lua, clock: Arc<AtomicU64>) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "now_ms",
        lua.create_function(move |_, ()| Ok(clock.load(Ordering::Relaxed) as f64))?,
    )?;
    t.raw_set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            let mut line = String::new();
            for (i, a) in args.into_iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                match lua.coerce_string(a.clone())? {
                    Some(s) => line.push_str(&s.to_string_lossy()),
                    None => line.push_str(a.type_name()),
                }
            }
            // Bounded, so a function cannot flood the log with one line.
            if line.len() > 1024 {
                let mut end = 1024;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
            }
            tracing::info!(target: "sessiond::plugin", "{line}");
            Ok(())
        })?,
    )?;
    Ok(t)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A state with every plugin of `registry` loaded, sealed.
fn build(registry: &Registry) -> Result<Vm, String> {
    let stopped: Arc<AtomicBool> = Arc::default();
    let clock: Arc<AtomicU64> = Arc::default();
    let lua = sandbox::new_state(stopped.clone()).map_err(|e| e.to_string())?;
    let mut functions = BTreeMap::new();
    for p in &registry.plugins {
        let found = run_file(&lua, &p.path, &p.source, clock.clone())
            .map_err(|e| format!("{}: {}", p.path.display(), lua_message(&e)))?;
        functions.extend(found);
    }
    sandbox::seal(&lua).map_err(|e| e.to_string())?;
    Ok(Vm {
        lua,
        stopped,
        clock,
        generation: registry.generation,
        functions,
    })
}
