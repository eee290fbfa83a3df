//! The request path's statements on MySQL/MariaDB: the same requests as
//! on PostgreSQL (`statements.rs`), numbered the same (`$n` is the same
//! parameter on both), answering the same columns in the same order. The
//! procedures they call are in `my_schema.rs`.
//!
//! What MySQL takes differently: the variables' index rows go as one
//! string (`$15` of a session's columns; see `row::index_blob`), and a lock
//! write sends neither wake-ups (the node sends them itself once the write
//! is committed: MySQL has no NOTIFY) nor a synchronous-commit flag
//! (`innodb_flush_log_at_trx_commit` is the server's, not a
//! transaction's).

use super::statements::St;

/// The statement of `s`.
pub(crate) fn sql(s: St) -> &'static str {
    match s {
        St::Load => {
            "SELECT s.id, s.rev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, \
             s.flags, s.key_form, s.class, s.data, s.vars, \
             (SELECT l.held_until_ms FROM sessiond_lock AS l \
              WHERE l.tenant = s.tenant AND l.id = s.id) \
             FROM sessiond_session AS s WHERE s.tenant = $1 AND s.id IN ($2)"
        }
        St::Put => {
            "CALL sessiond_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        }
        St::Delete => "CALL sessiond_delete($1, $2, $3)",
        St::Touch => {
            "UPDATE sessiond_session SET accessed_ms = GREATEST(accessed_ms, $3), \
             expires_ms = GREATEST(expires_ms, $4) WHERE tenant = $1 AND id = $2"
        }
        St::LoadLocks => {
            "SELECT l.id, l.rev, l.last_key, l.holders, l.waiters FROM sessiond_lock AS l \
             WHERE l.tenant = $1 AND l.id IN ($2)"
        }
        St::LoadWithLock => {
            "SELECT l.id, l.rev, l.last_key, l.holders, l.waiters, \
             s.id, s.rev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, \
             s.flags, s.key_form, s.class, s.data, s.vars \
             FROM (SELECT 1) AS one \
             LEFT JOIN sessiond_lock AS l ON l.tenant = $1 AND l.id = $2 \
             LEFT JOIN sessiond_session AS s ON s.tenant = $1 AND s.id = $2"
        }
        St::LockPut => "CALL sessiond_lock_put($1, $2, $3, $4, $5, $6, $7)",
        St::PutAndLock => {
            "CALL sessiond_put_lock($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $18, $19, $20, $21, $22)"
        }
        St::DeleteAndLock => "CALL sessiond_delete_lock($1, $2, $3, $4, $5, $6, $7, $8)",
        St::Step => {
            "CALL sessiond_step($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $19, $20, $21, $22, $23, $24, $28)"
        }
        St::ReserveKeys => "CALL sessiond_reserve_keys($1)",
    }
}
