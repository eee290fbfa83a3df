//! The engine: executes [`Command`]s against the sharded store.
//!
//! Synchronous and free of I/O. A command either answers at once with a
//! [`Reply`] or, for a lock that is not free, hands back a [`PendingLock`]
//! whose future the caller awaits; the engine never sleeps.

mod batch;
mod copy;
mod data;
mod listing;
mod locking;
mod script;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::client::ClientHandle;
use crate::clock::Clock;
use crate::command::Command;
use crate::error::Error;
use crate::fields::IndexFields;
use crate::id::{IdChars, SessionId};
use crate::journal::{FencingKeys, Journal, Mutation, MutationLog};
use crate::lock::{LockMode, LockUsage};
use crate::reply::Reply;
use crate::session::Session;
use crate::store::{Shard, Store};

pub use batch::not_in_transaction;
pub use copy::Figures;
pub use data::Lent;
use data::Stored;
use locking::LockAsk;
pub use locking::{AfterGrant, PendingLock};
pub use script::MAX_CALL_SESSIONS;

/// Tunables of the engine. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Number of store shards.
    pub shards: usize,
    /// Idle timeout of a session created without one (PHP's
    /// `session.gc_maxlifetime` default: 1440 s).
    pub default_timeout_ms: u64,
    /// The longest idle timeout a client may set.
    pub max_timeout_ms: u64,
    /// Lease of a lock taken without `LEASE`.
    pub default_lease_ms: u64,
    /// The longest lease a client may ask for.
    pub max_lease_ms: u64,
    /// How long a door's lock request (Redis `SET <id>_LOCK … NX`,
    /// memcached `add lock.<id>`) waits in the session's queue for a held
    /// lock before it is answered as busy; 0: at once.
    pub door_lock_wait_ms: u64,
    /// The longest a lock request may wait.
    pub max_wait_ms: u64,
    /// The longest session id, in bytes.
    pub max_id_len: usize,
    /// The characters a new session's id may use.
    pub id_chars: IdChars,
    /// Most variables in one session.
    pub max_vars: usize,
    /// Most sessions this engine (tenant) holds; new ones past it are
    /// refused, never made room for by evicting others. 0: no limit.
    pub max_sessions: usize,
    /// Most lock requests queued on one session.
    pub max_lock_waiters: usize,
    /// Most lock entries (ids locked or awaited, sessions or not) this
    /// engine (tenant) holds. 0: no limit.
    pub max_locks: usize,
    /// The longest lock owner secret (phpredis's `host|pid|…` lock value,
    /// memcached's lock value), in bytes.
    pub max_lock_owner_len: usize,
    /// Most bytes (data, variables, classes) this engine (tenant) holds;
    /// writes that would grow past it, and new sessions once it is
    /// reached, are refused. 0: no limit.
    pub max_bytes: u64,
    /// Refuse to create a session under an id a client chose (session
    /// fixation): new sessions come from `UNIQ`, renames from `REGENERATE`
    /// without a new id.
    pub strict_ids: bool,
    /// The largest page `SCAN` returns.
    pub max_scan_count: usize,
    /// The most ids (or pairs) one unpaged listing returns (`LIST`,
    /// `FIND`, `LISTVAR`, Redis `KEYS`); past it the command is refused
    /// and points to its cursor form.
    pub max_reply_items: usize,
    /// The largest data blob a command may build (memcached `append`).
    pub max_data_len: usize,
    /// Whether `FlushAll` (Redis `FLUSHDB`, memcached `flush_all`) may
    /// destroy every session. Off by default: one stray command would log
    /// out every user.
    pub allow_flush: bool,
    /// The fields of session data (PHP, JSON, msgpack) `FIND` answers from
    /// an index; other names it answers by reading every session.
    pub index_fields: IndexFields,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            default_timeout_ms: 1_440_000,
            // 400 days: a year's "remember me" fits.
            max_timeout_ms: 400 * 24 * 3_600_000,
            default_lease_ms: 30_000,
            max_lease_ms: 3_600_000,
            // Under libmemcached's 5 s poll timeout and phpredis's 86,400 s
            // read timeout; far over what ordinary contention takes.
            door_lock_wait_ms: 3_000,
            max_wait_ms: 600_000,
            max_id_len: 256,
            id_chars: IdChars::printable(),
            max_vars: 1024,
            max_sessions: 10_000_000,
            max_lock_waiters: 1024,
            max_locks: 100_000,
            max_lock_owner_len: 512,
            max_bytes: 0,
            strict_ids: false,
            max_scan_count: 10_000,
            max_reply_items: 100_000,
            max_data_len: 16 * 1024 * 1024,
            allow_flush: false,
            index_fields: IndexFields::default(),
        }
    }
}

