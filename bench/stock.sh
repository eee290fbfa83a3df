#!/usr/bin/env bash
# Stock load tools against sessiond and its peer, alternating rounds
# (sessiond, peer, sessiond, …), medians and their ratio in a markdown
# table: the tools users already run, not our own generator.
#
#   bench/stock.sh                  # ROUNDS=3
#
# - redis-benchmark (redis-tools): SET and GET of 1 KiB over 1,000 keys,
#   50 connections, one request at a time and 16 pipelined
#   (`-c 50 -d 1024 -r 1000 -n N -t set,get [-P 16]`), against
#   redis-server without RDB/AOF.
# - memslap (libmemcached-tools' `memcslap`): set then get of its own keys
#   (alphanumeric, 50-60 bytes) and values (random sizes up to a few KiB),
#   50 threads of one connection each (`-t set|get -c 50 -e E -N`),
#   against memcached as installed (its default 4 threads). Its sibling
#   `memcaslap` sends keys that begin with control bytes (0x10), which
#   memcached takes and sessiond refuses (a session id never holds one,
#   docs/protocol-memcache.md), so it measures nothing here.
#
# sessiond runs `--storage memory`, `--threads 1` against Redis (which
# runs one), its default threads (one per core) against memcached (its
# default 4). Every server shares the 2 cores with the tool; requests/s
# swing ±10 % between identical rounds, hence the alternation and the
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
N=${N:-200000}        # requests per redis-benchmark test
N_PIPE=${N_PIPE:-2000000}
E=${E:-4000}          # memslap operations per thread
BASE=${BASE:-17400}
SD_RESP=$((BASE + 1)) SD_MC=$((BASE + 2)) REDIS=$((BASE + 3)) MEMC=$((BASE + 4)) SD_SPARE=$((BASE + 5))

. bench/lib.sh
need "apt-get install redis-server redis-tools memcached libmemcached-tools python3" \
  redis-server redis-benchmark memcached memcslap python3
cargo build --release --quiet --bin sessiond
B=target/release/sessiond
trap stop_all EXIT

# Each peer as installed, and sessiond as many threads: one against Redis
# (one thread), its default (one per core) against memcached (its
# default, 4).
"$B" serve --threads 1 --storage memory --listen-resp "127.0.0.1:$SD_RESP" \
  --listen-memcache off --listen-http off --log-level warn &
pids+=($!)
"$B" serve --storage memory --listen-resp "127.0.0.1:$SD_SPARE" \
  --listen-memcache "127.0.0.1:$SD_MC" --listen-http off --log-level warn &
pids+=($!)
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
# As root memcached wants a user to run as.
memcached -p "$MEMC" -l 127.0.0.1 -U 0 -m 1024 -u "$(id -un)" &
pids+=($!)
for p in "$SD_RESP" "$SD_MC" "$REDIS" "$MEMC"; do wait_port "$p"; done

results=$(mktemp)
# redis-bench PORT PIPELINE: "SET <rps> GET <rps>".
redis_bench() {
  local n=$N
  [ "$2" -gt 1 ] && n=$N_PIPE
  redis-benchmark -p "$1" -c 50 -d 1024 -r 1000 -n "$n" -t set,get -P "$2" -q 2>/dev/null |
    tr '\r' '\n' | grep 'requests per second' | sed 's/ requests per second.*//; s/://'
}
# memslap PORT TEST: operations per second.
memslap() {
  local secs
  secs=$(memcslap -s "127.0.0.1:$1" -t "$2" -c 50 -e "$E" -N 2>&1 |
    awk -v t="$2" '$1 == "Time" && $3 == t { print $(NF-1) }')
  python3 -c "print(round(50 * $E / $secs))"
}
for r in $(seq 1 "$ROUNDS"); do
  for who in sessiond peer; do
    [ "$who" = sessiond ] && rp=$SD_RESP mp=$SD_MC || rp=$REDIS mp=$MEMC
    for pipe in 1 16; do
      redis_bench "$rp" "$pipe" | while read -r test rps; do
        echo "redis-benchmark $test -P$pipe $who $rps" >>"$results"
      done
    done
    for test in set get; do
      echo "memslap $test - $who $(memslap "$mp" "$test")" >>"$results"
    done
  done
done

echo "Machine: $(nproc) cores. sessiond $($B --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(redis-server --version | awk '{print $1, $3}' | tr -d 'v='), $(memcached -V), $(memcslap --version 2>&1 | head -1)."
echo "Command: \`ROUNDS=$ROUNDS bench/stock.sh\` (N=$N N_PIPE=$N_PIPE E=$E)."
echo
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tool, test, pipe, who, value = line.split()
    rows.setdefault((tool, test, pipe), {}).setdefault(who, []).append(float(value))
print("| tool | test | sessiond (rounds) | peer (rounds) | ratio of medians |")
print("| --- | --- | --- | --- | ---: |")
for (tool, test, pipe), by in rows.items():
    name = test if pipe in ("-", "-P1") else f"{test}, -P {pipe[2:]}"
    fmt = lambda xs: " / ".join(f"{x / 1000:,.0f}k" for x in xs)
    ratio = statistics.median(by["sessiond"]) / statistics.median(by["peer"])
    print(f"| {tool} | {name} | {fmt(by['sessiond'])} | {fmt(by['peer'])} | {ratio:.2f}× |")
EOF
rm -f "$results"
