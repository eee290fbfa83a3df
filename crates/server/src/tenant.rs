//! Tenants: namespaces of sessions that cannot see one another.
//!
//! Each tenant is a whole engine (its own shards, indexes, locks, expiry)
//! with its own log and snapshots, so no command of any door can reach
//! across: `COUNT`, `LIST`, `FIND`, `SCAN`, `KEYS` and the rest only ever
//! see the engine of the connection's tenant. The default tenant keeps its
//! files in `data_dir` itself (where a server without users keeps them);
//! tenant `t` keeps them in `data_dir/tenants/t`.

use std::collections::HashMap;
use std::sync::Arc;

use sessiond_core::Engine;

use crate::backend::cluster::{Cluster, ClusterTenant};
use crate::config::Config;
use crate::error::ServerError;
use crate::persist::{Persistence, Storage};

/// One namespace of sessions.
pub struct Tenant {
    name: String,
    engine: Arc<Engine>,
    persist: Option<Arc<Persistence>>,
    /// Under `postgres` storage: the database holds the sessions, and
    /// `engine` is only the node's working copy.
    cluster: Option<Arc<ClusterTenant>>,
    /// The memcached door's `stats` counters, per tenant like everything
    /// else a tenant can see.
    pub(crate) memcache_stats: crate::metrics::McStats,
    /// Commands, errors, latency and lock waits, for `/metrics` and `INFO`.
    pub(crate) metrics: crate::metrics::TenantMetrics,
    /// Where its cross-session commands run.
    pub(crate) offload: crate::offload::Offload,
    /// Its Redis scripts by SHA1 (`SCRIPT LOAD`, `EVAL`; `EVALSHA` reads
    /// them): one tenant's scripts are not another's.
    pub(crate) script_cache: crate::scripts::ScriptCache,
}

impl Tenant {
    /// Opens tenant `name` around `engine`, recovering its files first
    /// under `log` storage.
    pub(crate) fn open(
        config: &Config,
        name: &str,
        engine: Arc<Engine>,
        cluster: Option<&Arc<Cluster>>,
    ) -> Result<Arc<Self>, ServerError> {
        let persist = match config.storage {
            Storage::Memory | Storage::Postgres | Storage::MySql => None,
            Storage::Log => {
                let dir = config.tenant_dir(name);
                let (p, r) = Persistence::open(&dir, config.fsync, config.compaction(), &engine)?;
                tracing::info!(
                    tenant = name,
                    dir = %dir.display(),
                    fsync = ?config.fsync,
                    sessions = r.live_sessions,
                    snapshot_sessions = r.snapshot_sessions,
                    log_records = r.log_records,
                    truncated_bytes = r.truncated_bytes,
                    millis = r.millis as u64,
                    "recovered {} sessions in {} ms",
                    r.live_sessions,
                    r.millis
                );
                Some(p)
            }
        };
        let cluster = match (config.storage, cluster) {
            (Storage::Postgres | Storage::MySql, Some(c)) => {
                Some(ClusterTenant::new(c.clone(), name, engine.clone()))
            }
            (Storage::Postgres | Storage::MySql, None) => {
                return Err(ServerError::Database(
                    "storage = \"postgres\" and \"mysql\" need the database opened first (Server::start)".into(),
                ))
            }
            _ => None,
        };
        Ok(Arc::new(Self {
            name: name.to_string(),
            engine,
            persist,
            cluster,
            memcache_stats: Default::default(),
            metrics: Default::default(),
            offload: Default::default(),
            script_cache: Default::default(),
        }))
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The tenant's open files, under `log` storage.
    pub fn persistence(&self) -> Option<&Arc<Persistence>> {
        self.persist.as_ref()
    }

    /// The tenant on the cluster's database, under `postgres` storage.
    pub(crate) fn cluster(&self) -> Option<&Arc<ClusterTenant>> {
        self.cluster.as_ref()
    }

    /// A live session and its lock's mode, for inspection (the HTTP API):
    /// nothing is refreshed; on a cluster, read from the database.
    pub(crate) async fn peek(
        &self,
        id: &sessiond_core::SessionId,
    ) -> Result<
        Option<(sessiond_core::Session, Option<sessiond_core::LockMode>)>,
        sessiond_core::Error,
    > {
        match &self.cluster {
            Some(c) => c.peek(id).await,
            None => Ok(self.engine.peek(id)),
        }
    }
}

/// Every tenant of a server, by name; the default one first.
pub(crate) struct Tenants {
    all: Vec<Arc<Tenant>>,
    by_name: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Opens every tenant `config` names; the default one runs on
    /// `default_engine`, the others on new engines on the same clock.
    pub(crate) fn open(
        config: &Config,
        default_engine: Arc<Engine>,
        cluster: Option<&Arc<Cluster>>,
    ) -> Result<Self, ServerError> {
        let clock = default_engine.clock();
        let mut all = Vec::new();
        for name in config.tenant_names() {
            let engine = if all.is_empty() {
                default_engine.clone()
            } else {
                Arc::new(Engine::new(config.engine(), clock.clone()))
            };
            all.push(Tenant::open(config, &name, engine, cluster)?);
        }
        let by_name = all.iter().map(|t| (t.name.clone(), t.clone())).collect();
        Ok(Self { all, by_name })
    }

    /// The tenant of the data directory itself.
    pub(crate) fn default_tenant(&self) -> &Arc<Tenant> {
        &self.all[0]
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.all.iter()
    }
}
