#!/usr/bin/env bash
# User-space instructions per request: sessiond against Redis and memcached,
# each server under valgrind's callgrind, driven by the same load generator
# with the same load. Instruction counts do not drift with what else the
# machine does (wall-clock throughput on a shared 2-core VM swings ±20 %
# between identical runs), so this is the figure to compare builds by.
#
#   bench/instructions.sh                 # every case, a markdown table
#   bench/instructions.sh set get         # some cases
#   PROFILE=set bench/instructions.sh set # and the per-function profile
#   KEEP=/tmp/cg bench/instructions.sh    # keep the callgrind files there
#
# Cases (requests of 1 KiB values over 1,000 keys, 10 connections):
#   set get             redis-benchmark -t set|get, one request at a time
#   set-p16 get-p16     the same, 16 requests pipelined per connection
#   mc-set mc-get       memcached text set/get (`sessiond bench raw`), the
#                       memcached door against memcached
#   cycle-redis         phpredis's locked cycle (SET NX PX, GET, SETEX,
#                       EVALSHA unlock) per transaction
#   cycle-memcache      php-memcached's (add lock, get, set, delete; binary)
#   cycle-native        sessiond's own cycle (SESSION.OPEN, SESSION.CLOSE),
#                       against Redis's cycle-redis
#
# How: each server starts under callgrind (sessiond `--threads 1 --storage
# memory`, redis-server without RDB/AOF, memcached as installed), a warm-up
# load runs, the counters are zeroed (`callgrind_control -z`), the measured
# load runs, the counters are dumped (`callgrind_control -d`). Every thread
# of the server counts; the kernel's work does not (it is the same for
# every server here: one read and one write per request or batch).
# Instructions per request = the dump's total / requests answered (from
# redis-benchmark's -n, or the generator's count); per transaction for
# the cycles.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}            # requests per unpipelined redis-benchmark case
N_PIPE=${N_PIPE:-200000} # per pipelined case
SECS=${SECS:-6}          # seconds per generator case
CONNS=${CONNS:-10}
BASE=${BASE:-17100}
SD_RESP=$((BASE + 1)) SD_MC=$((BASE + 2)) REDIS=$((BASE + 3)) MEMC=$((BASE + 4))
ALL=(set get set-p16 get-p16 mc-set mc-get cycle-redis cycle-memcache cycle-native)
CASES=("$@")
[ ${#CASES[@]} -eq 0 ] && CASES=("${ALL[@]}")

. bench/lib.sh
need "apt-get install valgrind redis-server redis-tools memcached" \
  valgrind callgrind_control redis-server redis-benchmark memcached
cargo build --release --quiet --bin sessiond
B=target/release/sessiond
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
cleanup() {
  stop_all
  [ -z "${KEEP:-}" ] && rm -rf "$work"
  return 0
}
trap cleanup EXIT

# grind NAME CMD…: starts CMD under callgrind; its pid in $grind_pid.
grind() {
  local name=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.%p" "$@" \
    >"$work/$name.log" 2>&1 &
  grind_pid=$!
  pids+=("$grind_pid")
}

# counted PID NAME CMD…: zeroes PID's counters, runs CMD (its stdout kept
# in $work/last), dumps the counters: the file in $dump, the total in
# $total.
counted() {
  local pid=$1 name=$2
  shift 2
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$@" >"$work/last" 2>/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=$(ls -t "$work/$name.$pid".* | head -1)
  total=$(awk '/^(totals|summary):/ {print $2; exit}' "$dump")
}

# profile SYSTEM DUMP N: the functions of DUMP with the most instructions
# of their own, per request (of N).
profile() {
  echo "== $case on $1: instructions per request by function (self cost)" >&2
  # Lines at 100 % are the frames every cost is also filed under (main and
  # the runtime, inlined); left out.
  callgrind_annotate --threshold=100 --inclusive=no "$2" 2>/dev/null |
    sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \( *[0-9]' | grep -v '(100.0%)' |
    head -40 | N=$3 awk '{ n = $1; gsub(/,/, "", n); $1 = sprintf("%7.0f", n / ENVIRON["N"]); $2 = ""; print }' >&2
}

# gen KEY: a field of the generator's JSON report in $work/last.
gen() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/last" "$1"; }

rb() { redis-benchmark -p "$1" -c "$CONNS" -d 1024 -r 1000 "${@:2}" -q; }
bench() { $B bench run --threads 1 --json --conns "$CONNS" --size 1024 --keys 1000 "$@"; }

# case_on SYSTEM PID PORT: measures the current $case on one server; prints
# instructions per request (or per transaction for the cycles).
case_on() {
  local system=$1 pid=$2 port=$3 n
  case $case in
    set | get)
      # Every key written first, so a GET finds its 1 KiB value whatever
      # ran before (-r 1000 picks keys at random: 20,000 writes leave
      # none of the 1,000 out).
      rb "$port" -t set -P 16 -n 20000 >/dev/null 2>&1
      rb "$port" -t "$case" -n 3000 >/dev/null 2>&1
      counted "$pid" "$system" rb "$port" -t "$case" -n "$N"
      n=$N ;;
    set-p16 | get-p16)
      rb "$port" -t set -P 16 -n 20000 >/dev/null 2>&1
      rb "$port" -t "${case%-p16}" -P 16 -n 20000 >/dev/null 2>&1
      counted "$pid" "$system" rb "$port" -t "${case%-p16}" -P 16 -n "$N_PIPE"
      n=$N_PIPE ;;
    mc-set | mc-get)
      local mix=1:0
      [ "$case" = mc-set ] && mix=0:1
      bench --addr "127.0.0.1:$port" --proto memcache-text --workload raw --mix "$mix" --duration 1 --warmup 0 >/dev/null
      counted "$pid" "$system" bench --addr "127.0.0.1:$port" --proto memcache-text --workload raw --mix "$mix" \
        --duration "$SECS" --warmup 0 --no-preload
      n=$(gen requests) ;;
    cycle-*)
      bench --addr "127.0.0.1:$port" --workload "$workload" --duration 1 --warmup 0 >/dev/null
      counted "$pid" "$system" bench --addr "127.0.0.1:$port" --workload "$workload" \
        --duration "$SECS" --warmup 0 --no-preload
      n=$(gen transactions) ;;
  esac
  [ "$n" -gt 0 ] || { echo "$case on $system: nothing answered" >&2; exit 1; }
  [ "${PROFILE:-}" = "$case" ] && profile "$system" "$dump" "$n"
  echo $((total / n))
}

