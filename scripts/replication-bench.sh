#!/usr/bin/env bash
# Replication's cost (docs/benchmarks.md "Replication and faults"): a one-member etcd and three
# nodes on loopback with --replication-factor RF (--min-insync 2, or 1 for RF 1), then
# `kaiwa bench SCENARIO ARGS...` with the clients spread over all three nodes. Also prints the
# requests etcd handled per second at rest (5 s before the bench) and during it; with DRAIN=1,
# also what etcd handles while `kaiwa drain n3` empties the third node after the bench.
# Usage: replication-bench.sh RF SCENARIO [ARGS...], e.g.
#   replication-bench.sh 3 rooms --rooms 64 --rate 5000 --window 16 --warmup 3s --duration 8s
set -euo pipefail
rf=$1 scenario=$2
shift 2
kaiwa=${BUILD:-build/release}/apps/kaiwa
dir=$(mktemp -d /tmp/kaiwa-rbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(port) pport=$(port)
etcd --name e --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
  --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
  --initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "e=http://127.0.0.1:$pport" \
  >"$dir/etcd.log" 2>&1 &
pids+=($!)
until grep -q 'ready to serve client requests' "$dir/etcd.log"; do sleep 0.1; done
minisr=$((rf < 2 ? 1 : 2))
targets=()
for i in 1 2 3; do
  "$kaiwa" start --node-id "n$i" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data-dir "$dir/n$i" \
    --cluster 127.0.0.1:0 --shards 16 --etcd "127.0.0.1:$cport" --replication-factor "$rf" \
    --min-insync "$minisr" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  until grep -q 'listening public=' "$dir/n$i.log"; do sleep 0.1; done
  targets+=("$(sed -n 's/.*listening public=\([^ ]*\) admin=.*/\1/p' "$dir/n$i.log" | head -1)")
done
admin=$(sed -n 's/.*listening public=[^ ]* admin=\([^ ]*\).*/\1/p' "$dir/n1.log" | head -1)
etcd_requests() {
  curl -s "http://127.0.0.1:$cport/metrics" |
    awk '/^grpc_server_handled_total\{/ { n += $NF } END { printf "%d\n", n }'
}
sleep 2  # placement settles (the nodes register and the controller writes the shard map)
r0=$(etcd_requests) t0=$(date +%s.%N)
sleep 5  # the measured rest
r1=$(etcd_requests) t1=$(date +%s.%N)
"$kaiwa" bench "$scenario" --target "$(IFS=,; echo "${targets[*]}")" --admin "$admin" --quiet "$@"
r2=$(etcd_requests) t2=$(date +%s.%N)
awk -v a="$r0" -v b="$r1" -v c="$r2" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "etcd requests/s: at rest %.1f, during the bench %.1f\n", (b - a) / (t1 - t0), (c - b) / (t2 - t1) }'
if [[ -n ${DRAIN:-} ]]; then
  r3=$(etcd_requests) t3=$(date +%s.%N)
  "$kaiwa" drain n3 --admin "http://$admin" --grace 0s
  r4=$(etcd_requests) t4=$(date +%s.%N)
  awk -v a="$r3" -v b="$r4" -v t0="$t3" -v t1="$t4" 'BEGIN {
    printf "etcd during the drain of n3: %d requests in %.2f s (%.1f/s)\n", b - a, t1 - t0, (b - a) / (t1 - t0) }'
fi
