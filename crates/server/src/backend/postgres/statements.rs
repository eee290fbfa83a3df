//! The statements a node sends, prepared once per connection.

use tokio_postgres::{Client, Statement};

/// One open connection and its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) st: Statements,
}

/// Every statement of the request path.
pub(crate) struct Statements {
    /// `(tenant, ids)` → the rows of those sessions that exist.
    pub(crate) load: Statement,
    /// The whole session, conditional on its revision (`sessiond_put`).
    pub(crate) put: Statement,
    /// `(tenant, id, rev)`: removes the session if still at `rev`.
    pub(crate) delete: Statement,
    /// `(tenant, id, accessed, expires)`: a read moved the expiry.
    pub(crate) touch: Statement,
}

/// The columns [`Statements::load`] returns, in order.
pub(crate) const SESSION_COLUMNS: &str = "id, rev, version, created_ms, accessed_ms, timeout_ms, \
     flags, key_form, class, data, vars";

impl Statements {
    pub(crate) async fn prepare(c: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            load: c
                .prepare(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessiond_session WHERE tenant = $1 AND id = ANY($2)"
                ))
                .await?,
            put: c
                .prepare(
                    "SELECT sessiond_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .await?,
            delete: c
                .prepare("DELETE FROM sessiond_session WHERE tenant = $1 AND id = $2 AND rev = $3")
                .await?,
            touch: c
                .prepare(
                    "UPDATE sessiond_session SET accessed_ms = greatest(accessed_ms, $3), \
                     expires_ms = greatest(expires_ms, $4) WHERE tenant = $1 AND id = $2",
                )
                .await?,
        })
    }
}
