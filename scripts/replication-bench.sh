#!/usr/bin/env bash
# Ack latency with replication (docs/benchmarks.md "Replication"): a one-member etcd and three
# nodes on loopback with --replication-factor RF (--min-insync 2, or 1 for RF 1), then
# `kaiwa bench rooms` at RATE msgs/s over all three nodes. Usage: replication-bench.sh RF RATE [SECONDS]
set -euo pipefail
rf=$1 rate=$2 secs=${3:-10}
kaiwa=${BUILD:-build/release}/apps/kaiwa
dir=$(mktemp -d /tmp/kaiwa-rbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
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
"$kaiwa" bench rooms --target "$(IFS=,; echo "${targets[*]}")" --admin "$admin" --rooms 64 \
  --publishers 1 --subscribers 1 --rate "$rate" --window 16 --warmup 3s --duration "${secs}s" --quiet
