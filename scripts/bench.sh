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
kaiwa=${KAIWA:-build/release/apps/kaiwa}
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
  rm -rf "$data" "$log"
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q '^listening' "$log" && break
  sleep 0.1  # waiting for the node to print its ports
done
ports=$(grep -o 'public=[^ ]*\|admin=[^ ]*' "$log" | cut -d= -f2 | tr '\n' ' ')
read -r public admin <<<"$ports"
grep '^cpu_budget' "$log" >&2 || true
if [ -n "${PERF_OUT:-}" ]; then
  perf record -g -o "$PERF_OUT" -p "$node" >/dev/null 2>&1 &
  perf_pid=$!
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$node/stat"; }
before=$(cpu_ticks)
$(pin "${BENCH_CPUS:-}") "$kaiwa" bench "$@" --target "$public" --admin "$admin"
after=$(cpu_ticks)
if [ -n "${NODE_CPU_OUT:-}" ]; then
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }' >"$NODE_CPU_OUT"
fi
