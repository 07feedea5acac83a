#!/usr/bin/env bash
# `make soak`: ROUNDS rounds (default 20) of each fault of tests/integration/fault_test.cpp
# (kill -9 of a leader, SIGSTOP of a leader, a leader partitioned, kill -9 of a follower, of the
# controller, of etcd's leader) under `kaiwa bench`, on loopback (the partition: in network
# namespaces the test makes; as root only, else skipped); then p50/p99/max of the failover time
# (fault -> the affected shard acks again) and of a killed or partitioned node's time back in
# sync (after its restart or the heal), per fault kind.
# Usage: scripts/soak.sh [ROUNDS] [KIND]; KIND one of kill-leader, stop-leader,
# partition-leader, kill-follower, kill-controller, kill-etcd-leader. Exits non-zero when a
# round found a violation.
set -euo pipefail
rounds=${1:-20}
only=${2:-}
case "$only" in
  "" | kill-leader | stop-leader | partition-leader | kill-follower | kill-controller | kill-etcd-leader) ;;
  *) echo "soak.sh: unknown fault kind '$only'" >&2; exit 2 ;;
esac
bin=${BUILD:-build/release}/tests/integration/fault_test
log=$(mktemp /tmp/kaiwa-soak.XXXXXX)
# Each round starts its own etcd and nodes and is bounded (its waits are); the whole run too.
set +e
KAIWA_FAULT_ROUNDS=$rounds KAIWA_FAULT=$only timeout $((rounds * 6 * 120 + 60)) "$bin" 2>&1 |
  tee "$log" | grep --line-buffered -E '^FAULT|FAILED|passed|failed|skipping'
status=${PIPESTATUS[0]}
set -e
echo
echo "failover (ms) and back in sync (ms) over the rounds ($log):"
awk '/^FAULT/ {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  k = v["kind"]; n[k]++; f[k, n[k]] = v["failover_ms"]; c[k, n[k]] = v["catchup_ms"]
}
function pct(arr, k, cnt, p,   i, j, t, x, idx) {
  for (i = 1; i <= cnt; i++) x[i] = arr[k, i] + 0
  for (i = 2; i <= cnt; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
  idx = int(p * cnt + 0.999999); if (idx < 1) idx = 1; if (idx > cnt) idx = cnt
  return x[idx]
}
END {
  printf "%-18s %6s %8s %8s %8s   %10s %10s\n", "fault", "rounds", "p50", "p99", "max", "sync p50", "sync max"
  for (k in n)
    printf "%-18s %6d %8d %8d %8d   %10d %10d\n", k, n[k], pct(f, k, n[k], 0.5), pct(f, k, n[k], 0.99),
      pct(f, k, n[k], 1), pct(c, k, n[k], 0.5), pct(c, k, n[k], 1)
}' "$log"
exit "$status"
