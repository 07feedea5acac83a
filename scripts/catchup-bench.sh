#!/usr/bin/env bash
# Catch-up speed of a returning follower (docs/benchmarks.md "Replication and faults"): a
# one-member etcd and three nodes (replication factor 3, min in-sync 2) on loopback; n3 is
# killed (-9), `kaiwa bench rooms` writes RATE msgs/s for SECONDS through n1 and n2, n3 starts
# again, and the time until every shard's in-sync set holds all three again is printed with the
# events n3 had to take in. Usage: catchup-bench.sh [RATE] [SECONDS]
set -euo pipefail
rate=${1:-5000} secs=${2:-10}
kaiwa=${BUILD:-build/release}/apps/kaiwa
dir=$(mktemp -d /tmp/kaiwa-catchup.XXXXXX)
declare -A pid
cleanup() { for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(port) pport=$(port)
etcd --name e --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
  --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
  --initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "e=http://127.0.0.1:$pport" \
  >"$dir/etcd.log" 2>&1 &
pid[etcd]=$!
until grep -q 'ready to serve client requests' "$dir/etcd.log"; do sleep 0.1; done
start() {
  "$kaiwa" start --node-id "n$1" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --data-dir "$dir/n$1" \
    --cluster 127.0.0.1:0 --shards 16 --etcd "127.0.0.1:$cport" >>"$dir/n$1.log" 2>&1 &
  pid[n$1]=$!
  until grep -q 'listening public=' "$dir/n$1.log"; do sleep 0.1; done
}
public() { sed -n 's/.*listening public=\([^ ]*\) admin=.*/\1/p' "$dir/n$1.log" | head -1; }
admin() { sed -n 's/.*listening public=[^ ]* admin=\([^ ]*\).*/\1/p' "$dir/n$1.log" | head -1; }
# Every shard led, with all three replicas in sync, as n1 sees it.
full_isr() {
  curl -s "http://$(admin 1)/admin/v1/shards" | python3 -c '
import json, sys
o = json.load(sys.stdin)["owners"]
sys.exit(0 if len(o) == 16 and all(s.get("owner") and len(s.get("isr", [])) == 3 for s in o) else 1)'
}
for i in 1 2 3; do start "$i"; done
until full_isr; do sleep 0.1; done
kill -9 "${pid[n3]}"
"$kaiwa" bench rooms --target "$(public 1),$(public 2)" --admin "$(admin 1)" --rooms 64 \
  --publishers 1 --subscribers 1 --rate "$rate" --window 16 --warmup 0s --duration "${secs}s" \
  --resend-after 1000 --quiet | tee "$dir/bench.out" | grep -E 'acked msgs|violations|missing|errors'
acked=$(awk -v s="$secs" '/acked msgs\/s/ { printf "%d", $NF * s }' "$dir/bench.out")
t0=$(date +%s.%N)
start 3
until full_isr; do sleep 0.05; done
t1=$(date +%s.%N)
awk -v n="$acked" -v t0="$t0" -v t1="$t1" 'BEGIN {
  printf "n3 back in sync on every shard %.2f s after its restart: %d events acked while it was down, %.0f events/s\n",
    t1 - t0, n, n / (t1 - t0) }'
