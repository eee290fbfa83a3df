//! Commands on a cluster node: the sessions a command touches are read
//! from the database, the command runs on the node's working copy by the
//! engine's own rules, and what changed is written back, conditional on
//! each row's revision (see the module above).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sessiond_core::fields::IndexFields;
use sessiond_core::{
    not_in_transaction, ClientHandle, Command, Engine, Error, Outcome, Reply, Session, SessionId,
    Touches,
};
use tokio::sync::{Mutex, MutexGuard};

use super::changes::{Change, Changes};
use super::db::{Conn, Dialect, St, P, Q};
use super::outcome::{Done, SessionWrite, Write};
use super::pool::DbError;
use super::row::{self, Loaded};
use super::wake::Woken;
use super::{Boxed, Cluster};

/// A live session and its lock's mode, as [`ClusterTenant::peek`] reads them.
type Peeked = Result<Option<(sessiond_core::Session, Option<sessiond_core::LockMode>)>, Error>;

/// How often a command is run again because its sessions changed on
/// another node meanwhile, before the client is told to try again.
pub(super) const MAX_ATTEMPTS: usize = 16;

/// Per-node turns on sessions: commands on ids of the same stripe take
/// turns, so a node never races itself for a row.
const STRIPES: usize = 1024;

/// One tenant on a cluster node.
pub(crate) struct ClusterTenant {
    pub(super) cluster: Arc<Cluster>,
    pub(super) name: String,
    /// The working copy the commands run on.
    pub(super) engine: Arc<Engine>,
    pub(super) changes: Arc<Changes>,
    stripes: Box<[Mutex<()>]>,
    pub(super) indexed: IndexFields,
    /// The ids each client of this node may hold or await a lock on (a
    /// superset), so its locks are given up when it disconnects.
    pub(super) lock_ids: parking_lot::Mutex<HashMap<u64, HashSet<SessionId>>>,
    /// When the tenant's figures were last read (0: never).
    figures_read_ms: std::sync::atomic::AtomicU64,
    /// Held (shared) by every command from loading its rows to writing
    /// them back, and (alone) while the figures are read: so what the
    /// working copy moved is never counted twice or lost by a read that
    /// raced a command. Never taken twice by one task.
    pub(super) gate: tokio::sync::RwLock<()>,
    /// Lock requests to take back when the database answers again: id and
    /// request number (see [`ClusterTenant::settle_orphans`]).
    pub(super) orphans: parking_lot::Mutex<Vec<(SessionId, u64)>>,
    /// The rows this node's last lock operation on an id left (see
    /// `kept.rs`).
    pub(super) kept: super::kept::Kept,
}

/// Where a command runs.
enum Route {
    /// On the node alone: nothing stored is involved.
    Node,
    /// On these sessions' rows.
    Sessions(Vec<SessionId>),
    /// A new session under a random id.
    Uniq,
    /// A lock command.
    Lock,
    /// `INFO`'s figures.
    Info,
    /// A command that looks across the tenant's sessions.
    Across,
    /// `REGENERATE`: a session and its lock under a new id.
    Regenerate,
    /// A transaction holding lock commands: its sessions, and the locks
    /// among them (both sorted, without repeats).
    Transaction {
        ids: Vec<SessionId>,
        lock_ids: Vec<SessionId>,
    },
    /// Refused: what is not available on this backend yet, or the
    /// engine's own refusal.
    Refused(Result<&'static str, Error>),
}

impl ClusterTenant {
    pub(crate) fn new(cluster: Arc<Cluster>, name: &str, engine: Arc<Engine>) -> Arc<Self> {
        let changes = Arc::new(Changes::default());
        engine.install_log(changes.clone());
        engine.mark_working_copy();
        let indexed = engine.config().index_fields.clone();
        Arc::new(Self {
            cluster,
            name: name.to_string(),
            engine,
            changes,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            indexed,
            lock_ids: parking_lot::Mutex::new(HashMap::new()),
            figures_read_ms: std::sync::atomic::AtomicU64::new(0),
            gate: tokio::sync::RwLock::new(()),
            orphans: parking_lot::Mutex::new(Vec::new()),
            kept: super::kept::Kept::default(),
        })
    }

