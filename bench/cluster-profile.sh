#!/usr/bin/env bash
# Where the database's time goes: two sessiond nodes on a private
# PostgreSQL with pg_stat_statements (track = all, so the statements inside
# sessiond's PL/pgSQL functions are counted too), one workload of the load
# generator through both nodes, then each statement's calls, total and mean
# time, and how many of the session and lock rows' updates were HOT.
#
#   bench/cluster-profile.sh                         # cycle-native, 50 conns, 10,000 sessions
#   bench/cluster-profile.sh --workload cycle-redis --conns 50 --keys 10000
#
# SECS (default 8) is the run's length, POLICY (always) the nodes' --fsync,
# TOP (20) how many statements to list. The arguments go to
# `sessiond bench run` (BENCHMARKS.md, "Two nodes on one PostgreSQL").
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-8}
POLICY=${POLICY:-always}
TOP=${TOP:-20}
[ $# -gt 0 ] || set -- --workload cycle-native --conns 50 --keys 10000

# shellcheck source=bench/private-postgres.sh
. bench/private-postgres.sh
# track = all: the statements inside sessiond's PL/pgSQL functions too.
start_postgres -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all
psql_ -d postgres -c "CREATE DATABASE profile"
psql_ -d profile -c "CREATE EXTENSION pg_stat_statements"
url="postgres://postgres@127.0.0.1:$PGPORT/profile"

nodes=()
for n in 1 2; do
  port=$(free_port)
  "$sd" serve --storage postgres --database-url "$url" --node-name "node-$n" --fsync "$POLICY" \
    --listen-resp "127.0.0.1:$port" --listen-memcache off --listen-line off --listen-http off \
    --log-level error &
  pids+=($!)
  nodes+=("127.0.0.1:$port")
  wait_port "$port"
done
psql_ -d profile -c "SELECT pg_stat_statements_reset()" >/dev/null
"$sd" bench run --json --duration "$SECS" --size 1024 --addr "$(IFS=,; echo "${nodes[*]}")" "$@"
stop_nodes
sleep 1.2 # the backends' table statistics reach the views within a second
echo
echo "calls | total ms | mean ms | top level | statement"
psql_ -d profile -F ' | ' -c "SELECT calls, round(total_exec_time::numeric, 0), \
  round(mean_exec_time::numeric, 3), toplevel, left(regexp_replace(query, '\s+', ' ', 'g'), 110) \
  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $TOP"
echo
echo "table | inserted | updated | of them HOT"
psql_ -d profile -F ' | ' -c "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
  WHERE relname IN ('sessiond_session', 'sessiond_lock') ORDER BY 1"
