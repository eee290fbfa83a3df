//! Commands on a cluster node: the sessions a command touches are read
//! from the database, the command runs on the node's working copy by the
//! engine's own rules, and what changed is written back, conditional on
//! each row's revision (see the module above).

use std::collections::HashMap;
use std::sync::Arc;

use sessiond_core::fields::IndexFields;
use sessiond_core::{ClientHandle, Command, Engine, Error, Outcome, Reply, Session, SessionId};
use tokio::sync::{Mutex, MutexGuard};

use super::changes::{Change, Changes};
use super::pool::DbError;
use super::row::{self, Loaded};
use super::Cluster;

/// How often a command is run again because its sessions changed on
/// another node meanwhile, before the client is told to try again.
const MAX_ATTEMPTS: usize = 16;

/// Per-node turns on sessions: commands on ids of the same stripe take
/// turns, so a node never races itself for a row.
const STRIPES: usize = 1024;

/// One tenant on a cluster node.
pub(crate) struct PgTenant {
    cluster: Arc<Cluster>,
    name: String,
    /// The working copy the commands run on.
    engine: Arc<Engine>,
    changes: Arc<Changes>,
    stripes: Box<[Mutex<()>]>,
    indexed: IndexFields,
}

/// Where a command runs.
enum Route {
    /// On the node alone: nothing stored is involved.
    Node,
    /// On these sessions' rows.
    Sessions(Vec<SessionId>),
    /// A new session under a random id.
    Uniq,
    /// `INFO`'s figures.
    Info,
    /// Not available on this backend yet: the reason.
    Refused(&'static str),
}

/// A row to write back: the session as the command left it (None:
/// removed), and the revision it was read at (0: there was no row).
struct Write {
    id: SessionId,
    rev: i64,
    change: Change,
    session: Option<Session>,
}

impl PgTenant {
    pub(crate) fn new(cluster: Arc<Cluster>, name: &str, engine: Arc<Engine>) -> Arc<Self> {
        let changes = Arc::new(Changes::default());
        engine.install_log(changes.clone());
        let indexed = engine.config().index_fields.clone();
        Arc::new(Self {
            cluster,
            name: name.to_string(),
            engine,
            changes,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            indexed,
        })
    }

    /// The working copy's upkeep (it never expires anything itself).
    pub(crate) fn tick(&self) {
        self.engine.drop_stale_deadlines();
    }

    /// Runs one command for `client`.
    pub(crate) async fn execute(
        &self,
        client: &ClientHandle,
        cmd: Command,
    ) -> Result<Reply, Error> {
        match route(&cmd) {
            Route::Node => match self.engine.execute(client, cmd)? {
                Outcome::Reply(r) => Ok(r),
                Outcome::Wait(pending) => self.engine.give_up(&pending),
            },
            Route::Sessions(ids) => self.on_sessions(client, cmd, ids).await,
            Route::Uniq => self.uniq(client, cmd).await,
            Route::Info => self.info(client, cmd).await,
            Route::Refused(what) => Err(Error::InvalidArgument(format!(
                "{what} is not available on storage = \"postgres\" yet"
            ))),
        }
    }

