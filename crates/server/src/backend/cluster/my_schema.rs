//! The schema on MySQL 8 / MariaDB 10.6+, created and versioned by
//! sessiond as on PostgreSQL (`schema.rs`): a migration runs once, in
//! order, recorded in `sessiond_schema`; a node refuses a schema newer than
//! it knows. MySQL commits each DDL statement on its own, so a migration
//! is a list of statements each of which may run again (`IF NOT EXISTS`,
//! `DROP … IF EXISTS` before each `CREATE`): one cut off half-way is
//! finished by the next attempt. Nodes migrating at once take turns on a
//! row (`sessiond_migrating`), never on `GET_LOCK`.
//!
//! The same tables as on PostgreSQL, with bytes for every string
//! (`VARBINARY`/`BLOB`: no collation ever compares or converts an id), and
//! the same writes as procedures, each one transaction (its own, or the
//! node's when the node opened one: `@sessiond_tx`), answering the same
//! columns. Differences, each for a reason:
//!
//! - Revisions come from `UUID_SHORT()` (its 63 low bits): unique on one
//!   server (its `server_id` is in the top byte, its start time below, a
//!   counter below that), so a row never returns to a revision it, or a
//!   row of the same id before it, had — what PostgreSQL's `sessiond_rev`
//!   sequence gives. Servers written to at once (Galera) need distinct
//!   `server_id`s below 128.
//! - Fencing-key blocks start at least at the server's clock in ms times
//!   2^16: `innodb_flush_log_at_trx_commit` is the server's, so a
//!   reservation may be lost in a crash of the database; the next one,
//!   made later, starts above it anyway.
//! - No NOTIFY: the node that hands a lock to a waiter on another node
//!   wakes it itself (`wake.rs`).
//! - Expiry takes each row with `FOR UPDATE SKIP LOCKED` and deletes it by
//!   its key: a row a request holds is left for the next round, and the
//!   reaper never waits on a request (nor the reverse), so the two cannot
//!   deadlock.
//! - Ids, variable names and classes are at most 1,024 bytes (InnoDB's
//!   index keys are bounded); `max_id_len` is checked against it.

use super::schema::Migrated;
use crate::persist::Fsync;
use sessiond_mysql::Client;
use sessiond_mysql::MyError;

/// The migrations, in order: migration `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&[&str]] = &[V1, V2];

