# Shared by the bench scripts that start servers of their own (sourced,
# not run): the processes they start, and waiting for a port.

pids=()

# Kills every process in `pids` and waits for each.
stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT
# (default 10 s; a server under valgrind takes longer), else exits.
wait_port() {
  local tries=$((${2:-10} * 20))
  for _ in $(seq 1 "$tries"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not come up" >&2
  exit 1
}

# need HINT TOOL…: exits, naming the first TOOL not installed and HINT (the
# command that installs them).
need() {
  local hint=$1
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || {
      echo "needs $t ($hint)" >&2
      exit 1
    }
  done
}