grind sessiond "$B" serve --threads 1 --storage memory --listen-resp "127.0.0.1:$SD_RESP" \
  --listen-memcache "127.0.0.1:$SD_MC" --listen-http off --log-level warn
sd=$grind_pid
grind redis redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning
rd=$grind_pid
# memcached sets its open-files limit, hard limit included, to its
# connection limit; valgrind keeps 12 descriptors of the hard limit. It runs
# as root (-u root): callgrind_control cannot reach a process that changed
# user.
(ulimit -Sn 1024 && ulimit -Hn 1024 && exec valgrind --tool=callgrind \
  --callgrind-out-file="$work/memcached.%p" memcached -p "$MEMC" -l 127.0.0.1 -U 0 -m 1024 -c 1012 -u root) \
  >"$work/memcached.log" 2>&1 &
grind_pid=$!
pids+=("$grind_pid")
mc=$grind_pid
wait_port "$SD_RESP" 60; wait_port "$SD_MC" 60; wait_port "$REDIS" 60; wait_port "$MEMC" 60

echo "Machine: $(nproc) cores, $(uname -r). sessiond $($B --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(redis-server --version | awk '{print $1, $3}' | tr -d 'v='), $(memcached -V), $(valgrind --version)."
echo "Command: \`bench/instructions.sh${*:+ $*}\` (N=$N N_PIPE=$N_PIPE SECS=$SECS CONNS=$CONNS)."
echo
echo "| case | sessiond | peer | peer's | ratio |"
echo "| --- | ---: | --- | ---: | ---: |"
for case in "${CASES[@]}"; do
  workload=$case
  case $case in
    set | get | set-p16 | get-p16) ours=$(case_on sessiond "$sd" "$SD_RESP"); peer=redis; theirs=$(case_on redis "$rd" "$REDIS") ;;
    mc-set | mc-get) ours=$(case_on sessiond "$sd" "$SD_MC"); peer=memcached; theirs=$(case_on memcached "$mc" "$MEMC") ;;
    cycle-redis) ours=$(case_on sessiond "$sd" "$SD_RESP"); peer=redis; theirs=$(case_on redis "$rd" "$REDIS") ;;
    cycle-memcache) ours=$(case_on sessiond "$sd" "$SD_MC"); peer=memcached; theirs=$(case_on memcached "$mc" "$MEMC") ;;
    cycle-native)
      ours=$(case_on sessiond "$sd" "$SD_RESP")
      workload=cycle-redis peer="redis (cycle-redis)" theirs=$(case_on redis "$rd" "$REDIS") ;;
    *) echo "unknown case $case (cases: ${ALL[*]})" >&2; exit 1 ;;
  esac
  python3 -c 'import sys; c, o, p, t = sys.argv[1:]; print(f"| {c} | {int(o):,} | {p} | {int(t):,} | {int(o) / int(t):.2f}× |")' \
    "$case" "$ours" "$peer" "$theirs"
done