/// The schema version this binary writes.
pub(crate) const VERSION: i32 = MIGRATIONS.len() as i32;

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MySchemaError {
    #[error("the database's schema is version {found}, newer than this sessiond knows ({known}): upgrade this node's sessiond, or point it at another database")]
    Newer { found: i32, known: i32 },
    #[error("the database's schema is version {found}, older than this sessiond needs ({known}): run `sessiond migrate`, or start a node with database_migrate = true")]
    Older { found: i32, known: i32 },
    #[error("another sessiond has been migrating the schema for over a minute ({0}): if none is, delete the row of sessiond_migrating")]
    Busy(String),
    #[error("{0}")]
    Db(#[from] MyError),
}

/// Version 1: everything PostgreSQL's versions 1–5 built but the reaper
/// (`sessiond_reap`), which version 2 makes.
const V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessiond_meta (
        singleton TINYINT NOT NULL PRIMARY KEY,
        place_key VARBINARY(64) NOT NULL,
        fence_next BIGINT NOT NULL,
        wake_key VARBINARY(64) NOT NULL
    ) ENGINE = InnoDB",
    // The keys are random bytes of the migrating node's (`{place_key}`,
    // `{wake_key}`): the scan order's, and the one wake-ups between nodes
    // are signed with (`hint.rs`).
    "INSERT INTO sessiond_meta (singleton, place_key, fence_next, wake_key)
        SELECT 1, {place_key}, 1, {wake_key} FROM DUAL
        WHERE NOT EXISTS (SELECT 1 FROM sessiond_meta)",
    "CREATE TABLE IF NOT EXISTS sessiond_node (
        node VARBINARY(255) NOT NULL PRIMARY KEY,
        instance BIGINT NOT NULL,
        started_ms BIGINT NOT NULL,
        alive_until_ms BIGINT NOT NULL,
        wake_addr VARBINARY(255)
    ) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS sessiond_session (
        tenant VARBINARY(255) NOT NULL,
        id VARBINARY(1024) NOT NULL,
        rev BIGINT NOT NULL,
        place BIGINT NOT NULL,
        version BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        accessed_ms BIGINT NOT NULL,
        timeout_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        flags BIGINT NOT NULL,
        key_form SMALLINT NOT NULL,
        class VARBINARY(1024),
        data LONGBLOB NOT NULL,
        vars LONGBLOB,
        PRIMARY KEY (tenant, id),
        KEY sessiond_session_expires (expires_ms),
        KEY sessiond_session_place (tenant, place, id),
        KEY sessiond_session_class (tenant, class)
    ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
    "CREATE TABLE IF NOT EXISTS sessiond_var (
        tenant VARBINARY(255) NOT NULL,
        id VARBINARY(1024) NOT NULL,
        kind TINYINT NOT NULL,
        name VARBINARY(1024) NOT NULL,
        value_key VARBINARY(65) NOT NULL,
        PRIMARY KEY (tenant, id, kind, name),
        KEY sessiond_var_find (tenant, name, value_key),
        CONSTRAINT sessiond_var_session FOREIGN KEY (tenant, id)
            REFERENCES sessiond_session (tenant, id) ON DELETE CASCADE
    ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
    // `live`: the rows with a holder or a waiter, which the nodes count
    // for the lock quotas (PostgreSQL's partial index).
    "CREATE TABLE IF NOT EXISTS sessiond_lock (
        tenant VARBINARY(255) NOT NULL,
        id VARBINARY(1024) NOT NULL,
        rev BIGINT NOT NULL,
        last_key BIGINT NOT NULL,
        held_until_ms BIGINT NOT NULL,
        holders MEDIUMBLOB NOT NULL,
        waiters MEDIUMBLOB NOT NULL,
        moved_to VARBINARY(1024),
        live TINYINT AS (holders <> '' OR waiters <> '') STORED,
        PRIMARY KEY (tenant, id),
        KEY sessiond_lock_live (tenant, live)
    ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
    "CREATE TABLE IF NOT EXISTS sessiond_usage (
        tenant VARBINARY(255) NOT NULL,
        slot SMALLINT NOT NULL,
        sessions BIGINT NOT NULL,
        persistent BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        PRIMARY KEY (tenant, slot)
    ) ENGINE = InnoDB",
    // Each tenant's figures, spread over 64 rows per tenant so writers of
    // different sessions seldom meet on one, kept by triggers in the
    // transaction of every write.
    "DROP TRIGGER IF EXISTS sessiond_usage_insert",
    "CREATE TRIGGER sessiond_usage_insert AFTER INSERT ON sessiond_session FOR EACH ROW
        INSERT INTO sessiond_usage (tenant, slot, sessions, persistent, bytes)
        VALUES (NEW.tenant, CRC32(NEW.id) & 63, 1, NEW.timeout_ms = 9223372036854775807,
            LENGTH(NEW.data) + COALESCE(LENGTH(NEW.class), 0) + COALESCE(LENGTH(NEW.vars), 0))
        ON DUPLICATE KEY UPDATE sessions = sessions + 1,
            persistent = persistent + (NEW.timeout_ms = 9223372036854775807),
            bytes = bytes + LENGTH(NEW.data) + COALESCE(LENGTH(NEW.class), 0)
                + COALESCE(LENGTH(NEW.vars), 0)",
    "DROP TRIGGER IF EXISTS sessiond_usage_delete",
    "CREATE TRIGGER sessiond_usage_delete AFTER DELETE ON sessiond_session FOR EACH ROW
        INSERT INTO sessiond_usage (tenant, slot, sessions, persistent, bytes)
        VALUES (OLD.tenant, CRC32(OLD.id) & 63, -1, -(OLD.timeout_ms = 9223372036854775807),
            -(LENGTH(OLD.data) + COALESCE(LENGTH(OLD.class), 0) + COALESCE(LENGTH(OLD.vars), 0)))
        ON DUPLICATE KEY UPDATE sessions = sessions - 1,
            persistent = persistent - (OLD.timeout_ms = 9223372036854775807),
            bytes = bytes - LENGTH(OLD.data) - COALESCE(LENGTH(OLD.class), 0)
                - COALESCE(LENGTH(OLD.vars), 0)",
    "DROP TRIGGER IF EXISTS sessiond_usage_update",
    "CREATE TRIGGER sessiond_usage_update AFTER UPDATE ON sessiond_session FOR EACH ROW
    BEGIN
        DECLARE d_persistent BIGINT DEFAULT (NEW.timeout_ms = 9223372036854775807)
            - (OLD.timeout_ms = 9223372036854775807);
        DECLARE d_bytes BIGINT DEFAULT LENGTH(NEW.data) + COALESCE(LENGTH(NEW.class), 0)
            + COALESCE(LENGTH(NEW.vars), 0) - LENGTH(OLD.data) - COALESCE(LENGTH(OLD.class), 0)
            - COALESCE(LENGTH(OLD.vars), 0);
        IF d_persistent <> 0 OR d_bytes <> 0 THEN
            INSERT INTO sessiond_usage (tenant, slot, sessions, persistent, bytes)
            VALUES (NEW.tenant, CRC32(NEW.id) & 63, 0, d_persistent, d_bytes)
            ON DUPLICATE KEY UPDATE persistent = persistent + d_persistent,
                bytes = bytes + d_bytes;
        END IF;
    END",
    // A session row written at revision p_rev (0: there is no row), with
    // its index rows when p_index is not null (for each: its kind, then
    // its name and value key, each after a two-byte length); SDCHG if
    // another writer got there first. The new revision in o_rev.
    "DROP PROCEDURE IF EXISTS sessiond_put_row",
    "CREATE PROCEDURE sessiond_put_row(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_place BIGINT,
        p_version BIGINT, p_created BIGINT, p_accessed BIGINT, p_timeout BIGINT,
        p_expires BIGINT, p_flags BIGINT, p_key_form SMALLINT, p_class VARBINARY(1024),
        p_data LONGBLOB, p_vars LONGBLOB, p_index LONGBLOB, OUT o_rev BIGINT)
    BEGIN
        DECLARE r BIGINT DEFAULT UUID_SHORT() & 9223372036854775807;
        DECLARE dup INT DEFAULT 0;
        DECLARE pos INT DEFAULT 1;
        DECLARE n INT;
        DECLARE k INT;
        DECLARE nm VARBINARY(1024);
        DECLARE vk VARBINARY(65);
        DECLARE CONTINUE HANDLER FOR 1062 SET dup = 1;
        IF p_rev = 0 THEN
            INSERT INTO sessiond_session (tenant, id, rev, place, version, created_ms,
                accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars)
            VALUES (p_tenant, p_id, r, p_place, p_version, p_created, p_accessed, p_timeout,
                p_expires, p_flags, p_key_form, p_class, p_data, p_vars);
            IF dup = 1 THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
            END IF;
        ELSE
            UPDATE sessiond_session SET rev = r, version = p_version, created_ms = p_created,
                accessed_ms = p_accessed, timeout_ms = p_timeout, expires_ms = p_expires,
                flags = p_flags, key_form = p_key_form, class = p_class, data = p_data,
                vars = p_vars
            WHERE tenant = p_tenant AND id = p_id AND rev = p_rev;
            IF ROW_COUNT() <> 1 THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
            END IF;
        END IF;
        IF p_index IS NOT NULL THEN
            IF p_rev <> 0 THEN
                DELETE FROM sessiond_var WHERE tenant = p_tenant AND id = p_id;
            END IF;
            WHILE pos <= LENGTH(p_index) DO
                SET k = ORD(SUBSTRING(p_index, pos, 1));
                SET n = ORD(SUBSTRING(p_index, pos + 1, 1)) * 256
                    + ORD(SUBSTRING(p_index, pos + 2, 1));
                SET nm = SUBSTRING(p_index, pos + 3, n);
                SET pos = pos + 3 + n;
                SET n = ORD(SUBSTRING(p_index, pos, 1)) * 256 + ORD(SUBSTRING(p_index, pos + 1, 1));
                SET vk = SUBSTRING(p_index, pos + 2, n);
                SET pos = pos + 2 + n;
                INSERT INTO sessiond_var (tenant, id, kind, name, value_key)
                VALUES (p_tenant, p_id, k, nm, vk);
            END WHILE;
        END IF;
        SET o_rev = r;
    END",
    // A lock row written at revision p_rev (0: there is no row); the new
    // revision in o_rev, or null (nothing written) if another writer got
    // there first.
    "DROP PROCEDURE IF EXISTS sessiond_lock_write",
    "CREATE PROCEDURE sessiond_lock_write(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_last_key BIGINT,
        p_held_until BIGINT, p_holders MEDIUMBLOB, p_waiters MEDIUMBLOB, OUT o_rev BIGINT)
    BEGIN
        DECLARE r BIGINT DEFAULT UUID_SHORT() & 9223372036854775807;
        DECLARE dup INT DEFAULT 0;
        DECLARE CONTINUE HANDLER FOR 1062 SET dup = 1;
        IF p_rev = 0 THEN
            INSERT INTO sessiond_lock (tenant, id, rev, last_key, held_until_ms, holders, waiters)
            VALUES (p_tenant, p_id, r, p_last_key, p_held_until, p_holders, p_waiters);
            SET o_rev = IF(dup = 1, NULL, r);
        ELSE
            UPDATE sessiond_lock SET rev = r, last_key = p_last_key,
                held_until_ms = p_held_until, holders = p_holders, waiters = p_waiters
            WHERE tenant = p_tenant AND id = p_id AND rev = p_rev;
            SET o_rev = IF(ROW_COUNT() = 1, r, NULL);
        END IF;
    END",
    "DROP PROCEDURE IF EXISTS sessiond_put",
    "CREATE PROCEDURE sessiond_put(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_place BIGINT,
        p_version BIGINT, p_created BIGINT, p_accessed BIGINT, p_timeout BIGINT,
        p_expires BIGINT, p_flags BIGINT, p_key_form SMALLINT, p_class VARBINARY(1024),
        p_data LONGBLOB, p_vars LONGBLOB, p_index LONGBLOB)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE o_rev BIGINT;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        CALL sessiond_put_row(p_tenant, p_id, p_rev, p_place, p_version, p_created,
            p_accessed, p_timeout, p_expires, p_flags, p_key_form, p_class, p_data, p_vars,
            p_index, o_rev);
        IF own THEN COMMIT; END IF;
        SELECT o_rev;
    END",
    "DROP PROCEDURE IF EXISTS sessiond_lock_put",
    "CREATE PROCEDURE sessiond_lock_put(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_last_key BIGINT,
        p_held_until BIGINT, p_holders MEDIUMBLOB, p_waiters MEDIUMBLOB)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE o_rev BIGINT;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        CALL sessiond_lock_write(p_tenant, p_id, p_rev, p_last_key, p_held_until, p_holders,
            p_waiters, o_rev);
        IF o_rev IS NULL THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
        END IF;
        IF own THEN COMMIT; END IF;
        SELECT o_rev;
    END",
    "DROP PROCEDURE IF EXISTS sessiond_put_lock",
    "CREATE PROCEDURE sessiond_put_lock(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_place BIGINT,
        p_version BIGINT, p_created BIGINT, p_accessed BIGINT, p_timeout BIGINT,
        p_expires BIGINT, p_flags BIGINT, p_key_form SMALLINT, p_class VARBINARY(1024),
        p_data LONGBLOB, p_vars LONGBLOB, p_index LONGBLOB, p_lock_rev BIGINT,
        p_last_key BIGINT, p_held_until BIGINT, p_holders MEDIUMBLOB, p_waiters MEDIUMBLOB)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE o_rev BIGINT;
        DECLARE o_lock_rev BIGINT;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        CALL sessiond_put_row(p_tenant, p_id, p_rev, p_place, p_version, p_created,
            p_accessed, p_timeout, p_expires, p_flags, p_key_form, p_class, p_data, p_vars,
            p_index, o_rev);
        CALL sessiond_lock_write(p_tenant, p_id, p_lock_rev, p_last_key, p_held_until,
            p_holders, p_waiters, o_lock_rev);
        IF o_lock_rev IS NULL THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
        END IF;
        IF own THEN COMMIT; END IF;
        SELECT o_rev, o_lock_rev;
    END",
    "DROP PROCEDURE IF EXISTS sessiond_delete",
    "CREATE PROCEDURE sessiond_delete(p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT)
    BEGIN
        DELETE FROM sessiond_session WHERE tenant = p_tenant AND id = p_id AND rev = p_rev;
        IF ROW_COUNT() <> 1 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
        END IF;
        SELECT 1;
    END",
    "DROP PROCEDURE IF EXISTS sessiond_delete_lock",
    "CREATE PROCEDURE sessiond_delete_lock(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_lock_rev BIGINT,
        p_last_key BIGINT, p_held_until BIGINT, p_holders MEDIUMBLOB, p_waiters MEDIUMBLOB)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE o_lock_rev BIGINT;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        DELETE FROM sessiond_session WHERE tenant = p_tenant AND id = p_id AND rev = p_rev;
        IF ROW_COUNT() <> 1 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
        END IF;
        CALL sessiond_lock_write(p_tenant, p_id, p_lock_rev, p_last_key, p_held_until,
            p_holders, p_waiters, o_lock_rev);
        IF o_lock_rev IS NULL THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
        END IF;
        IF own THEN COMMIT; END IF;
        SELECT 1, o_lock_rev;
    END",
    // One lock operation of a node, as PostgreSQL's sessiond_step (see
    // its comment in schema.rs): the session row written (p_put) or only
    // checked at p_rev, the lock row written (p_lock_put) or only checked
    // at p_lock_rev, all or nothing; p_lock_rev -1 is a grant on rows not
    // read. One row: ok, the revisions, then the lock row's and the
    // session's columns (after a grant on rows not read: the session; when
    // not ok: both rows as they are now; else all null).
    "DROP PROCEDURE IF EXISTS sessiond_step",
    "CREATE PROCEDURE sessiond_step(
        p_tenant VARBINARY(255), p_id VARBINARY(1024), p_rev BIGINT, p_put BOOLEAN,
        p_place BIGINT, p_version BIGINT, p_created BIGINT, p_accessed BIGINT,
        p_timeout BIGINT, p_expires BIGINT, p_flags BIGINT, p_key_form SMALLINT,
        p_class VARBINARY(1024), p_data LONGBLOB, p_vars LONGBLOB, p_index LONGBLOB,
        p_lock_rev BIGINT, p_lock_put BOOLEAN, p_last_key BIGINT, p_held_until BIGINT,
        p_holders MEDIUMBLOB, p_waiters MEDIUMBLOB, p_now BIGINT)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE o_ok BOOLEAN DEFAULT FALSE;
        DECLARE blind BOOLEAN DEFAULT FALSE;
        DECLARE o_rev BIGINT;
        DECLARE o_lock_rev BIGINT;
        DECLARE l_rev BIGINT;
        DECLARE l_last BIGINT;
        DECLARE l_idle BOOLEAN;
        DECLARE s_alive BOOLEAN;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        IF p_lock_rev < 0 THEN
            SET blind = TRUE;
            SELECT l.rev, l.last_key, l.holders = '' AND l.waiters = ''
            INTO l_rev, l_last, l_idle
            FROM (SELECT 1) AS one
            LEFT JOIN sessiond_lock AS l ON l.tenant = p_tenant AND l.id = p_id;
            SET o_ok = l_rev IS NULL OR (l_idle AND l_last < p_last_key);
            IF o_ok THEN
                CALL sessiond_lock_write(p_tenant, p_id, COALESCE(l_rev, 0), p_last_key,
                    p_held_until, p_holders, p_waiters, o_lock_rev);
                SET o_ok = o_lock_rev IS NOT NULL;
            END IF;
            IF o_ok THEN
                SELECT s.rev, s.expires_ms > p_now INTO o_rev, s_alive
                FROM (SELECT 1) AS one
                LEFT JOIN sessiond_session AS s ON s.tenant = p_tenant AND s.id = p_id;
                IF p_rev = -1 AND NOT COALESCE(s_alive, FALSE) THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
                END IF;
            END IF;
        ELSEIF NOT p_put THEN
            SET o_rev = (SELECT rev FROM sessiond_session WHERE tenant = p_tenant AND id = p_id);
            SET o_ok = COALESCE(o_rev, 0) = p_rev;
        ELSE
            SET o_lock_rev = (SELECT rev FROM sessiond_lock WHERE tenant = p_tenant AND id = p_id);
            SET o_ok = COALESCE(o_lock_rev, 0) = p_lock_rev;
            IF o_ok THEN
                CALL sessiond_put_row(p_tenant, p_id, p_rev, p_place, p_version, p_created,
                    p_accessed, p_timeout, p_expires, p_flags, p_key_form, p_class, p_data,
                    p_vars, p_index, o_rev);
            END IF;
        END IF;
        IF o_ok AND NOT blind THEN
            IF p_lock_put THEN
                CALL sessiond_lock_write(p_tenant, p_id, p_lock_rev, p_last_key, p_held_until,
                    p_holders, p_waiters, o_lock_rev);
                IF o_lock_rev IS NULL THEN
                    IF p_put THEN
                        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'SDCHG';
                    END IF;
                    SET o_ok = FALSE;
                END IF;
            ELSEIF NOT p_put THEN
                SET o_lock_rev = (SELECT rev FROM sessiond_lock
                    WHERE tenant = p_tenant AND id = p_id);
                SET o_ok = COALESCE(o_lock_rev, 0) = p_lock_rev;
            END IF;
        END IF;
        IF own THEN COMMIT; END IF;
        IF o_ok AND blind THEN
            SELECT TRUE, COALESCE(o_rev, 0), o_lock_rev, NULL, NULL, NULL, NULL, NULL,
                s.id, s.rev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, s.flags,
                s.key_form, s.class, s.data, s.vars
            FROM (SELECT 1) AS one
            LEFT JOIN sessiond_session AS s ON s.tenant = p_tenant AND s.id = p_id;
        ELSEIF o_ok THEN
            SELECT TRUE, COALESCE(o_rev, 0), COALESCE(o_lock_rev, 0), NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
        ELSE
            SELECT FALSE, 0, 0, l.id, l.rev, l.last_key, l.holders, l.waiters,
                s.id, s.rev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, s.flags,
                s.key_form, s.class, s.data, s.vars
            FROM (SELECT 1) AS one
            LEFT JOIN sessiond_lock AS l ON l.tenant = p_tenant AND l.id = p_id
            LEFT JOIN sessiond_session AS s ON s.tenant = p_tenant AND s.id = p_id;
        END IF;
    END",
    // A block of fencing keys: its first key, at least the server's clock
    // in ms times 2^16 (see the module's comment).
    "DROP PROCEDURE IF EXISTS sessiond_reserve_keys",
    "CREATE PROCEDURE sessiond_reserve_keys(p_block BIGINT)
    BEGIN
        DECLARE own BOOLEAN DEFAULT @sessiond_tx IS NULL;
        DECLARE f BIGINT;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            IF own THEN ROLLBACK; END IF;
            RESIGNAL;
        END;
        IF own THEN START TRANSACTION; END IF;
        SELECT GREATEST(fence_next, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) * 65536)
        INTO f FROM sessiond_meta WHERE singleton = 1 FOR UPDATE;
        UPDATE sessiond_meta SET fence_next = f + p_block WHERE singleton = 1;
        IF own THEN COMMIT; END IF;
        SELECT f;
    END",
    // A node joins under its name unless a node of that name is alive:
    // one row, 1 if it joined.
    "DROP PROCEDURE IF EXISTS sessiond_register",
    "CREATE PROCEDURE sessiond_register(p_node VARBINARY(255), p_instance BIGINT,
        p_now BIGINT, p_alive BIGINT)
    BEGIN
        DECLARE n INT DEFAULT 0;
        DECLARE dup INT DEFAULT 0;
        DECLARE CONTINUE HANDLER FOR 1062 SET dup = 1;
        UPDATE sessiond_node SET instance = p_instance, started_ms = p_now,
            alive_until_ms = p_alive
        WHERE node = p_node AND alive_until_ms < p_now;
        SET n = ROW_COUNT();
        IF n = 0 AND NOT EXISTS (SELECT 1 FROM sessiond_node WHERE node = p_node) THEN
            INSERT INTO sessiond_node (node, instance, started_ms, alive_until_ms)
            VALUES (p_node, p_instance, p_now, p_alive);
            SET n = IF(dup = 1, 0, 1);
        END IF;
        SELECT n;
    END",
];

