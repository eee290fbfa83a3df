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
mod cache;
mod redis;
mod sandbox;

pub(crate) use cache::ScriptCache;
pub(crate) use redis::sha1_hex;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, MultiValue, Value, VmState};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sessiond_core::script::{CallSpec, Func, ScriptHost, Txn};
use sessiond_core::{Error, Reply, SessionId};
use sessiond_proto::redis::RedisKeys;

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

/// A call tried in place on a request worker (`CallSpec::in_place`) may
/// run this long, and this many instructions; past either it is stopped,
/// nothing of it kept, and run again off the workers with its whole
/// budget. Most functions end well within it.
const IN_PLACE_SLICE: Duration = Duration::from_micros(1_000);
const IN_PLACE_INSTRUCTIONS: u64 = 100_000;
/// After a function ran past its in-place slice, its calls skip the try
/// for this long.
const SLOW_FOR: Duration = Duration::from_secs(1);

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
    functions: Vec<(String, Kind)>,
}

/// The plugins in force: a new one on every reload that changed anything.
#[derive(Debug, Default)]
struct Registry {
    generation: u64,
    plugins: Vec<Plugin>,
    /// Function name → the file that registers it.
    functions: BTreeMap<String, (PathBuf, Kind)>,
}

/// How a function was registered, so how it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `sessiond.register(name, fn)`: `fn(session, param...)`.
    Session,
    /// `redis.register_function(name, fn)`: `fn(keys, args)`, with
    /// `redis.call` on the keys' sessions.
    Redis,
}

/// Most compiled `EVAL` scripts one state keeps, and most bytes of their
/// sources: past either, it forgets them all (they compile again).
const MAX_COMPILED: usize = 512;
const MAX_COMPILED_BYTES: usize = 16 * 1024 * 1024;

/// One state ready to call functions.
struct Vm {
    lua: Lua,
    /// Set by the budget's hook once a call is over it.
    stopped: Arc<AtomicBool>,
    /// The engine's clock as the call started (`sessiond.now_ms()`): one
    /// time for the whole call, and the same clock as expiry.
    clock: Arc<AtomicU64>,
    generation: u64,
    functions: BTreeMap<String, (Kind, Function)>,
    /// `EVAL` scripts compiled in this state, by SHA1, and the bytes of
    /// their sources.
    compiled: std::collections::HashMap<Bytes, Function>,
    compiled_bytes: usize,
    /// The metatable of an `EVAL` script's globals: the sandbox's, read
    /// only.
    eval_globals: mlua::Table,
    /// The metatable of session objects (their methods).
    session_class: mlua::Table,
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
    /// Until when (ms after [`Scripts`]' start) its calls skip the
    /// in-place try: one ran past the slice lately.
    slow_until_ms: AtomicU64,
}

