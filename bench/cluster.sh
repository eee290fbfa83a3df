#!/usr/bin/env bash
# Two sessiond nodes on one private database — PostgreSQL, then MariaDB —
# on this machine, in one run: locked PHP cycles per second through both
# nodes (native and phpredis), the cross-node lock hand-off, the
# database's own ceiling for the same statements (pgbench; PostgreSQL
# only), and the SQL baselines — Symfony PdoSessionHandler's transaction
# holding SELECT … FOR UPDATE, and on MariaDB the seeds' write-through
# handler (memcached in front, REPLACE INTO behind, no lock) — under
# synchronous and asynchronous commit. The contended cases count lost
# updates (--count).
#
#   bench/cluster.sh               # SECS=10 CONNS=50 KEYS=10000 SIZE=1024
#   DBS=mariadb bench/cluster.sh   # one database only
#
# For each database and commit mode — `sync` (nodes at --fsync always:
# every reply waits for a synchronous commit) and `async` (--fsync
# everysec: data writes commit asynchronously, lock grants still
# synchronously; on MariaDB, whose setting is the server's,
# innodb_flush_log_at_trx_commit = 2 for the whole mode) — a fresh
# database, two nodes (release build, default pool of 4 connections each),
# and the load generator `sessiond bench run` with its connections shared
# out over both nodes:
#   cycle-native   SESSION.OPEN … SESSION.CLOSE over KEYS sessions
#   cycle-redis    phpredis's four requests (SET NX PX, GET, SETEX, EVALSHA)
#   contend-*      the same over 5 sessions (CONNS clients fight over
#                  them), counted
#   handoff        a lock passed between a holder on one node and a waiter
#                  queued on the other (4 pairs): CLOSE sent → waiter granted
# then, with the nodes stopped:
#   pgbench        (PostgreSQL) bench/cluster-cycle.sql (the statements the
#                  nodes send for one native cycle, prepared), 8 and CONNS
#                  clients: the database's ceiling is the better of the two
#   for-update     the baseline, CONNS connections, over KEYS and over 5
#                  sessions (counted), its commits synchronous or not as
#                  the nodes'
#   write-through  (MariaDB) the seeds' handler over KEYS and over 5
#                  sessions (counted), a private memcached in front.
# Prints Markdown tables; the raw JSON lines stay in $OUT (default
# bench/cluster-results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONNS=${CONNS:-50}
KEYS=${KEYS:-10000}
SIZE=${SIZE:-1024}
DBS=${DBS:-postgres mariadb}
OUT=${OUT:-bench/cluster-results.jsonl}

# shellcheck source=bench/private-postgres.sh
. bench/private-postgres.sh
# shellcheck source=bench/private-mariadb.sh
. bench/private-mariadb.sh
command -v memcached >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null

: >"$OUT"
record() { # mode case json
  echo "{\"db\":\"$dbname\",\"mode\":\"$1\",\"case\":\"$2\",\"version\":\"$version\",${3#\{}" >>"$OUT"
  echo "$dbname $1 $2 $(echo "$3" | grep -o '"tx_per_s":[0-9.]*') $(echo "$3" | grep -o '"lost_updates":[0-9-]\+' || true)" >&2
}
bench() { "$sd" bench run --json --duration "$SECS" --size "$SIZE" "$@"; }