    /// The working copy's upkeep (it never expires anything itself), and
    /// the tenant's figures read again once a heartbeat.
    pub(crate) async fn tick(&self) {
        self.engine.drop_stale_deadlines();
        if !self.orphans.lock().is_empty() {
            self.settle_orphans().await;
        }
        let now = self.engine.now_ms();
        let last = self
            .figures_read_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < self.cluster.heartbeat_ms() && last != 0 {
            return;
        }
        self.figures_read_ms
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.read_figures().await {
            tracing::warn!(tenant = %self.name, error = ?e, "could not read the tenant's figures");
        }
    }

    /// The tenant's figures from the database: sessions and bytes from
    /// `sessiond_usage`, locks counted from the rows held or awaited.
    pub(super) async fn read_figures(&self) -> Result<(), DbError> {
        let _alone = self.gate.write().await;
        let tenant = self.name.as_str();
        let (usage, locks) = self
            .cluster
            .pool
            .run(|c| async move {
                let u = c
                    .one(
                        Q::Sql {
                            pg: "SELECT coalesce(sum(sessions), 0)::bigint, \
                                 coalesce(sum(persistent), 0)::bigint, \
                                 coalesce(sum(bytes), 0)::bigint FROM sessiond_usage WHERE tenant = $1",
                            my: "SELECT coalesce(sum(sessions), 0), coalesce(sum(persistent), 0), \
                                 coalesce(sum(bytes), 0) FROM sessiond_usage WHERE tenant = $1",
                        },
                        &[P::Text(tenant)],
                    )
                    .await?;
                let l = c
                    .query(
                        Q::Sql {
                            pg: "SELECT id, holders, waiters FROM sessiond_lock WHERE tenant = $1 \
                                 AND (holders <> ''::bytea OR waiters <> ''::bytea)",
                            my: "SELECT id, holders, waiters FROM sessiond_lock \
                                 WHERE tenant = $1 AND live = 1",
                        },
                        &[P::Text(tenant)],
                    )
                    .await?;
                Ok((u, l))
            })
            .await?;
        let get =
            |i: usize| -> Result<u64, DbError> { Ok(u64::try_from(usage.i64(i)?).unwrap_or(0)) };
        let mut figures = sessiond_core::Figures {
            sessions: get(0)?,
            persistent: get(1)?,
            bytes: get(2)?,
            locks: 0,
            lock_bytes: 0,
        };
        for r in &locks {
            let id = r.bytes(0)?;
            let holders = r.bytes(1)?;
            let waiters = r.bytes(2)?;
            let row = super::locks::LockRow {
                holders: super::locks::decode_holders(&holders).unwrap_or_default(),
                waiters: super::locks::decode_waiters(&waiters).unwrap_or_default(),
                ..Default::default()
            };
            let (n, b) = row.usage(id.len());
            figures.locks += n as u64;
            figures.lock_bytes += b as u64;
        }
        self.engine.set_figures(figures);
        Ok(())
    }

    /// Runs one command for `client`.
    pub(crate) fn execute<'a>(&'a self, client: &'a ClientHandle, cmd: Command) -> Boxed<'a, Done> {
        Box::pin(self.run(client, cmd))
    }

