#!/usr/bin/env bash
# Runs one `kaiwa bench` scenario against a fresh local node (new data dir, default flags
# plus NODE_FLAGS), then stops the node. Usage: scripts/bench.sh SCENARIO [bench flags...]
# Example: scripts/bench.sh fanout --subscribers 1000 --window 16
set -euo pipefail
kaiwa=${KAIWA:-build/release/apps/kaiwa}
data=$(mktemp -d /tmp/kaiwa-bench.XXXXXX)
log="$data.log"
"$kaiwa" start --data-dir "$data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 ${NODE_FLAGS:-} >"$log" 2>&1 &
node=$!
trap 'kill -TERM $node 2>/dev/null; wait $node 2>/dev/null; rm -rf "$data" "$log"' EXIT
for _ in $(seq 100); do
  grep -q '^listening' "$log" && break
  sleep 0.1  # waiting for the node to print its ports
done
ports=$(grep -o 'public=[^ ]*\|admin=[^ ]*' "$log" | cut -d= -f2 | tr '\n' ' ')
read -r public admin <<<"$ports"
"$kaiwa" bench "$@" --target "$public" --admin "$admin"
