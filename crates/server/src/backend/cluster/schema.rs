//! The database schema, created and versioned by sessiond itself: each
//! migration runs once, in order, in its own transaction, recorded in
//! `sessiond_schema`. Nodes starting together take turns (a transaction
//! advisory lock, held for the migration only); a node refuses a schema
//! newer than it knows, so an old binary never writes rows a newer one
//! laid out differently.

use tokio_postgres::Client;

/// The migrations, in order: migration `i + 1` is `MIGRATIONS[i]`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this binary writes.
pub(crate) const VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key migrating nodes take turns on (any fixed number:
/// "sessiond" in ASCII).
const MIGRATION_LOCK: i64 = 0x7365_7373_696f_6e64;

/// Version 1: sessions, the index behind FIND/LISTVAR, the nodes.
///
/// - `sessiond_session`: one row per session. `rev` rises on every write
///   and is what a write is conditional on (a node read the row at `rev`
///   and writes only if nobody wrote since); `place` is the session's
///   position in the scan order (a keyed hash of the id, the same on every
///   node: `sessiond_meta.place_key`); `expires_ms` is indexed for the
///   reaper. Times are ms since the epoch, the nodes' clocks.
/// - `sessiond_var`: what FIND and LISTVAR look up: explicit variables
///   (`kind` 'v') and the indexed fields of the data ('f'), by a key of
///   the value (the value itself up to 64 bytes, else a hash: B-tree keys
///   are bounded). Hits are checked against the session itself.
/// - `sessiond_node`: each node's heartbeat.
const V1: &str = r#"
CREATE TABLE sessiond_meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    place_key bytea NOT NULL
);
INSERT INTO sessiond_meta (place_key) VALUES (gen_random_uuid()::text::bytea);

CREATE TABLE sessiond_node (
    node text PRIMARY KEY,
    instance bigint NOT NULL,
    started_ms bigint NOT NULL,
    alive_until_ms bigint NOT NULL
);

CREATE TABLE sessiond_session (
    tenant text NOT NULL,
    id bytea NOT NULL,
    rev bigint NOT NULL,
    place bigint NOT NULL,
    version bigint NOT NULL,
    created_ms bigint NOT NULL,
    accessed_ms bigint NOT NULL,
    timeout_ms bigint NOT NULL,
    expires_ms bigint NOT NULL,
    flags bigint NOT NULL,
    key_form smallint NOT NULL,
    class bytea,
    data bytea NOT NULL,
    vars bytea,
    PRIMARY KEY (tenant, id)
) WITH (fillfactor = 70);
CREATE INDEX sessiond_session_expires ON sessiond_session (expires_ms);
CREATE INDEX sessiond_session_place ON sessiond_session (tenant, place);
CREATE INDEX sessiond_session_class ON sessiond_session (tenant, class) WHERE class IS NOT NULL;

CREATE TABLE sessiond_var (
    tenant text NOT NULL,
    id bytea NOT NULL,
    kind "char" NOT NULL,
    name bytea NOT NULL,
    value_key bytea NOT NULL,
    PRIMARY KEY (tenant, id, kind, name),
    FOREIGN KEY (tenant, id) REFERENCES sessiond_session ON DELETE CASCADE
);
CREATE INDEX sessiond_var_find ON sessiond_var (tenant, name, value_key);