/// Version 2: the reapers of several nodes take turns (`sessiond_reaping`).
const V2: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessiond_reaping (
        singleton TINYINT NOT NULL PRIMARY KEY
    ) ENGINE = InnoDB",
    "INSERT IGNORE INTO sessiond_reaping (singleton) VALUES (1)",
    // Up to p_limit expired sessions whose lock is not held, removed: each
    // taken with SKIP LOCKED (a row a request holds waits for the next
    // round) and deleted by its key, with its idle lock row, committed 50
    // at a time — every delete moves a tenant's figures (sessiond_usage),
    // and a long transaction would keep writers of new sessions waiting on
    // them. One node reaps at a time: each batch first takes the turn row
    // (SKIP LOCKED: a node that finds it taken leaves the round to the
    // other) — two reapers' batches, each holding the figure rows of the
    // sessions it deleted, were seen to deadlock under load. One row: how
    // many went.
    "DROP PROCEDURE IF EXISTS sessiond_reap",
    "CREATE PROCEDURE sessiond_reap(p_now BIGINT, p_limit INT)
    BEGIN
        DECLARE done INT DEFAULT 0;
        DECLARE n INT DEFAULT 0;
        DECLARE seen INT DEFAULT 0;
        DECLARE fetched INT;
        DECLARE gone INT;
        DECLARE chunk INT DEFAULT 50;
        DECLARE t VARBINARY(255);
        DECLARE i VARBINARY(1024);
        DECLARE got INT;
        DECLARE turn INT;
        -- The earliest to expire, taken in the order of their figure rows
        -- (as every write of several sessions takes them), so that two
        -- transactions never wait on each other's figures.
        DECLARE c CURSOR FOR
            SELECT e.tenant, e.id FROM (
                SELECT s.tenant, s.id FROM sessiond_session AS s
                WHERE s.expires_ms < p_now AND NOT EXISTS (SELECT 1 FROM sessiond_lock AS l
                    WHERE l.tenant = s.tenant AND l.id = s.id AND l.held_until_ms > p_now)
                ORDER BY s.expires_ms LIMIT chunk) AS e
            ORDER BY e.tenant, CRC32(e.id) & 63, e.id;
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN
            ROLLBACK;
            RESIGNAL;
        END;
        chunks: LOOP
            SET fetched = 0, gone = 0, done = 0;
            START TRANSACTION;
            SET turn = 0;
            SELECT 1 INTO turn FROM sessiond_reaping WHERE singleton = 1
                FOR UPDATE SKIP LOCKED;
            SET done = 0;
            IF turn = 0 THEN
                COMMIT;
                LEAVE chunks;
            END IF;
            OPEN c;
            each_row: LOOP
                FETCH c INTO t, i;
                IF done = 1 THEN
                    LEAVE each_row;
                END IF;
                SET fetched = fetched + 1;
                SET got = 0;
                SELECT 1 INTO got FROM sessiond_session
                WHERE tenant = t AND id = i AND expires_ms < p_now FOR UPDATE SKIP LOCKED;
                SET done = 0;
                IF got = 1 AND NOT EXISTS (SELECT 1 FROM sessiond_lock AS l
                    WHERE l.tenant = t AND l.id = i AND l.held_until_ms > p_now) THEN
                    DELETE FROM sessiond_session WHERE tenant = t AND id = i;
                    DELETE FROM sessiond_lock WHERE tenant = t AND id = i AND live = 0;
                    SET gone = gone + 1;
                END IF;
            END LOOP;
            CLOSE c;
            COMMIT;
            SET n = n + gone, seen = seen + fetched;
            -- Done: the candidates ran out, every one left is held by a
            -- request (the next round takes them), or enough went.
            IF fetched < chunk OR gone = 0 OR seen >= p_limit THEN
                LEAVE chunks;
            END IF;
        END LOOP;
        SELECT n;
    END",
];