for dbname in $DBS; do
  case $dbname in
    postgres)
      start_postgres
      version=$(psql_ -d postgres -c "SHOW server_version")
      storage=postgres ;;
    mariadb)
      start_mariadb
      version=$(mysql_ -e "SELECT VERSION()")
      storage=mysql ;;
    *) echo "DBS: postgres and/or mariadb, not $dbname" >&2; exit 2 ;;
  esac
  for mode in sync async; do
    policy=always; async=(); pgopt=""
    if [ "$mode" = async ]; then policy=everysec; async=(--async-commit); pgopt="-c synchronous_commit=off"; fi
    db="sessiond_$mode"
    if [ "$dbname" = postgres ]; then
      psql_ -d postgres -c "CREATE DATABASE $db"
      url="postgres://postgres@127.0.0.1:$PGPORT/$db"
    else
      flush=1; [ "$mode" = async ] && flush=2
      mysql_ -e "CREATE DATABASE $db; SET GLOBAL innodb_flush_log_at_trx_commit = $flush"
      url="mysql://root@127.0.0.1:$MYPORT/$db"
    fi
    p1=$(free_port); p2=$(free_port)
    for n in 1 2; do
      port=$p1; [ "$n" = 2 ] && port=$p2
      "$sd" serve --storage "$storage" --database-url "$url" --node-name "node-$n" --fsync "$policy" \
        --listen-resp "127.0.0.1:$port" --listen-memcache off --listen-line off --listen-http off \
        --log-level warn &
      pids+=($!)
      wait_port "$port"
    done
    nodes="127.0.0.1:$p1,127.0.0.1:$p2"
    record "$mode" cycle-native "$(bench --workload cycle-native --addr "$nodes" --conns "$CONNS" --keys "$KEYS" --label sessiond)"
    record "$mode" cycle-redis "$(bench --workload cycle-redis --addr "$nodes" --conns "$CONNS" --keys "$KEYS" --label sessiond)"
    record "$mode" contend-native "$(bench --workload contend --cycle native --addr "$nodes" --conns "$CONNS" --count --label sessiond)"
    record "$mode" contend-redis "$(bench --workload contend --cycle redis --addr "$nodes" --conns "$CONNS" --count --label sessiond)"
    record "$mode" handoff "$(bench --workload handoff --addr "$nodes" --conns 8 --label sessiond)"
    stop_nodes

    if [ "$dbname" = postgres ]; then
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
    fi

    record "$mode" baseline "$(bench --workload for-update --database-url "$url" "${async[@]}" --conns "$CONNS" --keys "$KEYS" --label symfony-for-update)"
    record "$mode" baseline-contend "$(bench --workload for-update --database-url "$url" "${async[@]}" --conns "$CONNS" --keys 5 --count --label symfony-for-update)"
    if [ "$dbname" = mariadb ]; then
      mport=$(free_port)
      memcached -p "$mport" -l 127.0.0.1 -U 0 -u nobody -m 256 & pids+=($!)
      wait_mc() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null && return 0; sleep 0.1; done; exit 1; }
      wait_mc
      record "$mode" write-through "$(bench --workload write-through --addr "127.0.0.1:$mport" --database-url "$url" "${async[@]}" --conns "$CONNS" --keys "$KEYS" --label seed-write-through)"
      record "$mode" write-through-contend "$(bench --workload write-through --addr "127.0.0.1:$mport" --database-url "$url" "${async[@]}" --conns "$CONNS" --keys 5 --count --label seed-write-through)"
      stop_nodes
    fi
  done
done

python3 - "$OUT" <<'PY'
import json, sys
rows = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    rows[(r["db"], r["mode"], r["case"])] = r
dbs = list(dict.fromkeys(d for (d, _, _) in rows))
def tx(d, m, c): return rows[(d, m, c)]["tx_per_s"]
def p99(d, m, c, k="latency_us"):
    v = rows[(d, m, c)].get(k)
    return f"{v['p99'] / 1000:.1f}" if v else "–"
def lost(d, m, c):
    r = rows[(d, m, c)]
    if r.get("lost_updates") is None: return ""
    return f"{r['lost_updates']:,} of {r['acked_writes']:,}"
name = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}
print("; ".join(f"{name[d]} {rows[(d, 'sync', 'cycle-native')]['version']}" for d in dbs) + "; figures in cycles/s, p99 in ms.\n")
print("| database | commit | sessiond native cycle | phpredis cycle | pgbench ceiling (same statements) | native / ceiling | cross-node hand-off p50 / p99 ms |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for d in dbs:
    for m in ("sync", "async"):
        ceils = [tx(d, m, c) for (dd, mm, c) in rows if dd == d and mm == m and c.startswith("pgbench")]
        ceil = max(ceils) if ceils else None
        h = rows[(d, m, "handoff")]["latency_us"]
        c_s = f"{ceil:,.0f}" if ceil else "–"
        r_s = f"{tx(d, m, 'cycle-native') / ceil:.2f}" if ceil else "–"
        print(f"| {name[d]} | {m} | {tx(d, m, 'cycle-native'):,.0f} | {tx(d, m, 'cycle-redis'):,.0f} | {c_s} | {r_s} | {h['p50']/1000:.1f} / {h['p99']/1000:.1f} |")
print()
print("| database | commit | case | tx/s | p99 ms | lock wait p99 ms | lost updates | vs baseline tx/s | vs baseline p99 |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for d in dbs:
    for m in ("sync", "async"):
        for base, cases in (("baseline", ("cycle-native", "cycle-redis", "write-through")),
                            ("baseline-contend", ("contend-native", "contend-redis", "write-through-contend"))):
            b = rows[(d, m, base)]
            few = "5" if "contend" in base else "all"
            print(f"| {name[d]} | {m} | Symfony FOR UPDATE ({few} sessions) | {b['tx_per_s']:,.0f} | {p99(d, m, base)} | {p99(d, m, base, 'lock_wait_us')} | {lost(d, m, base)} | | |")
            for c in cases:
                if (d, m, c) not in rows: continue
                r = rows[(d, m, c)]
                what = f"seed write-through, no lock ({few} sessions)" if c.startswith("write") else f"sessiond {c}"
                print(f"| {name[d]} | {m} | {what} | {r['tx_per_s']:,.0f} | {p99(d, m, c)} | {p99(d, m, c, 'lock_wait_us')} | {lost(d, m, c)} | {r['tx_per_s']/b['tx_per_s']:.2f}× | {float(p99(d, m, c))/float(p99(d, m, base)):.2f}× |")
PY
