#!/usr/bin/env bash
# kaiwa and NATS side by side with the independent load generator of ../shared/peers (issue 14):
# each workload run once against each server, taken together, the server pinned to CPU 0 and
# the load generator to CPU 1 (peers/run.sh does both). Prints one line per run and a table with
# kaiwa / NATS ratios; the raw JSON lines go to $OUT (default /tmp/peers-compare.jsonl).
# Usage: scripts/peers-compare.sh [WORKLOAD:PARAM ...]
#   default: fanout:1000 rooms:20000 rooms:50000 rooms:80000 conns:10000
# Needs nats-server (apt-get install nats-server). KAIWA selects the binary. kaiwa runs with
# --rate-limit 0: core NATS limits no connection's requests, and kaiwa's default (10,000/s a
# connection) would cut fanout's one publisher off below ~1,000 subscribers.
# Exits 1 when a run failed (its output is shown), 2 on a usage error.
set -euo pipefail
usage() { sed -n '2,/^set /p' "$0" | sed '$d' >&2; exit 2; }
kaiwa=${KAIWA:-$(dirname "$0")/../build/release/apps/kaiwa}
[ -x "$kaiwa" ] || { echo "peers-compare.sh: no kaiwa binary at $kaiwa (make build, or set KAIWA)" >&2; exit 1; }
kaiwa=$(realpath "$kaiwa")
peers=$(realpath "$(dirname "$0")/../../shared/peers")
command -v nats-server >/dev/null || {
  echo "peers-compare.sh: nats-server is not on PATH (apt-get install nats-server)" >&2
  exit 1
}
# The servers' fixed ports (peers/run.sh's NATS port, kaiwa's below) must be free: run.sh
# waits for the port to open, and would measure whatever already listens there.
for port in 14222 18080 18081; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "peers-compare.sh: 127.0.0.1:$port is in use; the runs need it free" >&2
    exit 1
  fi
done
out=${OUT:-/tmp/peers-compare.jsonl}
: >"$out"
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(fanout:1000 rooms:20000 rooms:50000 rooms:80000 conns:10000)
for run in "${runs[@]}"; do
  [[ $run =~ ^(fanout|rooms|conns):[1-9][0-9]{0,6}$ ]] || {
    echo "peers-compare.sh: '$run' is not WORKLOAD:PARAM (fanout, rooms or conns, a number)" >&2
    usage
  }
done
failed=0
for run in "${runs[@]}"; do
  wl=${run%%:*}
  param=${run#*:}
  for peer in nats kaiwa; do
    data=$(mktemp -d /tmp/kaiwa-peers.XXXXXX)
    said="$data.out"
    if KAIWA_PORT=18080 KAIWA_CMD="$kaiwa start --listen 127.0.0.1:18080 --admin 127.0.0.1:18081 --data-dir $data --rate-limit 0" \
      RESULTS_JSONL="$out" "$peers/run.sh" "$wl" "$peer" "$param" >"$said" 2>&1 &&
      grep '^RESULT' "$said"; then
      :
    else
      echo "$peer $wl $param failed:" >&2
      tail -15 "$said" >&2
      failed=1
    fi
    rm -rf "$data" "$said"
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
exit "$failed"