/// The schema version the database is at (0: none).
async fn current(client: &Client) -> Result<i32, MyError> {
    let sets = client
        .query(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'sessiond_schema'",
        )
        .await?;
    if first_int(&sets)? == 0 {
        return Ok(0);
    }
    let sets = client
        .query("SELECT COALESCE(MAX(version), 0) FROM sessiond_schema")
        .await?;
    Ok(i32::try_from(first_int(&sets)?).unwrap_or(i32::MAX))
}

/// The first column of the first row, as a number.
fn first_int(sets: &[sessiond_mysql::ResultSet]) -> Result<i64, MyError> {
    sets.iter()
        .flat_map(|s| s.rows.first())
        .next()
        .and_then(|r| r.first())
        .ok_or_else(|| MyError::Protocol("no row where one was due".into()))?
        .to_i64()
        .map(|n| n.unwrap_or(0))
}

/// A string as an SQL literal of its bytes.
fn hex_literal(b: &[u8]) -> String {
    let mut s = String::with_capacity(3 + 2 * b.len());
    s.push_str("X'");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s.push('\'');
    s
}

/// Brings the schema up to [`VERSION`]; refuses a newer one.
pub(crate) async fn migrate(client: &Client, node: &str) -> Result<Migrated, MySchemaError> {
    let from = current(client).await?;
    if from > VERSION {
        return Err(MySchemaError::Newer {
            found: from,
            known: VERSION,
        });
    }
    if from == VERSION {
        return Ok(Migrated { from, to: from });
    }
    client
        .query(
            "CREATE TABLE IF NOT EXISTS sessiond_schema (
                version INT NOT NULL PRIMARY KEY,
                applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
                node VARBINARY(255) NOT NULL
            ) ENGINE = InnoDB",
        )
        .await?;
    client
        .query(
            "CREATE TABLE IF NOT EXISTS sessiond_migrating (
                singleton TINYINT NOT NULL PRIMARY KEY,
                node VARBINARY(255) NOT NULL,
                until_ms BIGINT NOT NULL
            ) ENGINE = InnoDB",
        )
        .await?;
    let me = hex_literal(format!("{node} {}", std::process::id()).as_bytes());
    // Our turn: the row is ours, or was left by a migration that stopped
    // over a minute ago.
    let mut waited = 0;
    loop {
        let now = now_ms();
        client
            .query(&format!(
                "INSERT INTO sessiond_migrating (singleton, node, until_ms) VALUES (1, {me}, {})
                 ON DUPLICATE KEY UPDATE node = IF(until_ms < {now}, {me}, node),
                    until_ms = IF(node = {me}, {}, until_ms)",
                now + 60_000,
                now + 60_000
            ))
            .await?;
        let sets = client
            .query(&format!(
                "SELECT COUNT(*) FROM sessiond_migrating WHERE node = {me}"
            ))
            .await?;
        if first_int(&sets)? == 1 {
            break;
        }
        if waited > 600 {
            return Err(MySchemaError::Busy("waited 60 s for its turn".to_string()));
        }
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let result = async {
        loop {
            let at = current(client).await?;
            if at > VERSION {
                return Err(MySchemaError::Newer {
                    found: at,
                    known: VERSION,
                });
            }
            if at == VERSION {
                return Ok(Migrated { from, to: at });
            }
            let mut key = [0u8; 64];
            getrandom::fill(&mut key).map_err(|e| MyError::Protocol(format!("random: {e}")))?;
            let (place_key, wake_key) = key.split_at(32);
            for statement in MIGRATIONS[at as usize] {
                let sql = statement
                    .replace("{place_key}", &hex_literal(place_key))
                    .replace("{wake_key}", &hex_literal(wake_key));
                client.query(&sql).await?;
            }
            client
                .query(&format!(
                    "INSERT INTO sessiond_schema (version, node) VALUES ({}, {})",
                    at + 1,
                    hex_literal(node.as_bytes())
                ))
                .await?;
            tracing::info!(version = at + 1, "migrated the database schema");
        }
    }
    .await;
    let _ = client
        .query(&format!("DELETE FROM sessiond_migrating WHERE node = {me}"))
        .await;
    result
}