    async fn run(&self, client: &ClientHandle, cmd: Command) -> Done {
        let reply = match route(&cmd) {
            Route::Node => match self.engine.execute(client, cmd) {
                Ok(Outcome::Reply(r)) => Ok(r),
                Ok(Outcome::Wait(pending)) => self.engine.give_up(&pending),
                Err(e) => Err(e),
            },
            Route::Sessions(ids) => {
                let info_of = match &cmd {
                    Command::Info { id } => Some(id.clone()),
                    _ => None,
                };
                let reply = self.on_sessions(client, cmd, ids).await;
                match (reply, info_of) {
                    (Ok(r), Some(id)) => self.with_lock_figures(r, &id).await,
                    (reply, _) => reply,
                }
            }
            Route::Uniq => self.uniq(client, cmd).await,
            Route::Info => self.info(client, cmd).await,
            Route::Across => self.across(client, cmd).await,
            Route::Regenerate => self.regenerate(client, cmd).await,
            Route::Transaction { ids, lock_ids } => match cmd {
                Command::Exec { watched, commands } => {
                    self.transaction(client, watched, commands, ids, lock_ids)
                        .await
                }
                other => Err(Error::InvalidArgument(format!(
                    "{} is not a transaction",
                    other.name()
                ))),
            },
            Route::Lock => return self.lock_command(client, cmd).await,
            Route::Refused(Ok(what)) => Err(Error::InvalidArgument(format!(
                "{what} is not available on storage = \"postgres\" yet"
            ))),
            Route::Refused(Err(e)) => Err(e),
        };
        Done::Reply(reply)
    }

