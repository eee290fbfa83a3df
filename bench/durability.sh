#!/usr/bin/env bash
# Session-write throughput with durability on: sessiond vs Redis, on this
# machine, in the same run, alternating A B A B.
#
#   bench/durability.sh            # ROUNDS=3 SECS=10 CONNS=50 SIZE=1024
#
# For each fsync policy (always, everysec): sessiond with --fsync P and
# redis-server with --appendonly yes --appendfsync P, both on loopback with
# fresh data directories; the load is `sessiond bench run --workload raw
# --mix 0:1` (closed loop, CONNS connections, each writing SIZE-byte values
# with `SET` to 10,000 sessions — the same command to both servers). Prints
# a Markdown table of medians (min–max) and the sessiond/Redis ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CONNS=${CONNS:-50}
SIZE=${SIZE:-1024}
SD_PORT=${SD_PORT:-16390}
REDIS_PORT=${REDIS_PORT:-16379}

if ! command -v redis-server >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
cargo build --release --quiet --bin sessiond
work=$(mktemp -d)
results="$work/results.jsonl"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }

for policy in always everysec; do
  mkdir -p "$work/redis-$policy" "$work/sd-$policy"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$work/redis-$policy" \
    --appendonly yes --appendfsync "$policy" --save "" --daemonize no --loglevel warning >/dev/null &
  pids+=($!)
  target/release/sessiond serve --listen-resp "127.0.0.1:$SD_PORT" --data-dir "$work/sd-$policy" \
    --fsync "$policy" --log-level warn &
  pids+=($!)
  wait_port "$REDIS_PORT"; wait_port "$SD_PORT"
  for round in $(seq 1 "$ROUNDS"); do
    order="sessiond redis"; [ $((round % 2)) -eq 0 ] && order="redis sessiond"
    for t in $order; do
      port=$SD_PORT; [ "$t" = redis ] && port=$REDIS_PORT
      line=$(target/release/sessiond bench run --json --workload raw --mix 0:1 --addr "127.0.0.1:$port" \
        --conns "$CONNS" --duration "$SECS" --size "$SIZE" --label "$t")
      echo "{\"policy\":\"$policy\",\"round\":$round,\"target\":\"$t\",${line#\{}" >>"$results"
      echo "$policy $t $(echo "$line" | grep -o '"tx_per_s":[0-9.]*')" >&2
    done
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| fsync | system | writes/s median (min–max) | p50 µs | p99 µs | ratio sessiond/Redis |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for policy in ("always", "everysec"):
    med = {}
    for t in ("sessiond", "redis"):
        r = [x for x in rows if x["policy"] == policy and x["target"] == t]
        w = [x["tx_per_s"] for x in r]
        med[t] = statistics.median(w)
        p50 = statistics.median(x["latency_us"]["p50"] for x in r)
        p99 = statistics.median(x["latency_us"]["p99"] for x in r)
        ratio = f'{med["sessiond"] / med["redis"]:.2f}' if t == "redis" else ""
        print(f"| {policy} | {t} | {med[t]:,.0f} ({min(w):,.0f}–{max(w):,.0f}) | {p50:.0f} | {p99:.0f} | {ratio} |")
PY
