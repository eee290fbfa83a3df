#!/usr/bin/env bash
# sessiond vs Redis vs memcached on this machine, in the same run, with the
# same load generator (`sessiond bench`), alternating the systems round by
# round (A B A B …), then RSS after loading 1,000,000 sessions of 1 KiB.
# Writes the results into BENCHMARKS.md between its compare.sh markers.
#
#   bench/compare.sh                # ROUNDS=3 SECS=4 WARMUP=1 CONNS=50
#
# Settings are matched: persistence off for all (sessiond --storage memory,
# redis-server without RDB/AOF, memcached), then fsync always (sessiond
# --fsync always, redis AOF appendfsync always), then everysec. memcached
# has no persistence and runs in the first part only. The generator runs on
# GEN_THREADS runtime threads (default 1) and the servers share the rest of
# the machine: on 2 cores that is one core each, so sessiond runs with
# SD_THREADS=1 (its single-threaded runtime), as Redis runs one thread;
# SD_THREADS=0 gives it one thread per core. An echo server driven the same
# way gives the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
GEN_THREADS=${GEN_THREADS:-1}
SD_THREADS=${SD_THREADS:-1}
RSS_KEYS=${RSS_KEYS:-1000000}
OUT=${OUT:-BENCHMARKS.md}
BASE=${BASE:-17000}
SD_RESP=$((BASE + 1)) SD_MC=$((BASE + 2)) REDIS=$((BASE + 3)) MEMC=$((BASE + 4)) ECHO=$((BASE + 5))

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v memcached >/dev/null 2>&1 || need+=(memcached)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
started=$(date +%s)
cargo build --release --quiet --bin sessiond
B=target/release/sessiond
work=$(mktemp -d)
results="$work/results.jsonl"
. bench/lib.sh
trap 'stop_all; rm -rf "$work"' EXIT

# start_all MODE: off | always | everysec
start_all() {
  local mode=$1 sd_store=(--storage memory) redis_persist=(--appendonly no)
  if [ "$mode" != off ]; then
    rm -rf "$work/sd" "$work/redis" && mkdir -p "$work/sd" "$work/redis"
    sd_store=(--storage log --data-dir "$work/sd" --fsync "$mode")
    redis_persist=(--appendonly yes --appendfsync "$mode" --dir "$work/redis")
  fi
  $B serve ${SD_THREADS:+--threads $SD_THREADS} --listen-resp "127.0.0.1:$SD_RESP" --listen-memcache "127.0.0.1:$SD_MC" \
    "${sd_store[@]}" --log-level warn &
  pids+=($!)
  redis-server --port "$REDIS" --bind 127.0.0.1 --save "" "${redis_persist[@]}" \
    --daemonize no --loglevel warning >/dev/null &
  pids+=($!)
  wait_port "$SD_RESP"; wait_port "$SD_MC"; wait_port "$REDIS"
  if [ "$mode" = off ]; then
    memcached -p "$MEMC" -l 127.0.0.1 -U 0 -m 4096 -u nobody &
    pids+=($!)
    $B bench echo-server --listen "127.0.0.1:$ECHO" 2>/dev/null &
    pids+=($!)
    wait_port "$MEMC"; wait_port "$ECHO"
  fi
}

# one MODE ROUND CASE SYSTEM ADDR [bench flags…]
one() {
  local mode=$1 round=$2 case=$3 system=$4 addr=$5
  shift 5
  local line extra=()
  [ "$system" = echo ] && extra=(--proto echo)
  line=$($B bench run "${extra[@]}" --threads "$GEN_THREADS" --json --addr "$addr" --label "$system" \
    --conns "$CONNS" --duration "$SECS" --warmup "$WARMUP" "$@")
  echo "{\"mode\":\"$mode\",\"round\":$round,\"case\":\"$case\",\"system\":\"$system\",${line#\{}" >>"$results"
  printf '%-9s %-15s %-10s %s\n' "$mode" "$case" "$system" \
    "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%10.0f tx/s  p99 %.0f us" % (r["tx_per_s"], r["latency_us"]["p99"]))' "$line")" >&2
}