    /// `UNIQ`: the working copy draws the id and creates the session by
    /// its own rules (length, quotas, strict ids); the row is then
    /// inserted, and should the id exist already (all but impossible with
    /// 128 random bits or more) it is drawn again.
    async fn uniq(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
        let _gate = self.gate.read().await;
        for _ in 0..MAX_ATTEMPTS {
            let reply = match self.engine.execute(client, cmd.clone())? {
                Outcome::Reply(r) => r,
                Outcome::Wait(pending) => self.engine.give_up(&pending)?,
            };
            let Reply::Bulk(id) = &reply else {
                return Ok(reply);
            };
            let id = SessionId::new(id.clone());
            self.changes.take(&id);
            let session = self.engine.stored(&id);
            self.engine.unload(&id);
            let write = Write {
                id,
                session: Some(SessionWrite {
                    rev: 0,
                    change: Change::Written,
                    session,
                }),
                lock: None,
            };
            match self.write(vec![write]).await {
                Ok(()) => return Ok(reply),
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// A live session and its lock's mode, as the database has them, for
    /// inspection: nothing is refreshed or written.
    pub(crate) fn peek<'a>(&'a self, id: &'a SessionId) -> Boxed<'a, Peeked> {
        Box::pin(self.peek_now(id))
    }

    async fn peek_now(&self, id: &SessionId) -> Peeked {
        // One statement: the lock as of the data read.
        let (loaded, mut lock) = self.load_with_lock(id).await.map_err(DbError::into_error)?;
        let now = self.engine.now_ms();
        lock.expire(now, &|p| self.cluster.is_alive(p, now));
        let mode = lock.mode();
        Ok(loaded
            .map(|l| l.session)
            .filter(|s| s.deadline_ms() > now || mode.is_some())
            .map(|s| (s, mode)))
    }

    /// `SESSION.INFO`'s lock figures (the working copy holds no lock):
    /// the mode, holders and waiters of the session's lock row.
    async fn with_lock_figures(&self, reply: Reply, id: &SessionId) -> Result<Reply, Error> {
        let Reply::Map(mut fields) = reply else {
            return Ok(reply);
        };
        let mut row = self.load_lock(id).await.map_err(DbError::into_error)?;
        let now = self.engine.now_ms();
        row.expire(now, &|p| self.cluster.is_alive(p, now));
        let mode = match row.mode() {
            None => "none",
            Some(sessiond_core::LockMode::Write) => "write",
            Some(sessiond_core::LockMode::Read) => "read",
        };
        for (k, v) in &mut fields {
            let Reply::Bulk(name) = k else { continue };
            match name.as_ref() {
                b"lock" => *v = Reply::text(mode),
                b"lock_holders" => *v = Reply::Int(row.holders.len() as i64),
                b"lock_waiters" => *v = Reply::Int(row.waiters.len() as i64),
                _ => {}
            }
        }
        Ok(Reply::Map(fields))
    }

    /// `INFO`: the working copy's counters (caps, refusals), with the
    /// tenant's sessions counted in the database, and the node's view of
    /// the cluster.
    async fn info(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
        let Outcome::Reply(Reply::Info(mut sections)) = self.engine.execute(client, cmd)? else {
            return Err(Error::InvalidArgument("INFO gave no sections".into()));
        };
        let tenant = self.name.as_str();
        let now = row::to_sql(self.engine.now_ms());
        let sessions = self
            .cluster
            .pool
            .one(
                Q::both(
                    "SELECT count(*) FROM sessiond_session WHERE tenant = $1 AND expires_ms >= $2",
                ),
                &[P::Text(tenant), P::I64(now)],
            )
            .await
            .and_then(|r| r.i64(0))
            .map_err(DbError::into_error)?;
        let nodes = self.cluster.nodes();
        let alive: Vec<&str> = nodes
            .iter()
            .filter(|(_, up)| *up)
            .map(|(n, _)| n.as_str())
            .collect();
        let gone: Vec<&str> = nodes
            .iter()
            .filter(|(_, up)| !*up)
            .map(|(n, _)| n.as_str())
            .collect();
        let stats = self.cluster.pool_stats();
        let load = |a: &std::sync::atomic::AtomicU64| {
            a.load(std::sync::atomic::Ordering::Relaxed).to_string()
        };
        for section in &mut sections {
            for (k, v) in &mut section.fields {
                match k.as_str() {
                    "sessions" => *v = sessions.to_string(),
                    "expired_sessions" => *v = load(&stats.reaped),
                    _ => {}
                }
            }
        }
        let (open, size) = self.cluster.connections();
        sections.push(sessiond_core::InfoSection {
            name: "Database",
            fields: vec![
                ("storage".into(), "postgres".into()),
                ("node".into(), self.cluster.node().to_string()),
                ("nodes_alive".into(), alive.len().to_string()),
                ("nodes".into(), alive.join(",")),
                ("nodes_gone".into(), gone.join(",")),
                (
                    "db_in_touch".into(),
                    u8::from(self.cluster.in_touch()).to_string(),
                ),
                (
                    "lock_waits_here".into(),
                    self.cluster.waits.len().to_string(),
                ),
                ("db_connections".into(), open.to_string()),
                ("db_pool_size".into(), size.to_string()),
                ("db_connects".into(), load(&stats.connects)),
                ("db_connect_failures".into(), load(&stats.connect_failures)),
                ("db_errors".into(), load(&stats.errors)),
                ("db_timeouts".into(), load(&stats.timeouts)),
                ("db_waits".into(), load(&stats.waits)),
                (
                    "db_requests_in_flight".into(),
                    stats.in_flight.load(Ordering::Relaxed).max(0).to_string(),
                ),
                ("db_requests".into(), stats.latency.count().to_string()),
                (
                    "db_request_avg_us".into(),
                    stats.latency.mean_us().to_string(),
                ),
                ("lock_handoffs_here".into(), load(&stats.handoffs_here)),
                ("lock_handoffs_away".into(), load(&stats.handoffs_away)),
                ("lock_wakeups_heard".into(), load(&stats.wakeups_heard)),
            ],
        });
        Ok(Reply::Info(sections))
    }

    pub(super) async fn on_sessions(
        &self,
        client: &ClientHandle,
        cmd: Command,
        mut ids: Vec<SessionId>,
    ) -> Result<Reply, Error> {
        ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        ids.dedup();
        let _turns = self.turns(&ids).await;
        let _gate = self.gate.read().await;
        for _ in 0..MAX_ATTEMPTS {
            let mut rows = self.load(&ids).await.map_err(DbError::into_error)?;
            let mut revs = Vec::with_capacity(ids.len());
            let now = self.engine.now_ms();
            let mut expired = Vec::new();
            for id in &ids {
                let loaded = rows.remove(id);
                revs.push(loaded.as_ref().map_or(0, |l| l.rev));
                if loaded
                    .as_ref()
                    .is_some_and(|l| l.session.deadline_ms() <= now && l.held_until_ms <= now)
                {
                    expired.push(id.clone());
                }
                // Anything noted for the id before (nothing should be)
                // is not this command's.
                self.put_in_copy(id, loaded, now);
            }
            let outcome = if cmd.is_heavy() {
                // A function's time is its author's: off the workers.
                let (engine, client, cmd) = (self.engine.clone(), client.clone(), cmd.clone());
                match tokio::task::spawn_blocking(move || engine.execute(&client, cmd)).await {
                    Ok(outcome) => outcome,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            } else {
                self.engine.execute(client, cmd.clone())
            };
            let mut writes = self.collect_writes(&ids, &revs);
            let reply = match outcome {
                Ok(Outcome::Reply(r)) => Ok(r),
                // Only lock commands queue, and they do not come here.
                Ok(Outcome::Wait(pending)) => self.engine.give_up(&pending),
                Err(e) => Err(e),
            };
            // A session removed takes its lock with it: holders lose their
            // keys, waiters are told.
            let removed: Vec<SessionId> = writes
                .iter()
                .filter(|w| w.session.as_ref().is_some_and(|s| s.session.is_none()))
                .map(|w| w.id.clone())
                .collect();
            let result = match self.removed_locks(&mut writes).await {
                Ok(()) => self.write(writes).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    // Sessions found expired and so removed count as the
                    // reaper's would.
                    let gone = writes_removed(&removed, &expired);
                    if gone > 0 {
                        self.cluster
                            .pool_stats()
                            .reaped
                            .fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
                    }
                    return reply;
                }
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// Puts `id` in the working copy as read, with nothing noted for it: a
    /// session whose lock is held stays alive past its deadline, as on the
    /// embedded store.
    /// Whether its lock is held.
    pub(super) fn put_in_copy(&self, id: &SessionId, loaded: Option<Loaded>, now: u64) -> bool {
        let held = loaded.as_ref().is_some_and(|l| l.held_until_ms > now);
        self.engine.load_held(id, loaded.map(|l| l.session), held);
        self.changes.take(id);
        held
    }

    /// What the command changed in the working copy, for each of `ids`
    /// (read at `revs`), taken out of it.
    pub(super) fn collect_writes(&self, ids: &[SessionId], revs: &[i64]) -> Vec<Write> {
        let mut writes = Vec::new();
        for (id, rev) in ids.iter().zip(revs) {
            if let Some(change) = self.changes.take(id) {
                writes.push(Write {
                    id: id.clone(),
                    session: Some(SessionWrite {
                        rev: *rev,
                        change,
                        session: self.engine.stored(id),
                    }),
                    lock: None,
                });
            }
            self.engine.unload(id);
        }
        writes
    }

    /// This node's turn on `ids` (sorted) for a command that may write
    /// them: what was kept of their rows is forgotten.
    pub(super) async fn turns(&self, ids: &[SessionId]) -> Vec<MutexGuard<'_, ()>> {
        let turns = self.lock_turns(ids).await;
        for id in ids {
            self.kept.forget(id);
        }
        turns
    }

    /// This node's turn on `ids` (sorted): their stripes, in order.
    pub(super) async fn lock_turns(&self, ids: &[SessionId]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids.iter().map(|id| stripe_of(id.as_bytes())).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.stripes[s].lock().await);
        }
        guards
    }

    /// The rows of `ids` that exist.
    pub(super) async fn load(
        &self,
        ids: &[SessionId],
    ) -> Result<HashMap<SessionId, Loaded>, DbError> {
        let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
        let tenant = self.name.as_str();
        let keys = &keys;
        let rows = self
            .cluster
            .pool
            .query(Q::St(St::Load), &[P::Text(tenant), P::Refs(keys)])
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, mut loaded) = row::decode(r)?;
            let held = r.opt_i64(super::statements::SESSION_COLUMN_COUNT)?;
            loaded.held_until_ms = held.map_or(0, row::from_sql);
            out.insert(id, loaded);
        }
        Ok(out)
    }

    /// Writes back what a command changed: one statement for one id, one
    /// transaction for several; each row only if still at the revision
    /// read ([`DbError::Conflict`] otherwise, with nothing written). Then
    /// wakes this node's own waiters the writes granted.
    pub(super) async fn write(&self, writes: Vec<Write>) -> Result<(), DbError> {
        if writes.is_empty() {
            return Ok(());
        }
        let tenant = self.name.as_str();
        let this = self;
        let writes_ref = &writes;
        if writes.len() == 1 {
            self.cluster
                .pool
                .run(|c| async move { this.write_one(&c, tenant, &writes_ref[0]).await })
                .await?;
        } else {
            self.cluster
                .pool
                .transaction(|c| async move {
                    for w in writes_ref {
                        this.write_one(&c, tenant, w).await?;
                    }
                    Ok(())
                })
                .await?;
        }
        self.written(&writes);
        Ok(())
    }

    /// What follows writes that went through: the lock figures moved,
    /// this node's waiters they granted woken.
    pub(super) fn written(&self, writes: &[Write]) {
        for w in writes {
            if let Some(lock) = &w.lock {
                if lock.usage != (0, 0) {
                    self.engine.note_lock_usage(lock.usage.0, lock.usage.1);
                }
                self.cluster.send_wakeups(&lock.remote);
                let stats = self.cluster.pool_stats();
                for &(seq, woken) in &lock.local {
                    if matches!(woken, Woken::Granted(_)) {
                        stats.handoffs_here.fetch_add(1, Ordering::Relaxed);
                    }
                    self.cluster.waits.deliver(seq, woken);
                }
                stats
                    .handoffs_away
                    .fetch_add(lock.handed_away, Ordering::Relaxed);
            }
        }
    }

    async fn write_one(&self, c: &Conn, tenant: &str, w: &Write) -> Result<(), DbError> {
        self.write_rows(c, tenant, w).await?;
        if let Some(to) = w.lock.as_ref().and_then(|l| l.moved_to.as_ref()) {
            let (id, to) = (w.id.as_bytes(), to.as_bytes());
            let sql = "UPDATE sessiond_lock SET moved_to = CASE WHEN id = $2 THEN $3 END \
                       WHERE tenant = $1 AND id IN ($2, $3)";
            c.execute(Q::both(sql), &[P::Text(tenant), P::Bytes(id), P::Bytes(to)])
                .await?;
        }
        Ok(())
    }

    /// The session row and lock row of one write.
    async fn write_rows(&self, c: &Conn, tenant: &str, w: &Write) -> Result<(), DbError> {
        let dialect = c.dialect();
        let id = w.id.as_bytes();
        let lock = w.lock.as_ref().map(|l| l.params());
        // A removal of a session that had no row writes its lock row alone.
        let session = w
            .session
            .as_ref()
            .filter(|sw| sw.session.is_some() || sw.rev != 0);
        match (session, lock) {
            (None, None) => Ok(()),
            (None, Some(l)) => {
                let mut params = vec![P::Text(tenant), P::Bytes(id)];
                params.extend(l.args());
                c.one(Q::St(St::LockPut), &params).await?;
                Ok(())
            }
            (Some(sw), lock) => match (&sw.session, sw.change, lock) {
                (None, _, None) => {
                    c.one(
                        Q::St(St::Delete),
                        &[P::Text(tenant), P::Bytes(id), P::I64(sw.rev)],
                    )
                    .await?;
                    Ok(())
                }
                (None, _, Some(l)) => {
                    let mut params = vec![P::Text(tenant), P::Bytes(id), P::I64(sw.rev)];
                    params.extend(l.args());
                    c.one(Q::St(St::DeleteAndLock), &params).await?;
                    Ok(())
                }
                (Some(s), Change::Touched, None) if sw.rev != 0 => {
                    let accessed = row::to_sql(s.accessed_ms);
                    let expires = row::to_sql(s.deadline_ms());
                    c.execute(
                        Q::St(St::Touch),
                        &[
                            P::Text(tenant),
                            P::Bytes(id),
                            P::I64(accessed),
                            P::I64(expires),
                        ],
                    )
                    .await?;
                    Ok(())
                }
                (Some(s), _, lock) => {
                    let columns = self.session_params(id, s, dialect);
                    let mut params = vec![P::Text(tenant), P::Bytes(id), P::I64(sw.rev)];
                    params.extend(columns.args());
                    match &lock {
                        None => {
                            c.one(Q::St(St::Put), &params).await?;
                        }
                        Some(l) => {
                            params.extend(l.args());
                            c.one(Q::St(St::PutAndLock), &params).await?;
                        }
                    }
                    Ok(())
                }
            },
        }
    }

    /// The columns of session `s` (of id `id`) as `sessiond_put` takes
    /// them after the tenant, the id and the revision.
    pub(super) fn session_params<'a>(
        &self,
        id: &[u8],
        s: &'a Session,
        dialect: Dialect,
    ) -> SessionParams<'a> {
        let index = row::index_rows(s, &self.indexed);
        let blob = match dialect {
            Dialect::MySql => Some(index.blob()),
            Dialect::Postgres => None,
        };
        SessionParams {
            place: row::place(&self.cluster.place_key, id),
            version: row::to_sql(s.version),
            created: row::to_sql(s.created_ms),
            accessed: row::to_sql(s.accessed_ms),
            timeout: row::to_sql(s.timeout_ms),
            expires: row::to_sql(s.deadline_ms()),
            flags: i64::from(s.flags),
            key_form: i16::from(s.key_form),
            class: s.class().map(|c| c.as_ref()),
            data: &s.data,
            vars: row::encode_vars(s.vars()),
            index,
            blob,
        }
    }
}

