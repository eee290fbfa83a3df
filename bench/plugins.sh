#!/usr/bin/env bash
# A server-side function's cost (issue 20): the per-session rate limit of
# docs/plugins/rate_limit.lua run four ways, with the same load generator
# (`sessiond bench`), alternating round by round:
#
#   rate-limit-plugin          SESSION.PLUGIN id rate_limit …   (sessiond)
#   rate-limit-commands        the same logic as 4 native commands (sessiond)
#   rate-limit-script          the same logic as a Redis script on two keys,
#                              EVALSHA                        (sessiond, Redis)
#   rate-limit-redis-commands  the script's logic as GET GET SET SET
#                                                             (sessiond, Redis)
#
#   bench/plugins.sh            # ROUNDS=3 SECS=4 WARMUP=1 CONNS=50
#
# Persistence off for both (sessiond --storage memory, redis-server without
# RDB/AOF); sessiond on one runtime thread (SD_THREADS=1) as Redis runs one,
# the generator on one, on this 2-core machine. Prints the medians and the
# ratios as a Markdown table (BENCHMARKS.md holds one run's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
KEYS=${KEYS:-10000}
SD_THREADS=${SD_THREADS:-1}
BASE=${BASE:-17100}
SD=$((BASE + 1)) REDIS=$((BASE + 2))

command -v redis-server >/dev/null 2>&1 || {
  echo "redis-server is needed (apt-get install redis-server)" >&2
  exit 1
}
cargo build --release --quiet --bin sessiond
B=target/release/sessiond
work=$(mktemp -d)
. bench/lib.sh
trap 'stop_all; rm -rf "$work"' EXIT

$B serve --threads "$SD_THREADS" --listen-resp "127.0.0.1:$SD" --listen-http off \
  --storage memory --plugins-dir docs/plugins --log-level warn &
pids+=($!)
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --loglevel warning >/dev/null &
pids+=($!)
wait_port "$SD"
wait_port "$REDIS"

results="$work/results.jsonl"
one() { # CASE SYSTEM PORT
  local line
  line=$($B bench run --threads 1 --json --addr "127.0.0.1:$3" --label "$2" --conns "$CONNS" \
    --duration "$SECS" --warmup "$WARMUP" --keys "$KEYS" --workload "$1")
  echo "{\"case\":\"$1\",\"system\":\"$2\",${line#\{}" >>"$results"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-26s %-9s %9.0f tx/s  p99 %6.0f us  errors %d" % (sys.argv[2], sys.argv[3], r["tx_per_s"], r["latency_us"]["p99"], r["errors"]))' \
    "$line" "$1" "$2" >&2
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order=(sessiond redis); else order=(redis sessiond); fi
  one rate-limit-plugin sessiond "$SD"
  one rate-limit-commands sessiond "$SD"
  for sys in "${order[@]}"; do
    port=$SD; [ "$sys" = redis ] && port=$REDIS
    one rate-limit-script "$sys" "$port"
    one rate-limit-redis-commands "$sys" "$port"
  done
done

python3 - "$results" "$ROUNDS" "$SECS" "$CONNS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(case, system, key=lambda r: r["tx_per_s"]):
    v = [key(r) for r in rows if r["case"] == case and r["system"] == system]
    return statistics.median(v) if v else None
print(f"\n{sys.argv[2]} rounds of {sys.argv[3]} s, {sys.argv[4]} connections; medians.\n")
print("| how the rate limit runs | sessiond tx/s | Redis tx/s | sessiond p99 µs | Redis p99 µs |")
print("| --- | ---: | ---: | ---: | ---: |")
names = {
    "rate-limit-plugin": "plugin function (`SESSION.PLUGIN`), 1 round trip",
    "rate-limit-commands": "the same as native commands, 4 round trips",
    "rate-limit-script": "Redis script (`EVALSHA`), 1 round trip",
    "rate-limit-redis-commands": "the script as Redis commands, 4 round trips",
}
for case, name in names.items():
    cells = []
    for key in (lambda r: r["tx_per_s"], lambda r: r["latency_us"]["p99"]):
        for system in ("sessiond", "redis"):
            m = med(case, system, key)
            cells.append("–" if m is None else f"{m:,.0f}")
    print(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
p, c = med("rate-limit-plugin", "sessiond"), med("rate-limit-commands", "sessiond")
s, r = med("rate-limit-script", "sessiond"), med("rate-limit-script", "redis")
rc = med("rate-limit-redis-commands", "redis")
print(f"\nplugin call / the same as commands (sessiond): {p / c:.2f}×")
print(f"plugin call / the same script on Redis: {p / r:.2f}×")
print(f"script on sessiond / the same script on Redis: {s / r:.2f}×")
print(f"script / the same as commands, on Redis: {r / rc:.2f}×")
PY
