#!/usr/bin/env bash
# Runs one `kaiwa bench` scenario against a fresh local node (new data dir, default flags
# plus NODE_FLAGS), then stops the node. Usage: scripts/bench.sh SCENARIO [bench flags...]
# Example: scripts/bench.sh fanout --subscribers 1000 --window 16
#
# NODE_CPUS / BENCH_CPUS pin the node and the load client (taskset lists, e.g. 0 and 1): with
# both on one 2-core VM they take turns at the CPUs and the figures measure the scheduler.
# PERF_OUT=FILE records the node with `perf record -g` over the bench's whole run.
# NODE_CPU_OUT=FILE writes the node's CPU seconds (user + system) used during the bench.
set -euo pipefail
# The repository's build by default, wherever the script is run from.
kaiwa=${KAIWA:-$(dirname "$0")/../build/release/apps/kaiwa}
[ -x "$kaiwa" ] || { echo "bench.sh: no kaiwa binary at $kaiwa (make build, or set KAIWA)" >&2; exit 1; }
# The output files are checked before the run, not found unwritable after it.
for out in ${PERF_OUT:+"$PERF_OUT"} ${NODE_CPU_OUT:+"$NODE_CPU_OUT"}; do
  : >"$out" || { echo "bench.sh: can't write $out" >&2; exit 1; }
done
if [ -n "${PERF_OUT:-}" ] && ! command -v perf >/dev/null; then
  echo "bench.sh: PERF_OUT needs perf (apt-get install linux-perf)" >&2
  exit 1
fi
data=$(mktemp -d /tmp/kaiwa-bench.XXXXXX)
log="$data.log"
pin() { if [ -n "$1" ]; then echo "taskset -c $1"; fi; }
$(pin "${NODE_CPUS:-}") "$kaiwa" start --data-dir "$data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
  ${NODE_FLAGS:-} >"$log" 2>&1 &
node=$!
perf_pid=""
cleanup() {
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  kill -TERM "$node" 2>/dev/null || true
  wait "$node" 2>/dev/null || true
  rm -rf "$data" "$log" "$data.perf.log"
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q '^listening' "$log" && break
  kill -0 "$node" 2>/dev/null || break  # it exited: a bad flag, a taken data dir, ...
  sleep 0.1  # waiting for the node to print its ports
done
if ! grep -q '^listening' "$log"; then
  echo "bench.sh: the node did not start; its output:" >&2
  tail -20 "$log" >&2
  exit 1
fi
ports=$(grep -o 'public=[^ ]*\|admin=[^ ]*' "$log" | cut -d= -f2 | tr '\n' ' ')
read -r public admin <<<"$ports"
# The log line is "TIME info  cpu_budget cpus=... actor_threads=... io_lanes=...".
grep -m1 'cpu_budget' "$log" >&2 || true
if [ -n "${PERF_OUT:-}" ]; then
  perf record -g -o "$PERF_OUT" -p "$node" >"$data.perf.log" 2>&1 &
  perf_pid=$!
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$node/stat"; }
before=$(cpu_ticks)
$(pin "${BENCH_CPUS:-}") "$kaiwa" bench "$@" --target "$public" --admin "$admin"
after=$(cpu_ticks)
if [ -n "$perf_pid" ]; then
  # perf record exits 130 when interrupted, as here; anything else, or no data, is a failure
  # (perf_event_paranoid, a pid it can't trace, ...) that would otherwise go unnoticed.
  kill -INT "$perf_pid" 2>/dev/null || true
  perf_rc=0
  wait "$perf_pid" || perf_rc=$?
  perf_pid=""
  if { [ "$perf_rc" != 0 ] && [ "$perf_rc" != 130 ]; } || [ ! -s "$PERF_OUT" ]; then
    echo "bench.sh: perf record failed (exit $perf_rc):" >&2
    cat "$data.perf.log" >&2
    exit 1
  fi
fi
if [ -n "${NODE_CPU_OUT:-}" ]; then
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }' >"$NODE_CPU_OUT"
fi