/// A session row's columns as statement parameters.
pub(super) struct SessionParams<'a> {
    place: i64,
    version: i64,
    created: i64,
    accessed: i64,
    timeout: i64,
    expires: i64,
    flags: i64,
    key_form: i16,
    class: Option<&'a [u8]>,
    data: &'a [u8],
    vars: Option<Vec<u8>>,
    index: row::IndexRows,
    /// The index rows as MySQL takes them (None on PostgreSQL).
    blob: Option<Vec<u8>>,
}

impl SessionParams<'_> {
    /// `sessiond_put`'s arguments after the tenant, the id and the
    /// revision: the columns, then the index rows (PostgreSQL: three
    /// arrays; MySQL: one string, then two nulls it does not read).
    pub(super) fn args(&self) -> [P<'_>; 14] {
        let (kinds, names, keys) = match &self.blob {
            Some(b) => (P::Bytes(b), P::OptList(None), P::OptList(None)),
            None => (
                P::Kinds(Some(&self.index.kinds)),
                P::List(&self.index.names),
                P::List(&self.index.keys),
            ),
        };
        [
            P::I64(self.place),
            P::I64(self.version),
            P::I64(self.created),
            P::I64(self.accessed),
            P::I64(self.timeout),
            P::I64(self.expires),
            P::I64(self.flags),
            P::I16(self.key_form),
            P::OptBytes(self.class),
            P::Bytes(self.data),
            P::OptBytes(self.vars.as_deref()),
            kinds,
            names,
            keys,
        ]
    }
}