# pair MODE ROUND CASE "sysA addrA" "sysB addrB" … -- [flags]: the systems
# in the given order on odd rounds, reversed on even ones.
pair() {
  local mode=$1 round=$2 case=$3
  shift 3
  local systems=()
  while [ "$1" != -- ]; do systems+=("$1"); shift; done
  shift
  if [ $((round % 2)) -eq 0 ]; then
    local rev=()
    for ((i = ${#systems[@]} - 1; i >= 0; i--)); do rev+=("${systems[$i]}"); done
    systems=("${rev[@]}")
  fi
  for s in "${systems[@]}"; do
    # shellcheck disable=SC2086
    one "$mode" "$round" "$case" $s "$@"
  done
}

sd="sessiond 127.0.0.1:$SD_RESP"
sdmc="sessiond 127.0.0.1:$SD_MC"
redis="redis 127.0.0.1:$REDIS"
memc="memcached 127.0.0.1:$MEMC"
echo_="echo 127.0.0.1:$ECHO"

start_all off
for round in $(seq 1 "$ROUNDS"); do
  # The echo server gets the same RESP requests, as `--proto echo`.
  pair off "$round" raw "$sd" "$redis" "$echo_" -- --workload raw
  pair off "$round" raw-memcache "$sdmc" "$memc" -- --workload raw --proto memcache-text
  pair off "$round" raw-pipeline16 "$sd" "$redis" -- --workload raw --pipeline 16
  pair off "$round" cycle-redis "$sd" "$redis" -- --workload cycle-redis
  pair off "$round" cycle-memcache "$sdmc" "$memc" -- --workload cycle-memcache
  pair off "$round" cycle-native "$sd" -- --workload cycle-native
  pair off "$round" contend-native "$sd" -- --workload contend --cycle native
  pair off "$round" contend-redis "$redis" "$sd" -- --workload contend --cycle redis
  pair off "$round" contend-memcache "$memc" "$sdmc" -- --workload contend --cycle memcache
done
stop_all

for mode in always everysec; do
  start_all "$mode"
  for round in $(seq 1 "$ROUNDS"); do
    pair "$mode" "$round" raw "$sd" "$redis" -- --workload raw
    pair "$mode" "$round" cycle-redis "$sd" "$redis" -- --workload cycle-redis
    pair "$mode" "$round" cycle-native "$sd" -- --workload cycle-native
  done
  stop_all
done

# Memory: a fresh server of each kind, RSS after loading RSS_KEYS × 1 KiB
# (data: opaque), then fresh ones again for RSS_KEYS realistic sessions of
# 826 bytes: a PHP `$_SESSION` of 10 entries and an express JSON session
# (`--data php|json`, stored with SETEX as phpredis and connect-redis do).
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
load_rss() {
  local system=$1 pid=$2 addr=$3 proto=$4 data=${5:-opaque} before after size=1024
  [ "$data" = opaque ] || size=826
  before=$(rss "$pid")
  $B bench run --threads "$GEN_THREADS" --workload load --keys "$RSS_KEYS" --proto "$proto" --addr "$addr" --conns 4 --data "$data" --size "$size" >/dev/null
  sleep 1
  after=$(rss "$pid")
  echo "{\"mode\":\"rss\",\"system\":\"$system\",\"data\":\"$data\",\"size\":$size,\"keys\":$RSS_KEYS,\"rss_before_kib\":$before,\"rss_kib\":$after}" >>"$results"
  echo "rss $system, $data: $((after / 1024)) MiB" >&2
}
start_all off
load_rss sessiond "${pids[0]}" "127.0.0.1:$SD_RESP" resp
load_rss redis "${pids[1]}" "127.0.0.1:$REDIS" resp
load_rss memcached "${pids[2]}" "127.0.0.1:$MEMC" memcache-text
stop_all
for data in php json; do
  start_all off
  load_rss sessiond "${pids[0]}" "127.0.0.1:$SD_RESP" resp "$data"
  load_rss redis "${pids[1]}" "127.0.0.1:$REDIS" resp "$data"
  if [ "$data" = php ]; then
    # FIND on those 1M sessions, one client, index hit (user_id, one
    # session) and a page of the unindexed walk (role).
    for q in "SESSION.FIND user_id 0000000000000001" "SESSION.FIND role member CURSOR 0 COUNT 100"; do
      # shellcheck disable=SC2086
      summary=$(redis-benchmark -h 127.0.0.1 -p "$SD_RESP" -c 1 -n "${FIND_N:-2000}" $q | tr '\r' '\n' | awk '/^ *avg +min/ {getline; print}')
      read -r avg min p50 p95 p99 max <<<"$summary"
      echo "{\"mode\":\"find\",\"query\":\"$q\",\"keys\":$RSS_KEYS,\"avg_ms\":$avg,\"p50_ms\":$p50,\"p99_ms\":$p99,\"max_ms\":$max}" >>"$results"
      echo "find '$q': p50 $p50 ms, p99 $p99 ms" >&2
    done
  fi
  stop_all
done

elapsed=$(($(date +%s) - started))
machine="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
versions="sessiond $($B --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(redis-server --version | awk '{print $1, $3}' | tr -d 'v='), $(memcached -V), $(rustc --version | awk '{print $1, $2}')"
cp "$results" "${RESULTS_COPY:-bench/last-results.jsonl}"
python3 bench/report.py "$results" "$OUT" "$machine" "$versions" \
  "ROUNDS=$ROUNDS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS GEN_THREADS=$GEN_THREADS SD_THREADS=$SD_THREADS bench/compare.sh" "$elapsed"
echo "compare.sh: done in ${elapsed}s; results in $OUT" >&2