/// Refuses a schema that is not the one this binary writes.
pub(crate) async fn check(client: &Client) -> Result<(), MySchemaError> {
    let found = current(client).await?;
    match found.cmp(&VERSION) {
        std::cmp::Ordering::Greater => Err(MySchemaError::Newer {
            found,
            known: VERSION,
        }),
        std::cmp::Ordering::Less => Err(MySchemaError::Older {
            found,
            known: VERSION,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Says at start what the server's durability setting lets `fsync`
/// promise: under `always` a reply comes after its commit, and the commit
/// is on disk only with `innodb_flush_log_at_trx_commit = 1` (a server-wide
/// setting, not one a node can choose per transaction); with 2 or 0 the
/// last second of commits may be lost in a crash of the database's
/// machine (2) or of the database (0) — `everysec`'s promise, not
/// `always`'s.
pub(crate) async fn warn_durability(client: &Client, fsync: Fsync) {
    let flush = match client
        .query("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit")
        .await
        .and_then(|s| first_int(&s))
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read innodb_flush_log_at_trx_commit");
            return;
        }
    };
    match (fsync, flush) {
        (Fsync::Always, 1) => {}
        (Fsync::Always, v) => tracing::warn!(
            innodb_flush_log_at_trx_commit = v,
            "fsync = always, but the database flushes its log only about once a second: a crash of the database can lose the last second of acknowledged writes; set innodb_flush_log_at_trx_commit = 1 on the server to keep the promise"
        ),
        (_, _) => tracing::info!(
            innodb_flush_log_at_trx_commit = flush,
            "writes are as durable as the database's innodb_flush_log_at_trx_commit"
        ),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