/// The plugins directory and the functions it holds.
pub(crate) struct Scripts {
    /// The plugins directory; none: no plugins, only Redis scripts.
    dir: Option<PathBuf>,
    /// How `redis.call` reads keys (the Redis door's configuration).
    redis_keys: RedisKeys,
    limits: ScriptLimits,
    registry: Mutex<Arc<Registry>>,
    pool: Mutex<Vec<Vm>>,
    stats: Mutex<BTreeMap<String, Arc<FnStats>>>,
    /// Reload failures since start.
    pub(crate) load_errors: AtomicU64,
    /// When it was opened: the clock of [`FnStats`]' slow marks.
    started: Instant,
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
    /// out); without a directory, Redis scripts run all the same.
    pub(crate) fn open(
        dir: Option<&Path>,
        limits: ScriptLimits,
        redis_keys: RedisKeys,
    ) -> Arc<Self> {
        let scripts = Arc::new(Self {
            dir: dir.map(Path::to_path_buf),
            redis_keys,
            limits,
            registry: Mutex::new(Arc::new(Registry::default())),
            pool: Mutex::new(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
            load_errors: AtomicU64::new(0),
            started: Instant::now(),
        });
        let _ = scripts.reload();
        scripts
    }

    /// Reads the directory again: new and changed files replace their
    /// previous versions, removed ones go; a file that fails to load is
    /// reported (log, `sessiond_plugin_load_errors_total`) and its
    /// previous version stays.
    pub(crate) fn reload(&self) -> Reloaded {
        let Some(dir) = &self.dir else {
            return Reloaded::default();
        };
        let mut failed = Vec::new();
        let mut refuse = |path: &Path, why: &str| {
            tracing::error!(path = %path.display(), "plugin not loaded: {why}");
            self.load_errors.fetch_add(1, Ordering::Relaxed);
            failed.push((path.to_path_buf(), why.to_string()));
        };
        let old = self.registry.lock().clone();
        let mut files = match list_files(dir) {
            Ok(files) => files,
            Err(e) => {
                // Everything stays as it was.
                refuse(dir, &format!("cannot read the plugins directory: {e}"));
                return Reloaded {
                    functions: old.functions.keys().cloned().collect(),
                    failed,
                };
            }
        };
        files.sort();
        let mut plugins: Vec<Plugin> = Vec::new();
        let mut taken: BTreeMap<String, (PathBuf, Kind)> = BTreeMap::new();
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
            if let Some((name, _)) = plugin.functions.iter().find(|(f, _)| taken.contains_key(f)) {
                let why = format!(
                    "function '{name}' is registered by {} already",
                    taken[name].0.display()
                );
                refuse(&plugin.path, &why);
                continue;
            }
            for (f, kind) in &plugin.functions {
                taken.insert(f.clone(), (plugin.path.clone(), *kind));
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
            dir = %dir.display(),
            ?functions,
            failed = failed.len(),
            "plugins loaded"
        );
        *self.registry.lock() = registry;
        self.pool.lock().clear();
        Reloaded { functions, failed }
    }

    /// Whether a plugins directory is configured (else there is nothing
    /// to reload).
    pub(crate) fn has_dir(&self) -> bool {
        self.dir.is_some()
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

    /// Runs `what` in a state of the pool, within the budgets; the reply
    /// as the function's kind converts it, or the error.
    fn run(&self, what: What<'_>, call: CallSpec<'_>, tx: &mut dyn Txn) -> Result<Reply, Error> {
        let failed = |message: String| what.failure(message);
        let mut vm = self.checkout().map_err(failed)?;
        let func = match &what {
            What::Session { name, .. } | What::Function { name, .. } => vm
                .functions
                .get(*name)
                .map(|(_, f)| f.clone())
                .ok_or_else(|| failed("it is not in the loaded plugins".into())),
            What::Eval { sha, source, .. } => vm.compile(sha, source),
        };
        let func = match func {
            Ok(f) => f,
            Err(e) => {
                // The state is as good as before: keep it.
                self.checkin(vm);
                return Err(e);
            }
        };
        vm.clock.store(tx.now_ms(), Ordering::Relaxed);
        let mut limits = Limits {
            instructions: self.limits.max_instructions,
            time: Duration::from_millis(self.limits.max_time_ms),
            memory: self.limits.max_memory_bytes,
        };
        if call.in_place {
            limits.instructions = limits.instructions.min(IN_PLACE_INSTRUCTIONS);
            limits.time = limits.time.min(IN_PLACE_SLICE);
        }
        let budget = Budget::start(&vm.lua, &limits, vm.stopped.clone())
            .map_err(|e| failed(e.to_string()))?;
        let tx = RefCell::new(tx);
        let tx = &tx;
        let lua = &vm.lua;
        let keys = &self.redis_keys;
        let eval_globals = &vm.eval_globals;
        let session_class = &vm.session_class;
        let outcome = vm.lua.scope(|scope| {
            let mut args = MultiValue::new();
            match &what {
                What::Session { id, .. } => {
                    let session = api::session(lua, scope, tx, id, session_class)?;
                    args.push_back(Value::Table(session));
                    for a in call.args {
                        args.push_back(Value::String(lua.create_string(a)?));
                    }
                    let out = func.call::<MultiValue>(args);
                    api::done(lua)?;
                    return out.map(|v| (true, v));
                }
                What::Function { keys: names, .. } => {
                    args.push_back(Value::Table(redis::strings(lua, names)?));
                    args.push_back(Value::Table(redis::strings(lua, call.args)?));
                }
                What::Eval { keys: names, .. } => {
                    // KEYS and ARGV are the script's own globals, over the
                    // sandbox's read-only ones.
                    let env = lua.create_table()?;
                    env.raw_set("KEYS", redis::strings(lua, names)?)?;
                    env.raw_set("ARGV", redis::strings(lua, call.args)?)?;
                    env.set_metatable(Some(eval_globals.clone()))?;
                    func.set_environment(env)?;
                }
            }
            redis::runner(lua, scope, tx, keys)?;
            // Through pcall, so an error value (redis.call's {err=...})
            // reaches here as it was raised.
            let pcall: Function = lua.named_registry_value(sandbox::REAL_PCALL)?;
            args.push_front(Value::Function(func.clone()));
            let out = pcall.call::<MultiValue>(args);
            redis::done(lua)?;
            let mut out = out?;
            let ok = matches!(out.pop_front(), Some(Value::Boolean(true)));
            Ok((ok, out))
        });
        let spent = budget.finish(&vm.lua);
        let reply = match (spent, outcome) {
            // Past its slice in place: it runs again, whole, elsewhere.
            (Some(_), _) if call.in_place => Err(Error::NotInPlace),
            // Past a limit, whatever the function did after (it may have
            // caught the error) does not count.
            (Some(limit), _) => Err(failed(limit)),
            (None, Ok((true, values))) => match &what {
                What::Session { .. } => api::from_lua(values).map_err(failed),
                _ => redis::from_lua(values),
            },
            (None, Ok((false, values))) => Err(redis::raised(
                &values.into_iter().next().unwrap_or(Value::Nil),
                &what.place(),
            )),
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

    /// Counts a call of `label` in its figures. A call tried in place
    /// that is to run elsewhere is not counted (its run there is), and
    /// marks the function slow for a while; a function marked slow is not
    /// tried in place.
    fn counted(
        &self,
        label: &str,
        in_place: bool,
        run: impl FnOnce() -> Result<Reply, Error>,
    ) -> Result<Reply, Error> {
        let stats = self.stats_of(label);
        let now_ms = self.started.elapsed().as_millis() as u64;
        if in_place && stats.slow_until_ms.load(Ordering::Relaxed) > now_ms {
            return Err(Error::NotInPlace);
        }
        let started = Instant::now();
        let reply = run();
        if let Err(Error::NotInPlace) = reply {
            let until = now_ms + SLOW_FOR.as_millis() as u64;
            stats.slow_until_ms.store(until, Ordering::Relaxed);
            return reply;
        }
        stats.calls.fetch_add(1, Ordering::Relaxed);
        if reply.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        reply
    }

    /// Whether SCRIPT LOAD may keep `source`: it compiles.
    pub(crate) fn check_compiles(&self, sha: &Bytes, source: &Bytes) -> Result<(), Error> {
        let mut vm = self
            .checkout()
            .map_err(|e| Error::Raised(format!("ERR {e}")))?;
        let compiled = vm.compile(sha, source).map(|_| ());
        self.checkin(vm);
        compiled
    }

    /// The kind of loaded function `name`, if one is loaded.
    fn kind_of(&self, name: &str) -> Option<Kind> {
        self.registry.lock().functions.get(name).map(|(_, k)| *k)
    }

    fn not_loaded(&self, name: &str) -> Error {
        Error::NoFunction(match &self.dir {
            Some(dir) => format!(
                "no function '{name}' is loaded from the plugins directory {} (after adding it, `sessiond ctl reload` or SIGHUP loads it)",
                dir.display()
            ),
            None => format!("no function '{name}': this server has no plugins directory (plugins_dir)"),
        })
    }
}

/// What a call runs.
enum What<'a> {
    /// A `sessiond.register` function on its session.
    Session { name: &'a str, id: &'a SessionId },
    /// A `redis.register_function` function (`FCALL`).
    Function { name: &'a str, keys: &'a [Bytes] },
    /// An `EVAL` script.
    Eval {
        sha: &'a Bytes,
        source: &'a Bytes,
        keys: &'a [Bytes],
    },
}

impl What<'_> {
    /// The error of a call that failed (its message, or a limit it ran
    /// into): a plugin's names the function; a Redis script's is a Redis
    /// error line.
    fn failure(&self, message: String) -> Error {
        match self {
            What::Session { name, .. } => Error::Script {
                function: name.to_string(),
                message,
            },
            _ => Error::Raised(format!(
                "ERR {message}{}; nothing the script did was kept",
                self.place()
            )),
        }
    }

    /// Where a Redis error happened, as Redis names it after the message.
    fn place(&self) -> String {
        match self {
            What::Eval { sha, .. } => format!(" script: {}", String::from_utf8_lossy(sha)),
            What::Function { name, .. } => format!(" function: {name}"),
            What::Session { name, .. } => format!(" function: {name}"),
        }
    }
}

impl Vm {
    /// `EVAL` script `source` (SHA1 `sha`) compiled in this state.
    fn compile(&mut self, sha: &Bytes, source: &Bytes) -> Result<Function, Error> {
        if let Some(f) = self.compiled.get(sha) {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(&source[..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                Error::Raised(format!(
                    "ERR Error compiling script (new function): {}",
                    lua_message(&e)
                ))
            })?;
        if self.compiled.len() >= MAX_COMPILED
            || self.compiled_bytes + source.len() > MAX_COMPILED_BYTES
        {
            self.compiled.clear();
            self.compiled_bytes = 0;
        }
        self.compiled_bytes += source.len();
        self.compiled.insert(sha.clone(), f.clone());
        Ok(f)
    }
}

impl ScriptHost for Scripts {
    fn call(&self, call: CallSpec<'_>, tx: &mut dyn Txn) -> Result<Reply, Error> {
        match call.func {
            Func::Plugin(name) => {
                let name = String::from_utf8_lossy(name);
                match self.kind_of(&name) {
                    None => Err(self.not_loaded(&name)),
                    Some(Kind::Redis) => Err(Error::Script {
                        function: name.to_string(),
                        message:
                            "it is a Redis function (redis.register_function): call it with FCALL"
                                .into(),
                    }),
                    Some(Kind::Session) => self.counted(&name, call.in_place, || {
                        let Some(id) = call.ids.first() else {
                            return Err(Error::Script {
                                function: name.to_string(),
                                message: "it was called without a session".into(),
                            });
                        };
                        self.run(What::Session { name: &name, id }, call, tx)
                    }),
                }
            }
            Func::FCall { name, keys } => {
                let name = String::from_utf8_lossy(name);
                match self.kind_of(&name) {
                    None => Err(Error::Raised("ERR Function not found".into())),
                    Some(Kind::Session) => self.counted(&name, call.in_place, || match call.ids.first() {
                        Some(id) => self.run(What::Session { name: &name, id }, call, tx),
                        None => Err(Error::Raised(format!(
                            "ERR function '{name}' is sessiond's (sessiond.register): name its session as the first key"
                        ))),
                    }),
                    Some(Kind::Redis) => self.counted(&name, call.in_place, || {
                        self.run(What::Function { name: &name, keys }, call, tx)
                    }),
                }
            }
            Func::Eval { sha, source, keys } => self.counted(EVAL_LABEL, call.in_place, || {
                self.run(What::Eval { sha, source, keys }, call, tx)
            }),
        }
    }
}

/// How the figures name every `EVAL` script together (no plugin function
/// can be called this).
pub(crate) const EVAL_LABEL: &str = "(eval)";

/// What one run of a call may spend.
struct Limits {
    instructions: u64,
    time: Duration,
    memory: usize,
}

/// A call's instruction, time and memory budget, watched by a hook.
struct Budget {
    stop: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
}

impl Budget {
    fn start(lua: &Lua, limits: &Limits, stopped: Arc<AtomicBool>) -> mlua::Result<Self> {
        let stop: Arc<Mutex<Option<String>>> = Arc::default();
        stopped.store(false, Ordering::Relaxed);
        let (max_instructions, max_time) = (limits.instructions, limits.time);
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
        let limit = lua.used_memory().saturating_add(limits.memory);
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
fn try_load(path: &Path, source: &str) -> Result<Vec<(String, Kind)>, String> {
    let lua = sandbox::new_state(Arc::default()).map_err(|e| e.to_string())?;
    let registered = run_file(&lua, path, source, Arc::default()).map_err(|e| lua_message(&e))?;
    if registered.is_empty() {
        return Err(
            "it registers no function (call sessiond.register(name, fn) or redis.register_function(name, fn))"
                .into(),
        );
    }
    Ok(registered
        .into_iter()
        .map(|(name, kind, _)| (name, kind))
        .collect())
}

/// Runs a plugin file in `lua`, with `sessiond.register` and
/// `redis.register_function` collecting what it registers. A first line
/// `#!lua name=…` (a Redis library's) is read as a comment.
fn run_file(
    lua: &Lua,
    path: &Path,
    source: &str,
    clock: Arc<AtomicU64>,
) -> mlua::Result<Vec<(String, Kind, Function)>> {
    let found: Arc<Mutex<Vec<(String, Kind, Function)>>> = Arc::default();
    let collect = |kind: Kind| {
        let sink = found.clone();
        move |name: String, f: Function| {
            let mut sink = sink.lock();
            if !valid_name(&name) {
                return Err(mlua::Error::runtime(format!(
                    "'{name}' is not a function name: use letters, digits, '_', '.' and '-', up to 64"
                )));
            }
            if sink.iter().any(|(n, _, _)| *n == name) {
                return Err(mlua::Error::runtime(format!(
                    "function '{name}' is registered twice"
                )));
            }
            sink.push((name, kind, f));
            Ok(())
        }
    };
    let session_fn = collect(Kind::Session);
    let register =
        lua.create_function(move |_, (name, f): (String, Function)| session_fn(name, f))?;
    let redis_fn = collect(Kind::Redis);
    // Redis's two spellings: (name, fn) and {function_name=, callback=}.
    let register_function = lua.create_function(move |_, (first, f): (Value, Option<Function>)| {
        match (first, f) {
            (Value::String(name), Some(f)) => redis_fn(name.to_string_lossy(), f),
            (Value::Table(t), None) => {
                let name: String = t.get("function_name")?;
                let f: Function = t.get("callback")?;
                redis_fn(name, f)
            }
            _ => Err(mlua::Error::runtime(
                "redis.register_function takes (name, function) or {function_name=..., callback=...}",
            )),
        }
    })?;
    let sessiond = helpers(lua, clock)?;
    sessiond.raw_set("register", register)?;
    lua.globals().raw_set("sessiond", sessiond)?;
    let redis: mlua::Table = lua.globals().raw_get("redis")?;
    redis.raw_set("register_function", register_function)?;
    let name = format!(
        "@{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let source = match source.strip_prefix("#!") {
        Some(rest) => format!("--#!{rest}"),
        None => source.to_string(),
    };
    lua.load(source).set_name(name).exec()?;
    lua.globals()
        .get::<mlua::Table>("sessiond")?
        .raw_set("register", Value::Nil)?;
    redis.raw_set("register_function", Value::Nil)?;
    let found = std::mem::take(&mut *found.lock());
    Ok(found)
}

/// The `sessiond` table every function sees: the clock (the engine's, as
/// the call started; 0 while a file loads) and a logger.
fn helpers(lua: &Lua, clock: Arc<AtomicU64>) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    t.raw_set("find", api::find_helper(lua)?)?;
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
        functions.extend(found.into_iter().map(|(name, kind, f)| (name, (kind, f))));
    }
    sandbox::seal(&lua).map_err(|e| e.to_string())?;
    let eval_globals = sandbox::script_globals(&lua).map_err(|e| e.to_string())?;
    let session_class = api::session_class(&lua).map_err(|e| e.to_string())?;
    Ok(Vm {
        lua,
        stopped,
        clock,
        generation: registry.generation,
        functions,
        compiled: std::collections::HashMap::new(),
        compiled_bytes: 0,
        eval_globals,
        session_class,
    })
}