-- Writes a whole session if its row is still at revision p_rev (0: there
-- is no row), with its index rows when p_names is not null; raises SDCHG
-- if another writer got there first. Returns the new revision.
CREATE FUNCTION sessiond_put(
    p_tenant text, p_id bytea, p_rev bigint, p_place bigint, p_version bigint,
    p_created bigint, p_accessed bigint, p_timeout bigint, p_expires bigint,
    p_flags bigint, p_key_form smallint, p_class bytea, p_data bytea, p_vars bytea,
    p_kinds "char"[], p_names bytea[], p_keys bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_rev bigint;
BEGIN
    IF p_rev = 0 THEN
        INSERT INTO sessiond_session AS s (tenant, id, rev, place, version, created_ms,
            accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars)
        VALUES (p_tenant, p_id, 1, p_place, p_version, p_created, p_accessed, p_timeout,
            p_expires, p_flags, p_key_form, p_class, p_data, p_vars)
        ON CONFLICT DO NOTHING
        RETURNING s.rev INTO new_rev;
    ELSE
        UPDATE sessiond_session AS s SET rev = s.rev + 1, version = p_version,
            created_ms = p_created, accessed_ms = p_accessed, timeout_ms = p_timeout,
            expires_ms = p_expires, flags = p_flags, key_form = p_key_form,
            class = p_class, data = p_data, vars = p_vars
        WHERE s.tenant = p_tenant AND s.id = p_id AND s.rev = p_rev
        RETURNING s.rev INTO new_rev;
    END IF;
    IF new_rev IS NULL THEN
        RAISE EXCEPTION 'session changed meanwhile' USING ERRCODE = 'SDCHG';
    END IF;
    IF p_names IS NOT NULL THEN
        DELETE FROM sessiond_var v
        WHERE v.tenant = p_tenant AND v.id = p_id
          AND NOT EXISTS (SELECT 1 FROM unnest(p_kinds, p_names) AS u(k, n)
                          WHERE u.k = v.kind AND u.n = v.name);
        INSERT INTO sessiond_var AS v (tenant, id, kind, name, value_key)
        SELECT p_tenant, p_id, u.k, u.n, u.vk FROM unnest(p_kinds, p_names, p_keys) AS u(k, n, vk)
        ON CONFLICT (tenant, id, kind, name) DO UPDATE SET value_key = EXCLUDED.value_key
        WHERE v.value_key <> EXCLUDED.value_key;
    END IF;
    RETURN new_rev;
END
$$;
"#;

/// Version 2: locks.
///
/// - `sessiond_lock`: one row per locked (or once locked) id: its holders
///   and FIFO queue (encoded by the nodes), `last_key` (the next key must
///   be above it), `held_until_ms` (the reaper spares the session until
///   then). Written like a session row: only at the revision read.
/// - `sessiond_meta.fence_next`: the next block of fencing keys a node
///   may reserve (each node takes 65,536 at a time, in a synchronous
///   commit, so no key is ever handed out twice, whatever crashes).
/// - `sessiond_delete` raises SDCHG as `sessiond_put` does; `sessiond_lock_put`
///   writes a lock row and sends the wake-ups of the waiters it granted
///   (NOTIFY is transactional: they leave with the commit), committing
///   synchronously when a grant is in it.
const V2: &str = r#"
ALTER TABLE sessiond_meta ADD COLUMN fence_next bigint NOT NULL DEFAULT 1;

CREATE TABLE sessiond_lock (
    tenant text NOT NULL,
    id bytea NOT NULL,
    rev bigint NOT NULL,
    last_key bigint NOT NULL,
    held_until_ms bigint NOT NULL,
    holders bytea NOT NULL,
    waiters bytea NOT NULL,
    PRIMARY KEY (tenant, id)
) WITH (fillfactor = 70);

CREATE FUNCTION sessiond_delete(p_tenant text, p_id bytea, p_rev bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sessiond_session WHERE tenant = p_tenant AND id = p_id AND rev = p_rev;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session changed meanwhile' USING ERRCODE = 'SDCHG';
    END IF;
END
$$;

CREATE FUNCTION sessiond_lock_put(
    p_tenant text, p_id bytea, p_rev bigint, p_last_key bigint, p_held_until bigint,
    p_holders bytea, p_waiters bytea, p_channels text[], p_payloads text[], p_sync boolean
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_rev bigint;
BEGIN
    IF p_sync THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    IF p_rev = 0 THEN
        INSERT INTO sessiond_lock AS l (tenant, id, rev, last_key, held_until_ms, holders, waiters)
        VALUES (p_tenant, p_id, 1, p_last_key, p_held_until, p_holders, p_waiters)
        ON CONFLICT DO NOTHING
        RETURNING l.rev INTO new_rev;
    ELSE
        UPDATE sessiond_lock AS l SET rev = l.rev + 1, last_key = p_last_key,
            held_until_ms = p_held_until, holders = p_holders, waiters = p_waiters
        WHERE l.tenant = p_tenant AND l.id = p_id AND l.rev = p_rev
        RETURNING l.rev INTO new_rev;
    END IF;
    IF new_rev IS NULL THEN
        RAISE EXCEPTION 'lock changed meanwhile' USING ERRCODE = 'SDCHG';
    END IF;
    PERFORM pg_notify(c, m) FROM unnest(p_channels, p_payloads) AS u(c, m);
    RETURN new_rev;
END
$$;
"#;

/// Version 3: the tenants' figures, and renamed locks.
///
/// - `sessiond_usage`: each tenant's sessions, sessions without expiry and
///   bytes (data, class, the variables column), kept by a trigger in the
///   same transaction as every write, spread over 64 rows per tenant so
///   writers of different sessions seldom meet on one. Nodes read the sums
///   for the quotas and the gauges.
/// - `sessiond_lock.moved_to`: `REGENERATE` moved the lock to that id; a
///   request still queued under the old id follows it there.
/// - `sessiond_lock_live`: the rows with a holder or a waiter, which the
///   nodes count for the lock quotas.
const V3: &str = r#"
ALTER TABLE sessiond_lock ADD COLUMN moved_to bytea;
CREATE INDEX sessiond_lock_live ON sessiond_lock (tenant)
    WHERE holders <> ''::bytea OR waiters <> ''::bytea;

CREATE TABLE sessiond_usage (
    tenant text NOT NULL,
    slot smallint NOT NULL,
    sessions bigint NOT NULL,
    persistent bigint NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (tenant, slot)
);

CREATE FUNCTION sessiond_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d_sessions bigint := 0;
    d_persistent bigint := 0;
    d_bytes bigint := 0;
    t text;
    i bytea;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        d_sessions := d_sessions - 1;
        d_persistent := d_persistent - (OLD.timeout_ms = 9223372036854775807)::int;
        d_bytes := d_bytes - octet_length(OLD.data) - coalesce(octet_length(OLD.class), 0)
            - coalesce(octet_length(OLD.vars), 0);
        t := OLD.tenant;
        i := OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        d_sessions := d_sessions + 1;
        d_persistent := d_persistent + (NEW.timeout_ms = 9223372036854775807)::int;
        d_bytes := d_bytes + octet_length(NEW.data) + coalesce(octet_length(NEW.class), 0)
            + coalesce(octet_length(NEW.vars), 0);
        t := NEW.tenant;
        i := NEW.id;
    END IF;
    IF d_sessions <> 0 OR d_persistent <> 0 OR d_bytes <> 0 THEN
        INSERT INTO sessiond_usage AS u (tenant, slot, sessions, persistent, bytes)
        VALUES (t, hashtext(encode(i, 'hex')) & 63, d_sessions, d_persistent, d_bytes)
        ON CONFLICT (tenant, slot) DO UPDATE SET sessions = u.sessions + EXCLUDED.sessions,
            persistent = u.persistent + EXCLUDED.persistent, bytes = u.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessiond_session_usage
    AFTER INSERT OR DELETE OR UPDATE OF data, class, vars, timeout_ms ON sessiond_session
    FOR EACH ROW EXECUTE FUNCTION sessiond_count();

INSERT INTO sessiond_usage (tenant, slot, sessions, persistent, bytes)
SELECT tenant, hashtext(encode(id, 'hex')) & 63, count(*),
    count(*) FILTER (WHERE timeout_ms = 9223372036854775807),
    sum(octet_length(data) + coalesce(octet_length(class), 0) + coalesce(octet_length(vars), 0))
FROM sessiond_session GROUP BY 1, 2;
"#;

/// Version 4: the tenants' figures kept once per statement, not per row.
///
/// A row trigger updated a `sessiond_usage` slot for every row written: a
/// statement writing many rows (a reaper's batch, a bulk load) updated the
/// same 64 rows over and over within one transaction — each update slower
/// than the last, as it walks the versions before it — and held them
/// locked meanwhile, so every other write waited. The statement triggers
/// sum what the statement changed per slot (transition tables) and update
/// each slot once, in slot order.
const V4: &str = r#"
DROP TRIGGER sessiond_session_usage ON sessiond_session;
DROP FUNCTION sessiond_count();

CREATE FUNCTION sessiond_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sessiond_usage AS u (tenant, slot, sessions, persistent, bytes)
        SELECT tenant, hashtext(encode(id, 'hex')) & 63, count(*),
            count(*) FILTER (WHERE timeout_ms = 9223372036854775807),
            sum(octet_length(data) + coalesce(octet_length(class), 0) + coalesce(octet_length(vars), 0))
        FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (tenant, slot) DO UPDATE SET sessions = u.sessions + EXCLUDED.sessions,
            persistent = u.persistent + EXCLUDED.persistent, bytes = u.bytes + EXCLUDED.bytes;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO sessiond_usage AS u (tenant, slot, sessions, persistent, bytes)
        SELECT tenant, hashtext(encode(id, 'hex')) & 63, -count(*),
            -count(*) FILTER (WHERE timeout_ms = 9223372036854775807),
            -sum(octet_length(data) + coalesce(octet_length(class), 0) + coalesce(octet_length(vars), 0))
        FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (tenant, slot) DO UPDATE SET sessions = u.sessions + EXCLUDED.sessions,
            persistent = u.persistent + EXCLUDED.persistent, bytes = u.bytes + EXCLUDED.bytes;
    ELSE
        INSERT INTO sessiond_usage AS u (tenant, slot, sessions, persistent, bytes)
        SELECT tenant, slot, 0, sum(dp), sum(db) FROM (
            SELECT tenant, hashtext(encode(id, 'hex')) & 63 AS slot,
                (timeout_ms = 9223372036854775807)::int AS dp,
                octet_length(data) + coalesce(octet_length(class), 0) + coalesce(octet_length(vars), 0) AS db
            FROM new_rows
            UNION ALL
            SELECT tenant, hashtext(encode(id, 'hex')) & 63,
                -(timeout_ms = 9223372036854775807)::int,
                -(octet_length(data) + coalesce(octet_length(class), 0) + coalesce(octet_length(vars), 0))
            FROM old_rows
        ) AS d GROUP BY 1, 2 HAVING sum(dp) <> 0 OR sum(db) <> 0 ORDER BY 1, 2
        ON CONFLICT (tenant, slot) DO UPDATE SET persistent = u.persistent + EXCLUDED.persistent,
            bytes = u.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessiond_usage_insert AFTER INSERT ON sessiond_session
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sessiond_count_rows();
CREATE TRIGGER sessiond_usage_delete AFTER DELETE ON sessiond_session
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sessiond_count_rows();
CREATE TRIGGER sessiond_usage_update AFTER UPDATE ON sessiond_session
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sessiond_count_rows();
"#;

/// Version 5: revisions that never repeat, and a write that answers with
/// the rows when they changed.
///
/// - `sessiond_rev`: every write of a session or lock row takes its
///   revision from this sequence (a read moving a session's expiry keeps
///   the revision: a node reads a kept session past its deadline again),
///   so no row is ever at a revision it, or a row of the same id before
///   it, was at: a node may
///   then keep the rows it last wrote and write again at their revisions
///   without reading them first (a row deleted and written again used to
///   start over at 1, and an old copy could have passed for it).
/// - `sessiond_put` and `sessiond_lock_put` take revisions from it; a lock
///   row is written by `sessiond_lock_write` (null instead of SDCHG when
///   the row changed, for `sessiond_step`), which runs `pg_notify` only
///   when there is someone to wake, and
///   raises `synchronous_commit` for a grant only from `off` (a stronger
///   setting of the operator's, such as `remote_apply`, is kept): each
///   statement a function runs costs an executor start, which is most of
///   the database's time per lock operation (`perf`).
/// - `sessiond_step`: one lock operation of a node that kept the rows:
///   the session row written (`p_put`) or only checked at `p_rev`, and the
///   lock row written (`p_lock_put`) or only checked at `p_lock_rev`, all
///   or nothing. Written: one row, `ok` with the new revisions. Changed
///   meanwhile: one row, not `ok`, with the rows as they are now (the
///   columns of the nodes' combined read), so the node can do the
///   operation again without another read — or, when another node wrote
///   between the check and the write, SDCHG as from the other functions
///   (a `BEGIN … EXCEPTION` block that answered that case with the rows
///   too made the cycle about a tenth slower in pgbench: a
///   subtransaction per call). With `p_lock_rev` -1, a grant on rows not
///   read at all (a node's first `OPEN`/`LOCK` of a session): written
///   only if the lock row is idle or absent and its last key below the
///   one granted; the session, read after the grant, comes back with it
///   (and when `p_rev` is -1 and it is not there and alive at `p_now`,
///   SDCHG undoes the grant).
const V5: &str = r#"
CREATE SEQUENCE sessiond_rev AS bigint CACHE 32;
SELECT setval('sessiond_rev', greatest(
    (SELECT max(rev) FROM sessiond_session), (SELECT max(rev) FROM sessiond_lock), 1));

CREATE OR REPLACE FUNCTION sessiond_put(
    p_tenant text, p_id bytea, p_rev bigint, p_place bigint, p_version bigint,
    p_created bigint, p_accessed bigint, p_timeout bigint, p_expires bigint,
    p_flags bigint, p_key_form smallint, p_class bytea, p_data bytea, p_vars bytea,
    p_kinds "char"[], p_names bytea[], p_keys bytea[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_rev bigint;
BEGIN
    IF p_rev = 0 THEN
        INSERT INTO sessiond_session AS s (tenant, id, rev, place, version, created_ms,
            accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars)
        VALUES (p_tenant, p_id, nextval('sessiond_rev'), p_place, p_version, p_created,
            p_accessed, p_timeout, p_expires, p_flags, p_key_form, p_class, p_data, p_vars)
        ON CONFLICT DO NOTHING
        RETURNING s.rev INTO new_rev;
    ELSE
        UPDATE sessiond_session AS s SET rev = nextval('sessiond_rev'), version = p_version,
            created_ms = p_created, accessed_ms = p_accessed, timeout_ms = p_timeout,
            expires_ms = p_expires, flags = p_flags, key_form = p_key_form,
            class = p_class, data = p_data, vars = p_vars
        WHERE s.tenant = p_tenant AND s.id = p_id AND s.rev = p_rev
        RETURNING s.rev INTO new_rev;
    END IF;
    IF new_rev IS NULL THEN
        RAISE EXCEPTION 'session changed meanwhile' USING ERRCODE = 'SDCHG';
    END IF;
    IF p_names IS NOT NULL THEN
        DELETE FROM sessiond_var v
        WHERE v.tenant = p_tenant AND v.id = p_id
          AND NOT EXISTS (SELECT 1 FROM unnest(p_kinds, p_names) AS u(k, n)
                          WHERE u.k = v.kind AND u.n = v.name);
        INSERT INTO sessiond_var AS v (tenant, id, kind, name, value_key)
        SELECT p_tenant, p_id, u.k, u.n, u.vk FROM unnest(p_kinds, p_names, p_keys) AS u(k, n, vk)
        ON CONFLICT (tenant, id, kind, name) DO UPDATE SET value_key = EXCLUDED.value_key
        WHERE v.value_key <> EXCLUDED.value_key;
    END IF;
    RETURN new_rev;
END
$$;

-- Writes a lock row if it is still at revision p_rev (0: there is no
-- row), committing synchronously when p_sync, and sends its wake-ups;
-- the new revision, or null (nothing written) if another writer got
-- there first.
CREATE FUNCTION sessiond_lock_write(
    p_tenant text, p_id bytea, p_rev bigint, p_last_key bigint, p_held_until bigint,
    p_holders bytea, p_waiters bytea, p_channels text[], p_payloads text[], p_sync boolean
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_rev bigint;
BEGIN
    IF p_rev = 0 THEN
        INSERT INTO sessiond_lock AS l (tenant, id, rev, last_key, held_until_ms, holders, waiters)
        VALUES (p_tenant, p_id, nextval('sessiond_rev'), p_last_key, p_held_until, p_holders,
            p_waiters)
        ON CONFLICT DO NOTHING
        RETURNING l.rev INTO new_rev;
    ELSE
        UPDATE sessiond_lock AS l SET rev = nextval('sessiond_rev'), last_key = p_last_key,
            held_until_ms = p_held_until, holders = p_holders, waiters = p_waiters
        WHERE l.tenant = p_tenant AND l.id = p_id AND l.rev = p_rev
        RETURNING l.rev INTO new_rev;
    END IF;
    IF new_rev IS NOT NULL THEN
        IF p_sync AND current_setting('synchronous_commit') = 'off' THEN
            PERFORM set_config('synchronous_commit', 'on', true);
        END IF;
        IF cardinality(p_channels) > 0 THEN
            PERFORM pg_notify(c, m) FROM unnest(p_channels, p_payloads) AS u(c, m);
        END IF;
    END IF;
    RETURN new_rev;
END
$$;

CREATE OR REPLACE FUNCTION sessiond_lock_put(
    p_tenant text, p_id bytea, p_rev bigint, p_last_key bigint, p_held_until bigint,
    p_holders bytea, p_waiters bytea, p_channels text[], p_payloads text[], p_sync boolean
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_rev bigint;
BEGIN
    new_rev := sessiond_lock_write(p_tenant, p_id, p_rev, p_last_key, p_held_until,
        p_holders, p_waiters, p_channels, p_payloads, p_sync);
    IF new_rev IS NULL THEN
        RAISE EXCEPTION 'lock changed meanwhile' USING ERRCODE = 'SDCHG';
    END IF;
    RETURN new_rev;
END
$$;

CREATE FUNCTION sessiond_step(
    p_tenant text, p_id bytea, p_rev bigint, p_put boolean, p_place bigint, p_version bigint,
    p_created bigint, p_accessed bigint, p_timeout bigint, p_expires bigint,
    p_flags bigint, p_key_form smallint, p_class bytea, p_data bytea, p_vars bytea,
    p_kinds "char"[], p_names bytea[], p_keys bytea[],
    p_lock_rev bigint, p_lock_put boolean, p_last_key bigint, p_held_until bigint,
    p_holders bytea, p_waiters bytea, p_channels text[], p_payloads text[], p_sync boolean,
    p_now bigint,
    OUT o_ok boolean, OUT o_rev bigint, OUT o_lock_rev bigint,
    OUT o_l_id bytea, OUT o_l_rev bigint, OUT o_l_last_key bigint, OUT o_l_holders bytea,
    OUT o_l_waiters bytea, OUT o_s_id bytea, OUT o_s_rev bigint, OUT o_s_version bigint,
    OUT o_s_created bigint, OUT o_s_accessed bigint, OUT o_s_timeout bigint,
    OUT o_s_flags bigint, OUT o_s_key_form smallint, OUT o_s_class bytea, OUT o_s_data bytea,
    OUT o_s_vars bytea
) LANGUAGE plpgsql AS $$
DECLARE
    l_rev bigint;
    l_last bigint;
    l_idle boolean;
BEGIN
    IF p_lock_rev < 0 THEN
        -- A grant to a lock row not read: only if the row is idle (or
        -- there is none) and the key is above every key granted on it.
        -- The session is read after the grant, so that it comes with
        -- whatever the lock's last holder wrote (its release and its data
        -- are one commit); if it must be there and alive at p_now (p_rev
        -- = -1) and is not, the grant is undone (SDCHG: the node reads).
        -- Else nothing is written and both rows are sent back.
        SELECT l.rev, l.last_key, l.holders = ''::bytea AND l.waiters = ''::bytea
        INTO l_rev, l_last, l_idle
        FROM sessiond_lock AS l WHERE l.tenant = p_tenant AND l.id = p_id;
        o_ok := l_rev IS NULL OR (l_idle AND l_last < p_last_key);
        IF o_ok THEN
            o_lock_rev := sessiond_lock_write(p_tenant, p_id, coalesce(l_rev, 0), p_last_key,
                p_held_until, p_holders, p_waiters, p_channels, p_payloads, true);
            o_ok := o_lock_rev IS NOT NULL;
        END IF;
        IF o_ok THEN
            SELECT s.rev, s.expires_ms > p_now, s.id, s.rev, s.version, s.created_ms,
                s.accessed_ms, s.timeout_ms, s.flags, s.key_form, s.class, s.data, s.vars
            INTO o_rev, l_idle, o_s_id, o_s_rev, o_s_version, o_s_created, o_s_accessed,
                o_s_timeout, o_s_flags, o_s_key_form, o_s_class, o_s_data, o_s_vars
            FROM sessiond_session AS s WHERE s.tenant = p_tenant AND s.id = p_id;
            IF p_rev = -1 AND NOT coalesce(l_idle, false) THEN
                RAISE EXCEPTION 'session gone meanwhile' USING ERRCODE = 'SDCHG';
            END IF;
            o_rev := coalesce(o_rev, 0);
            RETURN;
        END IF;
    -- Otherwise the row not written is checked; the written ones are
    -- checked by their writes. The lock row of a CLOSE (which waiters
    -- queuing change) is checked before the session is written, so that
    -- the common conflict answers with the rows; a session written by
    -- another node meanwhile (by a command without the lock), or a write
    -- between a check and a write, raises SDCHG (the node reads again).
    ELSIF NOT p_put THEN
        SELECT s.rev INTO o_rev FROM sessiond_session AS s
        WHERE s.tenant = p_tenant AND s.id = p_id;
        o_ok := coalesce(o_rev, 0) = p_rev;
    ELSE
        SELECT l.rev INTO o_lock_rev FROM sessiond_lock AS l
        WHERE l.tenant = p_tenant AND l.id = p_id;
        o_ok := coalesce(o_lock_rev, 0) = p_lock_rev;
        IF o_ok THEN
            -- SDCHG if another node wrote the session since: it reads again.
            o_rev := sessiond_put(p_tenant, p_id, p_rev, p_place, p_version, p_created,
                p_accessed, p_timeout, p_expires, p_flags, p_key_form, p_class, p_data,
                p_vars, p_kinds, p_names, p_keys);
        END IF;
    END IF;
    IF o_ok THEN
        IF p_lock_put THEN
            o_lock_rev := sessiond_lock_write(p_tenant, p_id, p_lock_rev, p_last_key,
                p_held_until, p_holders, p_waiters, p_channels, p_payloads, p_sync);
            IF o_lock_rev IS NULL THEN
                IF p_put THEN
                    RAISE EXCEPTION 'lock changed meanwhile' USING ERRCODE = 'SDCHG';
                END IF;
                o_ok := false;
            END IF;
        ELSIF NOT p_put THEN
            SELECT l.rev INTO o_lock_rev FROM sessiond_lock AS l
            WHERE l.tenant = p_tenant AND l.id = p_id;
            o_ok := coalesce(o_lock_rev, 0) = p_lock_rev;
        END IF;
    END IF;
    IF o_ok THEN
        o_rev := coalesce(o_rev, 0);
        o_lock_rev := coalesce(o_lock_rev, 0);
        RETURN;
    END IF;
    o_rev := 0;
    o_lock_rev := 0;
    SELECT l.id, l.rev, l.last_key, l.holders, l.waiters,
        s.id, s.rev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, s.flags,
        s.key_form, s.class, s.data, s.vars
    INTO o_l_id, o_l_rev, o_l_last_key, o_l_holders, o_l_waiters,
        o_s_id, o_s_rev, o_s_version, o_s_created, o_s_accessed, o_s_timeout, o_s_flags,
        o_s_key_form, o_s_class, o_s_data, o_s_vars
    FROM (SELECT 1) AS one
    LEFT JOIN sessiond_lock AS l ON l.tenant = p_tenant AND l.id = p_id
    LEFT JOIN sessiond_session AS s ON s.tenant = p_tenant AND s.id = p_id;
END
$$;
"#;

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migrated {
    pub(crate) from: i32,
    pub(crate) to: i32,
}

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("the database's schema is version {found}, newer than this sessiond knows ({known}): upgrade this node's sessiond, or point it at another database")]
    Newer { found: i32, known: i32 },
    #[error("the database's schema is version {found}, older than this sessiond needs ({known}): run `sessiond migrate`, or start a node with database_migrate = true")]
    Older { found: i32, known: i32 },
    #[error("{0}")]
    Db(#[from] tokio_postgres::Error),
}

/// The schema version the database is at (0: none).
pub(crate) async fn current(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sessiond_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM sessiond_schema", &[])
        .await?
        .get(0);
    Ok(v.unwrap_or(0))
}

/// Brings the schema up to [`VERSION`], one migration per transaction;
/// refuses a newer one.
pub(crate) async fn migrate(client: &mut Client, node: &str) -> Result<Migrated, SchemaError> {
    let from = current(client).await?;
    if from > VERSION {
        return Err(SchemaError::Newer {
            found: from,
            known: VERSION,
        });
    }
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS sessiond_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now(),
                node text NOT NULL)",
        )
        .await?;
        let at: Option<i32> = tx
            .query_one("SELECT max(version) FROM sessiond_schema", &[])
            .await?
            .get(0);
        let at = at.unwrap_or(0);
        if at > VERSION {
            return Err(SchemaError::Newer {
                found: at,
                known: VERSION,
            });
        }
        if at == VERSION {
            tx.commit().await?;
            return Ok(Migrated { from, to: at });
        }
        tx.batch_execute(MIGRATIONS[at as usize]).await?;
        tx.execute(
            "INSERT INTO sessiond_schema (version, node) VALUES ($1, $2)",
            &[&(at + 1), &node],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = at + 1, "migrated the database schema");
    }
}

/// Refuses a schema that is not the one this binary writes.
pub(crate) async fn check(client: &Client) -> Result<(), SchemaError> {
    let found = current(client).await?;
    match found.cmp(&VERSION) {
        std::cmp::Ordering::Greater => Err(SchemaError::Newer {
            found,
            known: VERSION,
        }),
        std::cmp::Ordering::Less => Err(SchemaError::Older {
            found,
            known: VERSION,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
