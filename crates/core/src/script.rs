//! The seam between the engine and server-side functions (Lua plugins,
//! Redis scripts).
//!
//! A [`Command::Call`] names a function, the sessions it may touch and its
//! arguments. The engine claims those sessions' shards, hands the function
//! a [`Txn`] through which it runs ordinary commands on them, and applies
//! the outcome all or nothing: when the function fails, every session it
//! touched is put back as it was and nothing reaches the log. What runs
//! the function is a [`ScriptHost`] the server installs; the engine knows
//! no script language.

use bytes::Bytes;

use crate::command::Command;
use crate::error::Error;
use crate::id::SessionId;
use crate::reply::Reply;

/// Which function a [`Command::Call`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Func {
    /// A named function of the plugins directory (`SESSION.PLUGIN`, the
    /// line protocol's own commands, HTTP), called with the first session
    /// and the arguments.
    Plugin(Bytes),
    /// A Redis script (`EVAL`, `EVALSHA`): its source and SHA1 (hex, lower
    /// case), and the keys it declares (`KEYS`, which map onto the call's
    /// sessions); the arguments are `ARGV`.
    Eval {
        sha: Bytes,
        source: Bytes,
        keys: Vec<Bytes>,
    },
    /// `FCALL name numkeys key... arg...`: a function of the plugins
    /// directory, called Redis's way (`redis.register_function`:
    /// `fn(keys, args)`) or sessiond's (`sessiond.register`: the first
    /// key's session and the arguments).
    FCall { name: Bytes, keys: Vec<Bytes> },
}

impl Func {
    /// How errors and metrics name it: a loaded function by its name,
    /// every Redis script as `(eval)`.
    pub fn name(&self) -> &[u8] {
        match self {
            Func::Plugin(name) | Func::FCall { name, .. } => name,
            Func::Eval { .. } => b"(eval)",
        }
    }
}

/// One call, as the host sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec<'a> {
    pub func: &'a Func,
    /// The sessions the function may touch; the first is "its" session.
    pub ids: &'a [SessionId],
    pub args: &'a [Bytes],
    /// Run in place on a request worker: the host gives it only a short
    /// slice and answers [`Error::NotInPlace`] past it (or whenever it
    /// would rather not run it there); the server then runs the call
    /// again, whole, off the workers.
    pub in_place: bool,
}

/// The function's way to the sessions it was given: each command runs as
/// it would alone, but only on those sessions, never waits, and takes no
/// lock.
pub trait Txn {
    /// Runs `cmd`, refused unless it touches only the call's sessions.
    fn run(&mut self, cmd: Command) -> Result<Reply, Error>;
    /// The engine's clock, in ms since the epoch.
    fn now_ms(&self) -> u64;
    /// One page of the sessions where variable (or PHP entry) `name` is
    /// `value`, visiting at most `count` sessions from `cursor` (`0` to
    /// start): [`Reply::Page`]. Ids only — the call may not touch them. A
    /// page ends early where another call holds sessions (go on from the
    /// cursor); refused on a working copy, which holds only some.
    fn find(
        &mut self,
        name: &[u8],
        value: &[u8],
        cursor: &[u8],
        count: usize,
    ) -> Result<Reply, Error>;
}

/// What runs functions: the server's Lua host.
pub trait ScriptHost: Send + Sync + 'static {
    /// Runs `call` to its end. An error leaves every session as it was.
    fn call(&self, call: CallSpec<'_>, tx: &mut dyn Txn) -> Result<Reply, Error>;
}
