#!/usr/bin/env bash
# kaiwa and NATS side by side with the independent load generator of ../shared/peers (issue 14):
# each workload run once against each server, taken together, the server pinned to CPU 0 and
# the load generator to CPU 1 (peers/run.sh does both). Prints one line per run and a table with
# kaiwa / NATS ratios; the raw JSON lines go to $OUT (default /tmp/peers-compare.jsonl).
# Usage: scripts/peers-compare.sh [WORKLOAD:PARAM ...]
#   default: fanout:1000 rooms:20000 rooms:50000 rooms:80000 conns:10000
# Needs nats-server (apt-get install nats-server). KAIWA selects the binary.
set -euo pipefail
kaiwa=$(realpath "${KAIWA:-build/release/apps/kaiwa}")
peers=$(realpath "$(dirname "$0")/../../shared/peers")
out=${OUT:-/tmp/peers-compare.jsonl}
: >"$out"
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(fanout:1000 rooms:20000 rooms:50000 rooms:80000 conns:10000)
for run in "${runs[@]}"; do
  wl=${run%%:*}
  param=${run#*:}
  for peer in nats kaiwa; do
    data=$(mktemp -d /tmp/kaiwa-peers.XXXXXX)
    KAIWA_PORT=18080 KAIWA_CMD="$kaiwa start --listen 127.0.0.1:18080 --admin 127.0.0.1:18081 --data-dir $data" \
      RESULTS_JSONL="$out" "$peers/run.sh" "$wl" "$peer" "$param" 2>&1 | grep '^RESULT' || echo "$peer $wl $param failed"
    rm -rf "$data"
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["mode"], r["params"]), {})[r["peer"]] = r
def f(x, d=0): return f"{x:,.{d}f}"
print("\n| workload | NATS | kaiwa | kaiwa / NATS |\n|---|---|---|---|")
for (mode, params), p in by.items():
    n, k = p.get("nats"), p.get("kaiwa")
    if not n or not k: continue
    if mode == "conns":
        nk, kk = n["rss_per_conn_b"] / 1024, k["rss_per_conn_b"] / 1024
        print(f"| {mode} {params} | {nk:.1f} KiB RSS a connection | {kk:.1f} KiB | {kk / nk if nk else 0:.2f}x memory |")
        continue
    def cell(r): return (f"{f(r['delivered_per_s'])} delivered/s, p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.1f} ms,"
                         f" lost {r['lost']}, server CPU {r['srv_cpu_pct']}%")
    print(f"| {mode} {params} | {cell(n)} | {cell(k)} | {k['delivered_per_s'] / max(n['delivered_per_s'], 1):.2f}x throughput,"
          f" p99 {k['p99_ms'] / max(n['p99_ms'], 1e-9):.2f}x |")
PY
