#!/usr/bin/env bash
# The cluster figures of docs/benchmarks.md, each on fresh local nodes (loopback, new data dirs),
# stopped at the end. Usage: scripts/cluster-bench.sh latency|fanout|move|drain
#   latency  ack latency at a fixed rate with every room on the node the clients use, then with
#            every room on another node
#   fanout   1 room, 999 subscribers spread over 3 nodes, 1 publisher
#   move     time to move a shard holding one room of 100,000 events
#   drain    drain one of 3 nodes under load: moves, their durations, client retries
# TLS=1: the members speak mutual TLS (certificates made with `kaiwa cert` in the temp dir).
# RATE (default 20000; 0: as fast as acks come) and DURATION (default 10 s) for latency.
set -euo pipefail
kaiwa=${KAIWA:-build/release/apps/kaiwa}
dir=$(mktemp -d /tmp/kaiwa-cluster.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; rm -rf "$dir"' EXIT

# start_node I [--join ADDR]: node nI, public 127.0.0.1:180I0, admin 180I1, cluster 180I2.
start_node() {
  local i=$1
  shift
  if [ "${TLS:-0}" = 1 ]; then
    [ -f "$dir/certs/ca.pem" ] || "$kaiwa" cert ca --out "$dir/certs" >/dev/null
    [ -f "$dir/certs/n$i.pem" ] || "$kaiwa" cert node --ca "$dir/certs" --name "n$i" --out "$dir/certs" >/dev/null
    set -- "$@" --cluster-ca "$dir/certs/ca.pem" --cluster-cert "$dir/certs/n$i.pem" \
      --cluster-key "$dir/certs/n$i-key.pem"
  fi
  "$kaiwa" start --node-id "n$i" --listen "127.0.0.1:18${i}00" --admin "127.0.0.1:18${i}01" \
    --cluster "127.0.0.1:18${i}02" --data-dir "$dir/n$i" --log-level debug "$@" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening' "$dir/n$i.log" && return
    sleep 0.1  # waiting for the node to print its ports
  done
  echo "node n$i did not start" >&2
  exit 1
}
public() { echo "127.0.0.1:18${1}00"; }
admin() { echo "127.0.0.1:18${1}01"; }
cluster_addr() { echo "127.0.0.1:18${1}02"; }

# Waits until the coordinator has no move queued or under way.
settle() {
  for _ in $(seq 600); do
    local v
    v=$("$kaiwa" cluster --json --admin "$(admin 1)")
    if grep -q '"moving":false' <<<"$v" && grep -q '"moves_queued":0' <<<"$v" &&
      ! grep -q '"state":"down"' <<<"$v"; then
      [ "$(grep -o '"state":"up"' <<<"$v" | wc -l)" -ge "${1:-1}" ] && return
    fi
    sleep 0.1  # polling the admin API
  done
  echo "cluster did not settle" >&2
  exit 1
}

case "${1:-}" in
latency)
  start_node 1
  settle 1
  echo "== every room on the node the clients use (n1 alone)"
  "$kaiwa" bench rooms --rooms 1000 --rate "${RATE:-20000}" --duration "${DURATION:-10}" --quiet --target "$(public 1)" --admin "$(admin 1)"
  start_node 2 --join "$(cluster_addr 1)"
  settle 2
  echo "== moving every shard to n2"
  for s in $(seq 0 1023); do
    "$kaiwa" move "$s" n2 --admin "$(admin 1)" >/dev/null
  done
  echo "== every room on another node (clients on n1, rooms on n2)"
  "$kaiwa" bench rooms --rooms 1000 --rate "${RATE:-20000}" --duration "${DURATION:-10}" --quiet --target "$(public 1)" --admin "$(admin 1)"
  ;;
fanout)
  start_node 1
  start_node 2 --join "$(cluster_addr 1)"
  start_node 3 --join "$(cluster_addr 1)"
  settle 3
  "$kaiwa" bench fanout --subscribers 999 --duration 10 --quiet \
    --target "$(public 1),$(public 2),$(public 3)" --admin "$(admin 1)"
  ;;
move)
  # The filler pipelines 64 sends over one connection, faster than the default per-connection
  # rate limit.
  start_node 1 --rate-limit 0
  start_node 2 --join "$(cluster_addr 1)" --rate-limit 0
  settle 2
  echo "== filling room history-0 with 100,000 events"
  "$kaiwa" bench history --rooms 1 --events 100000 --clients 1 --duration 1 --quiet \
    --target "$(public 1)" --admin "$(admin 1)" >/dev/null
  shard=$(python3 -c 'h=2166136261
for c in b"history-0": h=((h^c)*16777619)&0xffffffff
print(h%1024)')
  owner=$("$kaiwa" shards --json --admin "$(admin 1)" | python3 -c "import json,sys; print(json.load(sys.stdin)['owners'][$shard]['owner'])")
  to=$([ "$owner" = n1 ] && echo n2 || echo n1)
  echo "== moving shard $shard (room history-0) from $owner to $to"
  start=$(date +%s.%N)
  "$kaiwa" move "$shard" "$to" --admin "$(admin 1)"
  end=$(date +%s.%N)
  python3 -c "print(f'move took {($end-$start)*1000:.0f} ms (kaiwa move, end to end)')"
  grep -h "cluster_shard_handed_over shard=$shard " "$dir"/n*.log
  grep -h "cluster_shard_moved shard=$shard " "$dir"/n*.log
  ;;
drain)
  start_node 1
  start_node 2 --join "$(cluster_addr 1)"
  start_node 3 --join "$(cluster_addr 1)"
  settle 3
  "$kaiwa" bench rooms --rooms 1000 --rate 20000 --duration 15 --quiet \
    --target "$(public 1)" --admin "$(admin 1)" >"$dir/bench.txt" 2>&1 &
  bench=$!
  sleep 4  # the drain lands mid-run
  start=$(date +%s.%N)
  "$kaiwa" drain n3 --grace 0 --admin "$(admin 1)"
  end=$(date +%s.%N)
  wait $bench || true
  cat "$dir/bench.txt"
  python3 -c "print(f'drain of n3 took {($end-$start):.2f} s')"
  grep -h "cluster_shard_moved.*from=n3" "$dir/n1.log" | grep -o 'ms=[0-9.]*' | cut -d= -f2 |
    python3 -c '
import sys
ms = sorted(float(x) for x in sys.stdin)
n = len(ms)
print(f"shards moved {n}; each unavailable for p50 {ms[n//2]:.1f} ms, p99 {ms[int(n*0.99)]:.1f} ms, max {ms[-1]:.1f} ms; sum {sum(ms)/1000:.2f} s")
print(f"rooms x time: ~{1000*n/1024:.0f} of the 1000 bench rooms were on n3, each unavailable ~{sum(ms)/n:.1f} ms on average")'
  ;;
*)
  echo "usage: $0 latency|fanout|move|drain" >&2
  exit 2
  ;;
esac
