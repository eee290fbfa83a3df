-- pgbench script: the statements sessiond nodes send to PostgreSQL for one
-- native locked cycle of an existing session (SESSION.OPEN, then
-- SESSION.CLOSE with new data), each its own transaction, when the lock
-- is free: the grant, written on rows not read and answered with the
-- session (sessiond_step with a lock revision of -1, committed
-- synchronously, as every grant is); then the session written and the
-- lock released at the revisions the grant left (sessiond_step again: the
-- node keeps the rows it wrote and does not read them). bench/cluster.sh
-- runs it as the database's own ceiling for the cycle. The values are
-- those a node writes (a 48-byte holder record, 1 KiB of data; a key that
-- rises, as fencing keys do); the sessions are `pgbench:1` …
-- `pgbench:<keys>` (bench/cluster.sh makes them), each client on its own
-- share of them (-D clients=N, as -c N), as no two PHP requests run one
-- cycle on one session at once without contention.
\set n 1 + :client_id + :clients * random(0, :keys / :clients - 1)
WITH k AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS k, (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now) SELECT k.k AS lkey, g.o_rev AS srev, g.o_lock_rev AS lrev, g.o_s_version AS version, g.o_s_created AS created_ms, g.o_s_timeout AS timeout_ms, g.o_s_flags AS flags, g.o_s_key_form AS key_form FROM k, LATERAL sessiond_step('default', convert_to('pgbench:' || :n, 'UTF8'), -1, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, true, k.k, k.now + 30000, '\x0000000001e9002d0000000000007f4b77000000026e3201a237d28eb0cd85000000000001e95e000001a237d5e48500'::bytea, ''::bytea, '{}'::text[], '{}'::text[], true, k.now) AS g \gset
SELECT o_ok FROM sessiond_step('default', convert_to('pgbench:' || :n, 'UTF8'), :srev, true, hashtext('pgbench:' || :n), :version + 1, :created_ms, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, :timeout_ms, 9223372036854775807, :flags, :key_form::smallint, NULL, convert_to(repeat('y', 1024), 'UTF8'), NULL, NULL, NULL, NULL, :lrev, true, :lkey, 0, ''::bytea, ''::bytea, '{}'::text[], '{}'::text[], false, 0);