/// What executing a command came to.
#[derive(Debug)]
pub enum Outcome {
    /// The answer.
    Reply(Reply),
    /// The lock is busy: await [`PendingLock::wait`], then call
    /// [`Engine::complete_wait`] (or [`Engine::cancel_wait`] on a timeout).
    Wait(PendingLock),
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// What one round of [`Engine::tick`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Sessions removed because their deadline passed.
    pub expired_sessions: usize,
    /// Lock holders dropped because their lease ran out.
    pub expired_leases: usize,
}

/// An engine's counters and gauges, read without walking its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sessions held (expired ones not yet reaped included).
    pub sessions: u64,
    /// Sessions without expiry (Redis keys set without one).
    pub persistent: u64,
    /// Bytes of data, variables and classes held.
    pub bytes: u64,
    /// Lock entries held (ids locked or awaited, sessions or not).
    pub locks: u64,
    /// Bytes the lock entries take (ids, holders, waiters, owner secrets).
    pub lock_bytes: u64,
    /// Sessions removed because they expired, since start.
    pub expired_sessions: u64,
    /// Lock leases that ran out, since start.
    pub expired_leases: u64,
    /// Lock-key deletes (`DEL <id>_LOCK`, memcached `delete lock.<id>`,
    /// the unlock script) refused because the caller did not hold the lock.
    pub refused_unlocks: u64,
    /// Timeouts asked for over `max_timeout_ms`, set to it instead.
    pub capped_timeouts: u64,
    /// Lock leases asked for over `max_lease_ms`, set to it instead.
    pub capped_leases: u64,
}

/// The lease of a lock that asked for none: it never runs out.
pub(super) const NO_EXPIRY: u64 = crate::NEVER;

/// Counters the engine keeps for `INFO`.
#[derive(Debug, Default)]
struct Stats {
    expired_sessions: AtomicU64,
    expired_leases: AtomicU64,
    /// Lock-key deletes refused: the caller did not hold the lock.
    refused_unlocks: AtomicU64,
    capped_timeouts: AtomicU64,
    capped_leases: AtomicU64,
}

/// The session engine.
pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// Fencing keys: strictly increasing, never reused.
    keys: FencingKeys,
    /// Where mutations are recorded, once a log is installed.
    journal: Arc<Journal>,
    /// The next session version (also the memcached CAS value).
    next_version: AtomicU64,
    next_client: AtomicU64,
    stats: Stats,
    /// What the locks take, for the quotas and `INFO`.
    lock_usage: Arc<LockUsage>,
    /// What a store behind a working copy holds besides what is loaded
    /// here (see `copy.rs`); zero for an engine that is the store.
    elsewhere: copy::Elsewhere,
    /// What runs [`Command::Call`]'s functions, once installed.
    scripts: OnceLock<Arc<dyn crate::script::ScriptHost>>,
    /// A working copy of sessions another store holds: walks see only
    /// what is loaded here, so a function may not walk.
    working_copy: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Who picked the id of a session about to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    ByClient,
    ByServer,
}

fn strict_refusal() -> Error {
    Error::InvalidArgument(
        "strict ids: a new session's id comes from the server; create it with SESSION.UNIQ, rename one with SESSION.REGENERATE id".into(),
    )
}

