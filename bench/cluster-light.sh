#!/usr/bin/env bash
# Two sessiond builds side by side under light load: two nodes of each in
# turn on one private PostgreSQL, the native locked cycle (SESSION.OPEN …
# SESSION.CLOSE) from CONNS connections, alternating builds over ROUNDS
# rounds — for before/after comparisons of the round trips a cycle costs,
# which a saturated run (bench/cluster.sh) hides behind the database's CPU.
#
#   git worktree add /tmp/before <commit>
#   (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release --bin sessiond)
#   bench/cluster-light.sh /tmp/before-target/release/sessiond target/release/sessiond
#
# CONNS=2 ROUNDS=2 SECS=8 KEYS=10000 by default; nodes at --fsync always.
# The load generator is this tree's. Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-2}
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-8}
KEYS=${KEYS:-10000}
[ "$#" -ge 1 ] || { echo "usage: $0 SESSIOND_BINARY…" >&2; exit 2; }

# shellcheck source=bench/private-postgres.sh
. bench/private-postgres.sh
start_postgres

run=0
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    run=$((run + 1))
    db="light_$run"
    psql_ -d postgres -c "CREATE DATABASE $db"
    url="postgres://postgres@127.0.0.1:$PGPORT/$db"
    p1=$(free_port); p2=$(free_port)
    for port in "$p1" "$p2"; do
      "$bin" serve --storage postgres --database-url "$url" --node-name "node-$port" --fsync always \
        --listen-resp "127.0.0.1:$port" --listen-memcache off --listen-line off --listen-http off \
        --log-level warn &
      pids+=($!)
      wait_port "$port"
    done
    "$sd" bench run --json --duration "$SECS" --size 1024 --workload cycle-native \
      --addr "127.0.0.1:$p1,127.0.0.1:$p2" --conns "$CONNS" --keys "$KEYS" --label light \
      | python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_us"]
conns, tx, p50, p99 = r["conns"], r["tx_per_s"], l["p50"] / 1000, l["p99"] / 1000
print(f"round {sys.argv[1]}  {sys.argv[2]}  conns {conns}  {tx:,.0f} cycles/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
' "$round" "$bin"
    stop_nodes
  done
done
