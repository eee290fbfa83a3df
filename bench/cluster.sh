#!/usr/bin/env bash
# Two sessiond nodes on one private PostgreSQL, on this machine, in one run:
# locked PHP cycles per second through both nodes (native and phpredis),
# the cross-node lock hand-off, the database's own ceiling for the same
# statements (pgbench), and the SQL baseline (Symfony PdoSessionHandler's
# transaction holding SELECT … FOR UPDATE), under synchronous and
# asynchronous commit.
#
#   bench/cluster.sh               # SECS=10 CONNS=50 KEYS=10000 SIZE=1024
#
# For each commit mode — `sync` (nodes at --fsync always: every reply waits
# for a synchronous commit) and `async` (--fsync everysec: data writes
# commit asynchronously, lock grants still synchronously) — a fresh
# database, two nodes (release build, default pool of 4 connections each),
# and the load generator `sessiond bench run` with its connections shared
# out over both nodes:
#   cycle-native   SESSION.OPEN … SESSION.CLOSE over KEYS sessions
#   cycle-redis    phpredis's four requests (SET NX PX, GET, SETEX, EVALSHA)
#   contend-*      the same over 5 sessions (CONNS clients fight over them)
#   handoff        a lock passed between a holder on one node and a waiter
#                  queued on the other (4 pairs): CLOSE sent → waiter granted
# then, with the nodes stopped:
#   pgbench        bench/cluster-cycle.sql (the statements the nodes send
#                  for one native cycle, prepared), 8 and CONNS clients: the
#                  database's ceiling is the better of the two
#   pg-for-update  the baseline, CONNS connections, over KEYS and over 5
#                  sessions, its commits synchronous or not as the nodes'.
# Prints a Markdown table; the raw JSON lines stay in $OUT (default
# bench/cluster-results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-50}
KEYS=${KEYS:-10000}
SIZE=${SIZE:-1024}
OUT=${OUT:-bench/cluster-results.jsonl}

# shellcheck source=bench/private-postgres.sh
. bench/private-postgres.sh
start_postgres
pg_version=$(psql_ -d postgres -c "SHOW server_version")

: >"$OUT"
record() { # mode case json
  echo "{\"mode\":\"$1\",\"case\":\"$2\",\"postgres\":\"$pg_version\",${3#\{}" >>"$OUT"
  echo "$1 $2 $(echo "$3" | grep -o '"tx_per_s":[0-9.]*')" >&2
}
bench() { "$sd" bench run --json --duration "$SECS" --size "$SIZE" "$@"; }

for mode in sync async; do
  policy=always; async=(); pgopt=""
  if [ "$mode" = async ]; then policy=everysec; async=(--async-commit); pgopt="-c synchronous_commit=off"; fi
  db="sessiond_$mode"
  psql_ -d postgres -c "CREATE DATABASE $db"
  url="postgres://postgres@127.0.0.1:$PGPORT/$db"
  p1=$(free_port); p2=$(free_port)
  for n in 1 2; do
    port=$p1; [ "$n" = 2 ] && port=$p2
    "$sd" serve --storage postgres --database-url "$url" --node-name "node-$n" --fsync "$policy" \
      --listen-resp "127.0.0.1:$port" --listen-memcache off --listen-line off --listen-http off \
      --log-level warn &
    pids+=($!)
    wait_port "$port"
  done
  nodes="127.0.0.1:$p1,127.0.0.1:$p2"
  record "$mode" cycle-native "$(bench --workload cycle-native --addr "$nodes" --conns "$CONNS" --keys "$KEYS" --label sessiond)"
  record "$mode" cycle-redis "$(bench --workload cycle-redis --addr "$nodes" --conns "$CONNS" --keys "$KEYS" --label sessiond)"
  record "$mode" contend-native "$(bench --workload contend --cycle native --addr "$nodes" --conns "$CONNS" --label sessiond)"
  record "$mode" contend-redis "$(bench --workload contend --cycle redis --addr "$nodes" --conns "$CONNS" --label sessiond)"
  record "$mode" handoff "$(bench --workload handoff --addr "$nodes" --conns 8 --label sessiond)"
  stop_nodes

  # The ceiling: pgbench running the nodes' statements on sessions of its own.
  psql_ -d "$db" -c "INSERT INTO sessiond_session (tenant, id, rev, place, version, created_ms, \
    accessed_ms, timeout_ms, expires_ms, flags, key_form, class, data, vars) \
    SELECT 'default', convert_to('pgbench:' || g, 'UTF8'), 1, hashtext('pgbench:' || g), 1, 0, 0, \
    9223372036854775807, 9223372036854775807, 0, 1, NULL, convert_to(repeat('x', $SIZE), 'UTF8'), NULL \
    FROM generate_series(1, $KEYS) AS g"
  for c in 8 "$CONNS"; do
    tps=$(PGOPTIONS="$pgopt" "$pgbin/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -n -M prepared \
      -c "$c" -j 2 -T "$SECS" -D keys="$KEYS" -D clients="$c" -f bench/cluster-cycle.sql "$db" 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    record "$mode" "pgbench-c$c" "{\"label\":\"pgbench\",\"conns\":$c,\"tx_per_s\":${tps:-0}}"
  done

  record "$mode" baseline "$(bench --workload pg-for-update --database-url "$url" "${async[@]}" --conns "$CONNS" --keys "$KEYS" --label symfony-for-update)"
  record "$mode" baseline-contend "$(bench --workload pg-for-update --database-url "$url" "${async[@]}" --conns "$CONNS" --keys 5 --label symfony-for-update)"
done

python3 - "$OUT" <<'PY'
import json, sys
rows = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    rows[(r["mode"], r["case"])] = r
def tx(m, c): return rows[(m, c)]["tx_per_s"]
def p99(m, c, k="latency_us"): return rows[(m, c)][k]["p99"] / 1000
print(f"PostgreSQL {rows[('sync', 'cycle-native')]['postgres']}; figures in cycles/s, p99 in ms.\n")
print("| commit | sessiond native cycle | phpredis cycle | pgbench ceiling (same statements) | native / ceiling | cross-node hand-off p50 / p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for m in ("sync", "async"):
    ceil = max(tx(m, c) for (mm, c) in rows if mm == m and c.startswith("pgbench"))
    h = rows[(m, "handoff")]["latency_us"]
    print(f"| {m} | {tx(m,'cycle-native'):,.0f} | {tx(m,'cycle-redis'):,.0f} | {ceil:,.0f} | {tx(m,'cycle-native')/ceil:.2f} | {h['p50']/1000:.1f} / {h['p99']/1000:.1f} |")
print()
print("| commit | case | tx/s | p99 ms | lock wait p99 ms | vs baseline tx/s | vs baseline p99 |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for m in ("sync", "async"):
    for base, cases in (("baseline", ("cycle-native", "cycle-redis")), ("baseline-contend", ("contend-native", "contend-redis"))):
        b = rows[(m, base)]
        print(f"| {m} | Symfony FOR UPDATE ({'5' if 'contend' in base else 'all'} sessions) | {b['tx_per_s']:,.0f} | {p99(m, base):.1f} | {p99(m, base, 'lock_wait_us'):.1f} | | |")
        for c in cases:
            r = rows[(m, c)]
            print(f"| {m} | sessiond {c} | {r['tx_per_s']:,.0f} | {p99(m, c):.1f} | {p99(m, c, 'lock_wait_us'):.1f} | {r['tx_per_s']/b['tx_per_s']:.2f}× | {p99(m, c)/p99(m, base):.2f}× |")
PY