/// How many of the ids `removed` were among those found `expired`.
fn writes_removed(removed: &[SessionId], expired: &[SessionId]) -> u64 {
    removed.iter().filter(|id| expired.contains(id)).count() as u64
}

fn stripe_of(id: &[u8]) -> usize {
    // FNV-1a: only spreads a node's own commands over its stripes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % STRIPES as u64) as usize
}

/// Whether `cmd` works on a lock row.
pub(super) fn is_lock_command(cmd: &Command) -> bool {
    matches!(route(cmd), Route::Lock)
}

/// Where each command runs. Every variant is listed: a new command does
/// not compile until it has its route.
fn route(cmd: &Command) -> Route {
    let one = |id: &SessionId| Route::Sessions(vec![id.clone()]);
    match cmd {
        Command::RandStr { .. } | Command::Ping { .. } | Command::Echo { .. } => Route::Node,
        Command::Create { id, .. }
        | Command::Destroy { id }
        | Command::DestroyIf { id, .. }
        | Command::Take { id }
        | Command::Expire { id, .. }
        | Command::IncrBy { id, .. }
        | Command::IncrByFloat { id, .. }
        | Command::Exists { id }
        | Command::Info { id }
        | Command::Export { id }
        | Command::Get { id, .. }
        | Command::Set { id, .. }
        | Command::Del { id, .. }
        | Command::GetAll { id }
        | Command::SetAll { id, .. }
        | Command::GetData { id, .. }
        | Command::SetData { id, .. }
        | Command::Store { id, .. }
        | Command::Append { id, .. }
        | Command::Item { id, .. }
        | Command::IncrData { id, .. }
        | Command::Inc { id, .. }
        | Command::Timeout { id, .. }
        | Command::Ttl { id }
        | Command::PTtl { id }
        | Command::Touch { id } => one(id),
        Command::Uniq { .. } => Route::Uniq,
        // A function runs on the working copy like any command on these
        // sessions: what it changed is written back, each row only if no
        // other node wrote it meanwhile, else it runs again on the new rows.
        Command::Call { ids, .. } => Route::Sessions(ids.clone()),
        Command::Exec { watched, commands } => {
            let mut ids: Vec<SessionId> = watched.iter().map(|(id, _)| id.clone()).collect();
            let mut lock_ids = Vec::new();
            for c in commands {
                if let Touches::Unsure = c.touches() {
                    // The engine's own refusal, word for word.
                    return Route::Refused(Err(not_in_transaction(c.name())));
                }
                match route(c) {
                    Route::Node => {}
                    Route::Sessions(more) => ids.extend(more),
                    Route::Lock => {
                        if let Touches::One(id) = c.touches() {
                            ids.push(id.clone());
                            lock_ids.push(id.clone());
                        }
                    }
                    Route::Info | Route::Across | Route::Regenerate => {
                        return Route::Refused(Ok(
                            "INFO, DBSIZE, FLUSHALL or REGENERATE in a transaction",
                        ))
                    }
                    Route::Uniq | Route::Transaction { .. } => {
                        return Route::Refused(Err(not_in_transaction(c.name())))
                    }
                    Route::Refused(why) => return Route::Refused(why),
                }
            }
            if lock_ids.is_empty() {
                return Route::Sessions(ids);
            }
            for v in [&mut ids, &mut lock_ids] {
                v.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                v.dedup();
            }
            Route::Transaction { ids, lock_ids }
        }
        Command::Count { .. }
        | Command::List { .. }
        | Command::Scan { .. }
        | Command::Find { .. }
        | Command::FindPage { .. }
        | Command::ListVar { .. }
        | Command::ListVarPage { .. }
        | Command::KeyScan { .. }
        | Command::Keys
        | Command::FlushAll => Route::Across,
        Command::ServerInfo => Route::Info,
        Command::Regenerate { .. } => Route::Regenerate,
        Command::Lock { .. }
        | Command::Unlock { .. }
        | Command::LockOwned { .. }
        | Command::UnlockOwned { .. }
        | Command::LockOwner { .. }
        | Command::Commit { .. }
        | Command::Open { .. }
        | Command::Close { .. } => Route::Lock,
    }
}
