# Sourced by bench/cluster.sh and bench/cluster-profile.sh (not run on its
# own): sessiond's release build, and a private PostgreSQL cluster in a
# temporary directory on a free loopback port — never the system's
# service — stopped and removed on exit, with the nodes the script started.
#
# After sourcing: $sd (the sessiond binary), $pgbin, $work, $PGPORT,
# `pids` (the script's nodes: stopped by stop_nodes and on exit),
# free_port, wait_port PORT, psql_ ARGS…, stop_nodes, and
# start_postgres [-c name=value …] (extra server settings).

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
command -v redis-cli >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null
cargo build --release --quiet --bin sessiond
sd=target/release/sessiond

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }
work=$(mktemp -d)
pids=()
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$work"; as_pg=(runuser -u postgres --); fi
PGPORT=$(free_port)
stop_nodes() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_nodes
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
start_postgres() {
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 >/dev/null
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $work -c max_connections=300 $*" start >/dev/null
}
psql_() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qAt "$@"; }
