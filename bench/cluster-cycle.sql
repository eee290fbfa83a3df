-- pgbench script: the statements sessiond nodes send to PostgreSQL for one
-- native locked cycle of an existing session (SESSION.OPEN, then
-- SESSION.CLOSE with new data), in the same order and each its own
-- transaction: read the lock row and the session in one statement; write
-- the grant (committed synchronously, as every grant is); read both again;
-- write the session and release the lock in one statement. bench/cluster.sh
-- runs it as the database's own ceiling for the cycle. The values are
-- those a node writes (a 48-byte holder record, 1 KiB of data); the
-- sessions are `pgbench:1` … `pgbench:<keys>` (bench/cluster.sh makes them),
-- each client on its own share of them (-D clients=N, as -c N), as no two
-- PHP requests run one cycle on one session at once without contention.
\set n 1 + :client_id + :clients * random(0, :keys / :clients - 1)
SELECT l.id AS lock_id, coalesce(l.rev, 0) AS lrev, coalesce(l.last_key, 0) AS lkey, l.holders, l.waiters, s.id, s.rev AS srev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, s.flags, s.key_form, s.class, s.data, s.vars, s.place FROM (SELECT 1) AS one LEFT JOIN sessiond_lock AS l ON l.tenant = 'default' AND l.id = convert_to('pgbench:' || :n, 'UTF8') LEFT JOIN sessiond_session AS s ON s.tenant = 'default' AND s.id = convert_to('pgbench:' || :n, 'UTF8') \gset
SELECT sessiond_lock_put('default', convert_to('pgbench:' || :n, 'UTF8'), :lrev, :lkey + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 30000, '\x0000000001e9002d0000000000007f4b77000000026e3201a237d28eb0cd85000000000001e95e000001a237d5e48500'::bytea, ''::bytea, '{}'::text[], '{}'::text[], true) AS lrev \gset
SELECT l.id AS lock_id, coalesce(l.rev, 0) AS lrev, coalesce(l.last_key, 0) AS lkey, l.holders, l.waiters, s.id, s.rev AS srev, s.version, s.created_ms, s.accessed_ms, s.timeout_ms, s.flags, s.key_form, s.class, s.data, s.vars, s.place FROM (SELECT 1) AS one LEFT JOIN sessiond_lock AS l ON l.tenant = 'default' AND l.id = convert_to('pgbench:' || :n, 'UTF8') LEFT JOIN sessiond_session AS s ON s.tenant = 'default' AND s.id = convert_to('pgbench:' || :n, 'UTF8') \gset
SELECT sessiond_put('default', convert_to('pgbench:' || :n, 'UTF8'), :srev, :place, :version + 1, :created_ms, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, :timeout_ms, 9223372036854775807, :flags, :key_form::smallint, NULL, convert_to(repeat('y', 1024), 'UTF8'), NULL, NULL, NULL, NULL), sessiond_lock_put('default', convert_to('pgbench:' || :n, 'UTF8'), :lrev, :lkey, 0, ''::bytea, ''::bytea, '{}'::text[], '{}'::text[], false);
