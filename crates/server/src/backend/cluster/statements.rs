//! The statements a node sends to PostgreSQL, prepared once per
//! connection.

use tokio_postgres::{Client, Statement};

/// The statements of the request path, prepared once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum St {
    Load,
    Put,
    Delete,
    Touch,
    LoadLocks,
    LoadWithLock,
    LockPut,
    PutAndLock,
    DeleteAndLock,
    Step,
    ReserveKeys,
}

/// Every statement of the request path.
pub(crate) struct Statements {
    /// `(tenant, ids)` → the rows of those sessions that exist, and until
    /// when their locks are held (null: no lock row).
    pub(crate) load: Statement,
    /// The whole session, conditional on its revision (`sessiond_put`).
    pub(crate) put: Statement,
    /// `(tenant, id, rev)`: removes the session if still at `rev`.
    pub(crate) delete: Statement,
    /// `(tenant, id, accessed, expires)`: a read moved the expiry.
    pub(crate) touch: Statement,
    /// `(tenant, ids)` → the lock rows of those ids.
    pub(crate) load_locks: Statement,
    /// `(tenant, id)` → one row: the lock row's [`LOCK_COLUMNS`] (null
    /// without one) and the session's [`SESSION_COLUMNS`] (null without
    /// one), read in one statement so that both are as of one moment.
    pub(crate) load_with_lock: Statement,
    /// A lock row, conditional on its revision, with its wake-ups.
    pub(crate) lock_put: Statement,
    /// A session and its lock row in one statement (one transaction).
    pub(crate) put_and_lock: Statement,
    /// A removal and its lock row in one statement.
    pub(crate) delete_and_lock: Statement,
    /// One lock operation on rows not read first (`sessiond_step`): one
    /// row, [`STEP_COLUMN_COUNT`] columns, then the lock row's and the
    /// session's columns as [`Statements::load_with_lock`] has them.
    pub(crate) step: Statement,
    /// `(block)` → the first key of a newly reserved block, committed
    /// synchronously.
    pub(crate) reserve_keys: Statement,
}

/// The columns of [`Statements::load_locks`], in order.
pub(crate) const LOCK_COLUMNS: &str = "id, rev, last_key, holders, waiters";

/// The columns [`Statements::load`] returns, in order.
pub(crate) const SESSION_COLUMNS: &str = "id, rev, version, created_ms, accessed_ms, timeout_ms, \
     flags, key_form, class, data, vars";

/// How many columns a list of them (`a, b, c`) names.
const fn count(columns: &str) -> usize {
    let bytes = columns.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The columns before the rows in [`Statements::step`]'s answer: whether
/// it wrote, and the session's and lock row's revisions then.
pub(crate) const STEP_COLUMN_COUNT: usize = 3;

/// How many columns [`LOCK_COLUMNS`] and [`SESSION_COLUMNS`] are: where
/// what follows them in a row starts.
pub(crate) const LOCK_COLUMN_COUNT: usize = count(LOCK_COLUMNS);
pub(crate) const SESSION_COLUMN_COUNT: usize = count(SESSION_COLUMNS);

/// How the statements that read rows by a list of ids (`$2`) go through
/// it: one look-up by primary key per id, whatever the plan. Written as
/// `id = ANY($2)`, the plan PostgreSQL keeps for a prepared statement
/// after its first runs may be one chosen while the table was nearly
/// empty, and kept while the table grows: it walked every row of the
/// tenant for each read (measured with bench/cluster-profile.sh: 3.7 ms
/// a read at 10,000 sessions, against 0.02 ms). The `LIMIT` keeps the
/// planner from merging the look-up into a join it could plan otherwise.
const BY_ID: &str = "unnest($2::bytea[]) AS u(id) CROSS JOIN LATERAL";

/// `columns` of the table named `table` in the statement.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Statements {
    /// The prepared statement of `s`.
    pub(crate) fn get(&self, s: St) -> &Statement {
        match s {
            St::Load => &self.load,
            St::Put => &self.put,
            St::Delete => &self.delete,
            St::Touch => &self.touch,
            St::LoadLocks => &self.load_locks,
            St::LoadWithLock => &self.load_with_lock,
            St::LockPut => &self.lock_put,
            St::PutAndLock => &self.put_and_lock,
            St::DeleteAndLock => &self.delete_and_lock,
            St::Step => &self.step,
            St::ReserveKeys => &self.reserve_keys,
        }
    }

    pub(crate) async fn prepare(c: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            load: c
                .prepare(&format!(
                    "SELECT {}, (SELECT l.held_until_ms FROM sessiond_lock AS l \
                     WHERE l.tenant = s.tenant AND l.id = s.id) \
                     FROM {BY_ID} (SELECT * FROM sessiond_session AS s \
                     WHERE s.tenant = $1 AND s.id = u.id LIMIT 1) AS s",
                    qualified("s", SESSION_COLUMNS)
                ))
                .await?,
            put: c
                .prepare(
                    "SELECT sessiond_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .await?,
            delete: c
                .prepare("SELECT sessiond_delete($1, $2, $3)")
                .await?,
            touch: c
                .prepare(
                    "UPDATE sessiond_session SET accessed_ms = greatest(accessed_ms, $3), \
                     expires_ms = greatest(expires_ms, $4) WHERE tenant = $1 AND id = $2",
                )
                .await?,
            load_locks: c
                .prepare(&format!(
                    "SELECT {} FROM {BY_ID} (SELECT * FROM sessiond_lock AS l \
                     WHERE l.tenant = $1 AND l.id = u.id LIMIT 1) AS l",
                    qualified("l", LOCK_COLUMNS)
                ))
                .await?,
            load_with_lock: c
                .prepare(&format!(
                    "SELECT {}, {} \
                     FROM (SELECT 1) AS one \
                     LEFT JOIN sessiond_lock AS l ON l.tenant = $1 AND l.id = $2 \
                     LEFT JOIN sessiond_session AS s ON s.tenant = $1 AND s.id = $2",
                    qualified("l", LOCK_COLUMNS),
                    qualified("s", SESSION_COLUMNS)
                ))
                .await?,
            lock_put: c
                .prepare("SELECT sessiond_lock_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .await?,
            put_and_lock: c
                .prepare(
                    "SELECT sessiond_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17), \
                     sessiond_lock_put($1, $2, $18, $19, $20, $21, $22, $23, $24, $25)",
                )
                .await?,
            delete_and_lock: c
                .prepare(
                    "SELECT sessiond_delete($1, $2, $3), \
                     sessiond_lock_put($1, $2, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .await?,
            step: c
                .prepare(
                    "SELECT * FROM sessiond_step($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)",
                )
                .await?,
            reserve_keys: c
                .prepare(
                    "UPDATE sessiond_meta SET fence_next = fence_next + $1 \
                     FROM (SELECT set_config('synchronous_commit', 'on', true)) AS sync \
                     RETURNING fence_next - $1",
                )
                .await?,
        })
    }
}
