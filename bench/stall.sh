#!/usr/bin/env bash
# Do cross-session commands stall other clients? (issue 15)
#
#   bench/stall.sh                 # SESSIONS=1000000 HOGS=20 REPEAT=5
#   MAX_REPLY_ITEMS=2000000 bench/stall.sh   # let LIST/KEYS/LISTVAR answer all
#
# Starts the release binary with its defaults (two request workers, memory
# storage so the load is quick, max_output_buffer 4 MiB so twenty clients
# that never read cross it within their first pages), loads SESSIONS
# sessions with a user_id each, and runs `sessiond bench stall`: every heavy
# command once from one connection while another PINGs every 10 ms from a
# thread of its own; each PING's wait is charged to the command running
# when it was sent. Then HOGS clients pipeline 40 SESSION.SCAN pages each
# and never read. Prints a Markdown table (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-1000000}
HOGS=${HOGS:-20}
REPEAT=${REPEAT:-5}
MAX_REPLY_ITEMS=${MAX_REPLY_ITEMS:-100000}
PORT=${PORT:-16392}
cargo build --release --quiet --bin sessiond
work=$(mktemp -d)
cat > "$work/sessiond.toml" <<TOML
storage = "memory"
listen_resp = "127.0.0.1:$PORT"
listen_memcache = "off"
listen_line = "off"
listen_http = "off"
log_level = "warn"

[limits]
max_output_buffer = 4194304
max_reply_items = $MAX_REPLY_ITEMS
TOML
target/release/sessiond serve --config "$work/sessiond.toml" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
target/release/sessiond bench stall --addr "127.0.0.1:$PORT" --sessions "$SESSIONS" --hogs "$HOGS" --repeat "$REPEAT"