/// How many expired sessions one shard gives up per tick at most, so a mass
/// expiry is spread out instead of stalling the shard.
const REAP_BUDGET_PER_SHARD: usize = 256;

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>) -> Self {
        let journal = Arc::new(Journal::default());
        Self {
            store: Store::new(config.shards, &journal, config.index_fields.clone()),
            clock,
            config,
            keys: FencingKeys::new(journal.clone()),
            journal,
            next_version: AtomicU64::new(1),
            next_client: AtomicU64::new(1),
            stats: Stats::default(),
            lock_usage: Arc::default(),
            elsewhere: copy::Elsewhere::default(),
            scripts: OnceLock::new(),
            working_copy: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Marks the engine as a working copy of sessions another store
    /// holds (a cluster node's): functions may not walk it.
    pub fn mark_working_copy(&self) {
        self.working_copy.store(true, Ordering::Relaxed);
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine's clock, for whatever else must agree with it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The current time as the engine sees it.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The same in microseconds.
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// A handle for a new connection. Give it back to
    /// [`Engine::disconnect`] when the connection closes.
    pub fn connect(&self) -> ClientHandle {
        ClientHandle::new(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    /// Releases every lock `client` holds or awaits, granting them on.
    pub fn disconnect(&self, client: &ClientHandle) {
        // The client's record can change under us only by a REGENERATE
        // renaming one of its sessions; go round until it is empty.
        loop {
            let ids = client.lock_ids();
            if ids.is_empty() {
                break;
            }
            let now = self.now_ms();
            for id in ids {
                let mut shard = self.store.lock(&id);
                let Shard { locks, leases, .. } = &mut *shard;
                if let Some(lock) = locks.get_mut(&id) {
                    if lock.drop_client(client) {
                        lock.pump(&id, now, &self.keys, leases);
                    }
                    if lock.is_idle() {
                        locks.remove(&id);
                    }
                }
                client.forget(&id);
            }
        }
    }

    /// Background upkeep: expires sessions and leases that are due. Call it
    /// often (every few ms); each call does a bounded amount of work.
    pub fn tick(&self) -> TickReport {
        let now = self.now_ms();
        let mut report = TickReport::default();
        for i in 0..self.store.len() {
            // A shard a transaction or function holds is left for the next
            // tick: upkeep runs on a request worker and must not wait.
            let Some(mut shard) = self.store.lock_unclaimed(i) else {
                continue;
            };
            report.expired_leases += shard.expire_leases(now, &self.keys);
            report.expired_sessions += shard.reap(now, REAP_BUDGET_PER_SHARD);
        }
        self.stats
            .expired_sessions
            .fetch_add(report.expired_sessions as u64, Ordering::Relaxed);
        self.stats
            .expired_leases
            .fetch_add(report.expired_leases as u64, Ordering::Relaxed);
        report
    }

    /// Makes sure the next fencing key is above `key` (for a restart that
    /// must never hand out a key twice).
    pub fn raise_fencing_key(&self, key: u64) {
        self.keys.raise_above(key);
    }

    /// The next fencing key that will be handed out.
    pub fn next_fencing_key(&self) -> u64 {
        self.keys.peek()
    }

    /// From now on, every change is recorded in `log`. Install it after
    /// recovery (replayed records are not logged again). Returns false if a
    /// log was already installed.
    pub fn install_log(&self, log: Arc<dyn MutationLog>) -> bool {
        self.journal.install(log)
    }

    /// Applies a recovered record (snapshot or log), in log order. Records
    /// are absolute, so applying one the state already has is harmless.
    pub fn apply(&self, m: Mutation) {
        let bump = |v: u64| {
            self.next_version
                .fetch_max(v.saturating_add(1), Ordering::Relaxed);
        };
        match m {
            Mutation::Put { id, session } => {
                bump(session.version);
                let mut shard = self.store.lock(&id);
                shard.take(&id);
                shard.insert(id, session);
            }
            Mutation::Remove { id } => {
                self.store.lock(&id).take(&id);
            }
            Mutation::SetVars {
                id,
                pairs,
                version,
                accessed_ms,
            } => {
                bump(version);
                let mut shard = self.store.lock(&id);
                for (name, value) in pairs {
                    shard.set_var(&id, name, value);
                }
                restamp(&mut shard, &id, Some(version), accessed_ms);
            }
            Mutation::DelVar {
                id,
                name,
                version,
                accessed_ms,
            } => {
                bump(version);
                let mut shard = self.store.lock(&id);
                shard.del_var(&id, &name);
                restamp(&mut shard, &id, Some(version), accessed_ms);
            }
            Mutation::SetData {
                id,
                data,
                version,
                accessed_ms,
            } => {
                bump(version);
                let mut shard = self.store.lock(&id);
                shard.replace_data(&id, data);
                restamp(&mut shard, &id, Some(version), accessed_ms);
            }
            Mutation::Timeout {
                id,
                timeout_ms,
                accessed_ms,
            } => {
                let mut shard = self.store.lock(&id);
                shard.retime_quietly(&id, timeout_ms);
                restamp(&mut shard, &id, None, accessed_ms);
                shard.reschedule(&id);
            }
            Mutation::Touch { id, accessed_ms } => {
                restamp(&mut self.store.lock(&id), &id, None, accessed_ms);
            }
            Mutation::FencingKeys { up_to } => self.keys.restore_reservation(up_to),
        }
    }

    /// A consistent copy of shard `index`'s sessions, taken under its lock
    /// (for snapshots: one shard at a time, never the whole store at once).
    pub fn shard_sessions(&self, index: usize) -> Vec<(SessionId, Session)> {
        let shard = self.store.lock_at(index);
        shard
            .sessions
            .iter()
            .map(|(id, s)| (id.clone(), Session::clone(s)))
            .collect()
    }

    /// How many sessions are stored (expired ones not yet reaped included).
    /// On a working copy, what the store behind it holds counts too.
    pub fn session_count(&self) -> usize {
        self.session_total()
    }

    /// A copy of a live session and the mode its lock is held in, for
    /// inspection (the HTTP API, the operator's tools): reading it this way
    /// does not refresh its expiry, nor count as a command.
    pub fn peek(&self, id: &SessionId) -> Option<(Session, Option<LockMode>)> {
        let now = self.clock.now_ms();
        let mut shard = self.store.lock(id);
        let session = shard.live(id, now)?.clone();
        let mode = shard.locks.get(id).and_then(|l| l.mode());
        Some((session, mode))
    }

    /// The engine's counters and gauges (cheap: no shard is locked).
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            sessions: self.session_total() as u64,
            persistent: self.elsewhere.add_persistent(self.store.persistent()),
            bytes: self.session_bytes(),
            locks: self.lock_total() as u64,
            lock_bytes: self.lock_bytes_total(),
            expired_sessions: self.stats.expired_sessions.load(Ordering::Relaxed),
            expired_leases: self.stats.expired_leases.load(Ordering::Relaxed),
            refused_unlocks: self.stats.refused_unlocks.load(Ordering::Relaxed),
            capped_timeouts: self.stats.capped_timeouts.load(Ordering::Relaxed),
            capped_leases: self.stats.capped_leases.load(Ordering::Relaxed),
        }
    }

    /// How many shards the store has.
    pub fn shard_count(&self) -> usize {
        self.store.len()
    }

    /// Runs a command that must not wait: a lock request that would queue
    /// is withdrawn at once (the try-once locks of the Redis, memcached and
    /// line doors' non-waiting commands).
    pub fn execute_now(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
        match self.execute(client, cmd)? {
            Outcome::Reply(r) => Ok(r),
            Outcome::Wait(pending) => self.give_up(&pending),
        }
    }

    /// Runs one command for `client`.
    pub fn execute(&self, client: &ClientHandle, cmd: Command) -> Result<Outcome, Error> {
        self.execute_at(client, cmd, self.now_ms())
    }

    /// [`Engine::execute`] at `now`, a time the caller has just read from
    /// the engine's clock (so that one reading serves the command and the
    /// measure of its latency).
    pub fn execute_at(
        &self,
        client: &ClientHandle,
        cmd: Command,
        now: u64,
    ) -> Result<Outcome, Error> {
        // Every variant is listed: a new command does not compile until it is
        // handled here.
        let reply = match cmd {
            Command::Create {
                id,
                class,
                data,
                timeout_ms,
            } => self.create(id, class, data, timeout_ms, now)?,
            Command::Uniq {
                len,
                class,
                data,
                timeout_ms,
            } => self.uniq(len, class, data, timeout_ms, now)?,
            Command::Destroy { id } => self.destroy(&id, now)?,
            Command::DestroyIf { id, data } => self.destroy_if(&id, &data, now),
            Command::Expire {
                id,
                timeout_ms,
                when,
            } => self.expire(&id, timeout_ms, when, now)?,
            Command::IncrBy { id, by, key_form } => self.incr_by(id, by, key_form, now)?,
            Command::IncrByFloat { id, by, key_form } => {
                self.incr_by_float(id, &by, key_form, now)?
            }
            Command::Take { id } => self.take(&id, now)?,
            Command::Exists { id } => self.exists(&id, now),
            Command::Info { id } => self.info(&id, now)?,
            Command::Export { id } => self.export(&id, now)?,
            Command::Count { class } => self.count(class.as_deref(), now),
            Command::List { class } => self.list(class.as_deref(), now)?,
            Command::Scan {
                cursor,
                count,
                class,
            } => self.scan(&cursor, count, class.as_deref(), now)?,
            Command::Get { id, name, default } => self.get(&id, &name, default, now)?,
            Command::Set { id, name, value } => self.set_vars(&id, vec![(name, value)], now)?,
            Command::Del { id, name } => self.del(&id, &name, now)?,
            Command::GetAll { id } => self.get_all(&id, now)?,
            Command::SetAll { id, pairs } => self.set_vars(&id, pairs, now)?,
            Command::GetData { id, touch } => self.get_data(&id, touch, now)?,
            Command::SetData { id, data } => self.set_data(&id, data, now)?,
            Command::Store {
                id,
                data,
                timeout_ms,
                flags,
                condition,
                reply,
                key_form,
            } => {
                let stored = Stored {
                    data,
                    timeout_ms,
                    flags,
                    key_form,
                };
                self.store(id, stored, condition, reply, now)?
            }
            Command::FlushAll => self.flush_all()?,
            Command::Append { id, data, front } => self.append(&id, data, front, now)?,
            Command::Item { id, timeout_ms } => self.item(&id, timeout_ms, now)?,
            Command::IncrData {
                id,
                delta,
                decr,
                initial,
            } => self.incr_data(id, delta, decr, initial, now)?,
            Command::Inc { id, name, by } => self.inc(&id, name, by, now)?,
            Command::Find { name, value } => self.find(&name, &value, now)?,
            Command::ListVar { name } => self.list_var(&name, now)?,
            Command::FindPage {
                name,
                value,
                cursor,
                count,
            } => self.find_page((&name, &value), &cursor, count, true, now)?,
            Command::ListVarPage {
                name,
                cursor,
                count,
            } => self.list_var_page(&name, &cursor, count, now)?,
            Command::KeyScan { cursor, count } => self.key_scan(cursor, count, now)?,
            Command::Keys => self.keys(now)?,
            Command::Timeout { id, timeout_ms } => self.timeout(&id, timeout_ms, now)?,
            Command::Ttl { id } => self.ttl(&id, now)?,
            Command::PTtl { id } => self.pttl(&id, now)?,
            Command::Touch { id } => self.touch(&id, now)?,
            Command::Lock {
                id,
                mode,
                wait_ms,
                lease_ms,
            } => {
                let ask = LockAsk::native(mode, wait_ms, lease_ms);
                return self.lock(client, id, ask, AfterGrant::Key, now);
            }
            Command::LockOwned {
                id,
                owner,
                lease_ms,
                wait_ms,
            } => {
                let ask = LockAsk {
                    mode: LockMode::Write,
                    wait_ms: wait_ms.unwrap_or(self.config.door_lock_wait_ms),
                    // No expiry asked for: held until released or until
                    // the connection closes (which sessiond sees).
                    lease_ms: Some(lease_ms.unwrap_or(NO_EXPIRY)),
                    owner: Some(owner),
                    require_session: false,
                };
                return self.lock(client, id, ask, AfterGrant::Key, now);
            }
            Command::UnlockOwned { id, owner } => {
                self.unlock_owned(client, &id, owner.as_deref(), now)
            }
            Command::LockOwner { id } => self.lock_owner(&id, now),
            Command::Unlock { id, key } => self.unlock(&id, key, now)?,
            Command::Commit { id, key } => self.commit(&id, key, now)?,
            Command::Open {
                id,
                mode,
                wait_ms,
                lease_ms,
                create,
            } => {
                if create {
                    self.create_if_missing(&id, now)?;
                }
                let ask = LockAsk::native(mode, wait_ms, lease_ms);
                return self.lock(client, id, ask, AfterGrant::Open { create }, now);
            }
            Command::Close {
                id,
                key,
                data,
                sets,
            } => self.close(&id, key, data, sets, now)?,
            Command::Regenerate { id, new_id } => self.regenerate(&id, new_id, now)?,
            Command::RandStr { len } => {
                check_random_len(len)?;
                Reply::Bulk(crate::id::random_string(len)?)
            }
            Command::Ping { message } => match message {
                Some(m) => Reply::Bulk(m),
                None => Reply::Status("PONG"),
            },
            Command::Echo { message } => Reply::Bulk(message),
            Command::ServerInfo => self.server_info(now),
            Command::Exec { watched, commands } => self.exec(client, watched, commands)?,
            Command::Call { func, ids, args } => self.call(client, &func, &ids, &args)?,
        };
        Ok(Outcome::Reply(reply))
    }

    fn check_id(&self, id: &SessionId) -> Result<(), Error> {
        let len = id.as_bytes().len();
        if len == 0 {
            return Err(Error::InvalidArgument(
                "a session id must not be empty".into(),
            ));
        }
        if len > self.config.max_id_len {
            return Err(Error::LimitExceeded {
                what: "the session id length",
                got: len as u64,
                limit: self.config.max_id_len as u64,
            });
        }
        if !self.config.id_chars.allows(id.as_bytes()) {
            return Err(Error::InvalidArgument(format!(
                "session id '{id}' has a character outside the allowed ones ({}; limits.id_chars)",
                self.config.id_chars.as_str()
            )));
        }
        Ok(())
    }

    /// A class is listed by like an id, so it is bounded like one
    /// (`max_id_len`).
    fn check_class(&self, class: Option<&[u8]>) -> Result<(), Error> {
        match class {
            Some(c) if c.len() > self.config.max_id_len => Err(Error::LimitExceeded {
                what: "the class length",
                got: c.len() as u64,
                limit: self.config.max_id_len as u64,
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a new session past `max_sessions`, or one whose id a client
    /// chose under `strict_ids`.
    fn may_create(&self, chosen: Chosen) -> Result<(), Error> {
        if self.config.strict_ids && chosen == Chosen::ByClient {
            return Err(strict_refusal());
        }
        if self.config.max_bytes > 0 && self.used_bytes() >= self.config.max_bytes {
            return Err(self.bytes_refusal(0));
        }
        let max = self.config.max_sessions;
        let count = self.session_total();
        if max > 0 && count >= max {
            return Err(Error::LimitExceeded {
                what: "the number of sessions",
                got: count as u64 + 1,
                limit: max as u64,
            });
        }
        Ok(())
    }

    /// Bytes counted against `max_bytes`: sessions' and locks'.
    fn used_bytes(&self) -> u64 {
        self.session_bytes().saturating_add(self.lock_bytes_total())
    }

    /// Refuses a write that adds `growth` bytes past `max_bytes`.
    fn room_for_bytes(&self, growth: usize) -> Result<(), Error> {
        let max = self.config.max_bytes;
        if max > 0 && growth > 0 && self.used_bytes().saturating_add(growth as u64) > max {
            return Err(self.bytes_refusal(growth));
        }
        Ok(())
    }

    fn bytes_refusal(&self, growth: usize) -> Error {
        Error::LimitExceeded {
            what: "the bytes stored",
            got: self.used_bytes().saturating_add(growth as u64),
            limit: self.config.max_bytes,
        }
    }

    /// Refuses writes that would leave `session` with more than `max_vars`
    /// variables.
    fn room_for_vars<'a>(
        &self,
        session: &Session,
        names: impl Iterator<Item = &'a Bytes>,
    ) -> Result<(), Error> {
        let mut new: Vec<&Bytes> = names.filter(|n| !session.vars().contains_key(*n)).collect();
        if new.is_empty() {
            return Ok(());
        }
        new.sort_unstable();
        new.dedup();
        let total = session.vars().len() + new.len();
        if total > self.config.max_vars {
            return Err(Error::LimitExceeded {
                what: "the number of variables in the session",
                got: total as u64,
                limit: self.config.max_vars as u64,
            });
        }
        Ok(())
    }

    fn timeout_or_default(&self, timeout_ms: Option<u64>) -> Result<u64, Error> {
        match timeout_ms {
            None => Ok(self.config.default_timeout_ms),
            // A Redis key without expiry (SET without EX, PERSIST).
            Some(crate::NEVER) => Ok(crate::NEVER),
            Some(0) => Err(Error::InvalidArgument(
                "the timeout must be at least 1 second".into(),
            )),
            // Longer than allowed is capped, never refused: a store's "remember
            // me for a year" must not fail the login (counted for INFO and
            // /metrics).
            Some(t) if t > self.config.max_timeout_ms => {
                self.stats.capped_timeouts.fetch_add(1, Ordering::Relaxed);
                Ok(self.config.max_timeout_ms)
            }
            Some(t) => Ok(t),
        }
    }

    fn version(&self) -> u64 {
        self.next_version.fetch_add(1, Ordering::Relaxed)
    }

    fn new_session(
        &self,
        class: Option<Bytes>,
        data: Option<Bytes>,
        timeout_ms: u64,
        now: u64,
    ) -> Session {
        let mut s = Session::new(now, timeout_ms, self.version());
        s.set_class(class);
        s.data = data.unwrap_or_default();
        s
    }
}

/// Sets a recovered session's version (if given) and access time.
fn restamp(shard: &mut Shard, id: &SessionId, version: Option<u64>, accessed_ms: u64) {
    if let Some(s) = shard.sessions.get_mut(id) {
        if let Some(v) = version {
            s.version = v;
        }
        s.accessed_ms = s.accessed_ms.max(accessed_ms);
        s.logged_ms = s.accessed_ms;
    }
}

/// `RANDSTR` and `UNIQ LEN` hand out between 1 and [`crate::id::MAX_RANDOM_LEN`] symbols.
fn check_random_len(len: usize) -> Result<(), Error> {
    if len == 0 {
        return Err(Error::InvalidArgument(
            "the length must be at least 1".into(),
        ));
    }
    if len > crate::id::MAX_RANDOM_LEN {
        return Err(Error::LimitExceeded {
            what: "the random string length",
            got: len as u64,
            limit: crate::id::MAX_RANDOM_LEN as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