    /// `UNIQ`: the working copy draws the id and creates the session by
    /// its own rules (length, quotas, strict ids); the row is then
    /// inserted, and should the id exist already (all but impossible with
    /// 128 random bits or more) it is drawn again.
    async fn uniq(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
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
                rev: 0,
                change: Change::Written,
                session,
            };
            match self.write(vec![write]).await {
                Ok(()) => return Ok(reply),
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
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
        let (sessions, nodes) = self
            .cluster
            .pool
            .run(|c| async move {
                let r = c
                    .client
                    .query_one(
                        "SELECT (SELECT count(*) FROM sessiond_session WHERE tenant = $1 AND expires_ms >= $2), \
                         (SELECT count(*) FROM sessiond_node WHERE alive_until_ms >= $2)",
                        &[&tenant, &now],
                    )
                    .await?;
                Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?))
            })
            .await
            .map_err(DbError::into_error)?;
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
                ("nodes_alive".into(), nodes.to_string()),
                ("db_connections".into(), open.to_string()),
                ("db_pool_size".into(), size.to_string()),
                ("db_connects".into(), load(&stats.connects)),
                ("db_connect_failures".into(), load(&stats.connect_failures)),
                ("db_errors".into(), load(&stats.errors)),
                ("db_timeouts".into(), load(&stats.timeouts)),
            ],
        });
        Ok(Reply::Info(sections))
    }

    async fn on_sessions(
        &self,
        client: &ClientHandle,
        cmd: Command,
        mut ids: Vec<SessionId>,
    ) -> Result<Reply, Error> {
        ids.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        ids.dedup();
        let _turns = self.turns(&ids).await;
        for _ in 0..MAX_ATTEMPTS {
            let mut rows = self.load(&ids).await.map_err(DbError::into_error)?;
            let mut revs = Vec::with_capacity(ids.len());
            for id in &ids {
                let loaded = rows.remove(id);
                revs.push(loaded.as_ref().map_or(0, |l| l.rev));
                self.engine.load(id, loaded.map(|l| l.session));
                // Anything noted for the id before (nothing should be)
                // is not this command's.
                self.changes.take(id);
            }
            let outcome = self.engine.execute(client, cmd.clone());
            let mut writes = Vec::new();
            for (id, rev) in ids.iter().zip(&revs) {
                if let Some(change) = self.changes.take(id) {
                    writes.push(Write {
                        id: id.clone(),
                        rev: *rev,
                        change,
                        session: self.engine.stored(id),
                    });
                }
                self.engine.unload(id);
            }
            let reply = match outcome {
                Ok(Outcome::Reply(r)) => Ok(r),
                // Only lock commands queue, and they do not come here.
                Ok(Outcome::Wait(pending)) => self.engine.give_up(&pending),
                Err(e) => Err(e),
            };
            match self.write(writes).await {
                Ok(()) => return reply,
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(DbError::Conflict.into_error())
    }

    /// This node's turn on `ids` (sorted): their stripes, in order.
    async fn turns(&self, ids: &[SessionId]) -> Vec<MutexGuard<'_, ()>> {
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
    async fn load(&self, ids: &[SessionId]) -> Result<HashMap<SessionId, Loaded>, DbError> {
        let keys: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
        let tenant = self.name.as_str();
        let rows = self
            .cluster
            .pool
            .run(|c| async move {
                c.client
                    .query(&c.st.load, &[&tenant, &keys])
                    .await
                    .map_err(DbError::from)
            })
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, loaded) = row::decode(r).map_err(DbError::Failed)?;
            out.insert(id, loaded);
        }
        Ok(out)
    }

    /// Writes back what a command changed: one statement for one session,
    /// one transaction for several; each row only if still at the revision
    /// read ([`DbError::Conflict`] otherwise, with nothing written).
    async fn write(&self, writes: Vec<Write>) -> Result<(), DbError> {
        if writes.is_empty() {
            return Ok(());
        }
        let tenant = self.name.as_str();
        let this = self;
        self.cluster
            .pool
            .run(|c| async move {
                if writes.len() == 1 {
                    return this.write_one(&c.client, &c.st, tenant, &writes[0]).await;
                }
                c.client
                    .batch_execute("BEGIN")
                    .await
                    .map_err(DbError::from)?;
                let mut result = Ok(());
                for w in &writes {
                    result = this.write_one(&c.client, &c.st, tenant, w).await;
                    if result.is_err() {
                        break;
                    }
                }
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                c.client.batch_execute(end).await.map_err(DbError::from)?;
                result
            })
            .await
    }

    async fn write_one(
        &self,
        client: &tokio_postgres::Client,
        st: &super::statements::Statements,
        tenant: &str,
        w: &Write,
    ) -> Result<(), DbError> {
        let id = w.id.as_bytes();
        match (&w.session, w.change) {
            (None, _) => {
                if w.rev == 0 {
                    return Ok(());
                }
                let n = client.execute(&st.delete, &[&tenant, &id, &w.rev]).await?;
                if n == 0 {
                    return Err(DbError::Conflict);
                }
                Ok(())
            }
            (Some(s), Change::Touched) if w.rev != 0 => {
                let accessed = row::to_sql(s.accessed_ms);
                let expires = row::to_sql(s.deadline_ms());
                client
                    .execute(&st.touch, &[&tenant, &id, &accessed, &expires])
                    .await?;
                Ok(())
            }
            (Some(s), _) => {
                let place = row::place(&self.cluster.place_key, id);
                let index = row::index_rows(s, &self.indexed);
                let vars = row::encode_vars(s.vars());
                let class: Option<&[u8]> = s.class().map(|c| c.as_ref());
                let data: &[u8] = &s.data;
                client
                    .query_one(
                        &st.put,
                        &[
                            &tenant,
                            &id,
                            &w.rev,
                            &place,
                            &row::to_sql(s.version),
                            &row::to_sql(s.created_ms),
                            &row::to_sql(s.accessed_ms),
                            &row::to_sql(s.timeout_ms),
                            &row::to_sql(s.deadline_ms()),
                            &i64::from(s.flags),
                            &i16::from(s.key_form),
                            &class,
                            &data,
                            &vars,
                            &index.kinds,
                            &index.names,
                            &index.keys,
                        ],
                    )
                    .await?;
                Ok(())
            }
        }
    }
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
        Command::Exec { watched, commands } => {
            let mut ids: Vec<SessionId> = watched.iter().map(|(id, _)| id.clone()).collect();
            for c in commands {
                match route(c) {
                    Route::Node => {}
                    Route::Sessions(more) => ids.extend(more),
                    Route::Uniq => return Route::Refused("UNIQ in a transaction"),
                    Route::Info => return Route::Refused("INFO in a transaction"),
                    Route::Refused(what) => return Route::Refused(what),
                }
            }
            Route::Sessions(ids)
        }
        Command::Count { .. } => Route::Refused("COUNT"),
        Command::List { .. } => Route::Refused("LIST"),
        Command::Scan { .. } => Route::Refused("SCAN"),
        Command::Find { .. } | Command::FindPage { .. } => Route::Refused("FIND"),
        Command::ListVar { .. } | Command::ListVarPage { .. } => Route::Refused("LISTVAR"),
        Command::KeyScan { .. } | Command::Keys => Route::Refused("listing keys"),
        Command::ServerInfo => Route::Info,
        Command::FlushAll => Route::Refused("flushing every session"),
        Command::Regenerate { .. } => Route::Refused("REGENERATE"),
        Command::Lock { .. }
        | Command::Unlock { .. }
        | Command::LockOwned { .. }
        | Command::UnlockOwned { .. }
        | Command::LockOwner { .. }
        | Command::Commit { .. }
        | Command::Open { .. }
        | Command::Close { .. } => Route::Refused("locking"),
    }
}
