# Sourced by bench/cluster.sh (not run on its own), after
# bench/private-postgres.sh (its free_port and cleanup): a private MariaDB
# server in a temporary directory of its own, on a free loopback port and a
# socket there — never the system's service — killed and removed on exit
# with everything else.
#
# After sourcing: $MYPORT, start_mariadb [--name=value …] (extra server
# settings), mysql_ ARGS… (the client, as root, over the socket).

MYPORT=$(free_port)
mywork=$(mktemp -d)
mybin=/usr/sbin/mariadbd
if [ ! -x "$mybin" ] || ! command -v mariadb-install-db >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  service mariadb stop >/dev/null 2>&1 || service mysql stop >/dev/null 2>&1 || true
fi
as_my=()
[ "$(id -u)" = 0 ] && as_my=(--user=mysql)
stop_mariadb() {
  if [ -f "$mywork/pid" ]; then kill -9 "$(cat "$mywork/pid")" 2>/dev/null || true; fi
  rm -rf "$mywork"
}
trap 'stop_mariadb; cleanup' EXIT
start_mariadb() {
  mkdir -p "$mywork/data"
  if [ "$(id -u)" = 0 ]; then chown -R mysql: "$mywork"; fi
  mariadb-install-db --datadir="$mywork/data" --auth-root-authentication-method=normal \
    --skip-test-db "${as_my[@]}" >"$mywork/install.log" 2>&1 || { cat "$mywork/install.log" >&2; exit 1; }
  # In a subshell of its own: not a job of this shell (stopped by its pid file).
  ("$mybin" --no-defaults --datadir="$mywork/data" --socket="$mywork/sock" --port="$MYPORT" \
    --pid-file="$mywork/pid" --log-error="$mywork/log" --bind-address=127.0.0.1 \
    --max-connections=600 --innodb-buffer-pool-size=512M --innodb-log-file-size=256M \
    "${as_my[@]}" "$@" 2>/dev/null &)
  for _ in $(seq 1 600); do mysql_ -e "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "MariaDB did not start: $(cat "$mywork/log")" >&2
  exit 1
}
mysql_() { mariadb --socket="$mywork/sock" -uroot --batch --skip-column-names "$@"; }
