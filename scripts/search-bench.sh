#!/usr/bin/env bash
# The search benchmark of docs/benchmarks.md in one command: the same generated corpus of
# Japanese + English chat into kaiwa and into Groonga, index throughput, disk, and the same
# queries' p50/p99 on both, side by side.
#
#   scripts/search-bench.sh MESSAGES [kaiwa bench search flags...]
#
# Steps: (1) Groonga: create a db (Messages table, TokenBigram + NormalizerNFKC100 lexicon),
# load the corpus, build the index, time both, du the db, serve it over GQTP on loopback.
# (2) kaiwa: write the corpus into a fresh data dir (LOAD=offline, the default: through the
# journal; LOAD=ws: through `send` to the running node), start a node on it, let
# `kaiwa bench search` wait for the search projection, ask the queries of both engines.
# (3) Stop the node, flush what its WAL holds into SST files (ldb opens the db read-write) and
# read each column family's SST size: the log (events, snapshots, meta, ...) and the index
# (read.search) apart.
#
# Environment: ROOMS (10000), USERS (5000), SEED (1), LOAD (offline|ws), GROONGA (1; 0 skips
# it), NODE_FLAGS (extra `kaiwa start` flags), WORK (a directory to keep everything in; default a
# new one under /tmp, removed at the end; a Groonga db already in it is reused, so a big corpus is
# loaded into Groonga once; GROONGA_ONLY=1 stops after loading it), KAIWA (the binary). The kaiwa
# data dir must not exist yet.
# Needs: groonga (apt-get install groonga-bin) unless GROONGA=0, ldb (apt-get install
# rocksdb-tools) for the per-family split.
set -euo pipefail
messages=${1:?usage: scripts/search-bench.sh MESSAGES [kaiwa bench search flags...]}
shift
kaiwa=$(realpath "${KAIWA:-build/release/apps/kaiwa}")
rooms=${ROOMS:-10000} users=${USERS:-5000} seed=${SEED:-1} load=${LOAD:-offline}
groonga=${GROONGA:-1}
corpus=(--messages "$messages" --rooms "$rooms" --users "$users" --seed "$seed")
if [[ $groonga == 1 ]] && ! command -v groonga >/dev/null; then
  echo "search-bench: groonga is not installed (apt-get install groonga-bin), or run with GROONGA=0" >&2
  exit 1
fi
keep=${WORK:+1}
work=${WORK:-$(mktemp -d /tmp/kaiwa-search-bench.XXXXXX)}
mkdir -p "$work"
node_pid= groonga_pid=
cleanup() {
  [[ -n $node_pid ]] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  [[ -n $groonga_pid ]] && kill -TERM "$groonga_pid" 2>/dev/null && wait "$groonga_pid" 2>/dev/null
  [[ -z $keep ]] && rm -rf "$work"
  return 0
}
trap cleanup EXIT

now() { date +%s.%N; }
minus() { awk "BEGIN { printf \"%.1f\", $1 - $2 }"; }
say() { echo "search-bench: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Per column family: "family bytes" for every family of the RocksDB in $1 (the node stopped).
family_sizes() {
  command -v ldb >/dev/null || { say "ldb missing (apt-get install rocksdb-tools): no split"; return; }
  # A read-write open replays the WAL into SST files, so the sizes below hold everything.
  ldb --db="$1" --column_family=default compact >/dev/null
  for cf in $(ldb --db="$1" list_column_families | tail -1 | tr -d '{},'); do
    echo "$cf $(ldb --db="$1" --column_family="$cf" get_property rocksdb.total-sst-files-size | awk '{print $2}')"
  done
}

# -- Groonga ------------------------------------------------------------------------------------
groonga_flags=()
db="$work/groonga/db"
if [[ $groonga == 1 && -e $db ]]; then
  say "groonga: reusing the db in $work/groonga (loaded by an earlier run with WORK=$work)"
elif [[ $groonga == 1 ]]; then
  mkdir -p "$work/groonga"
  groonga -n "$db" >/dev/null <<'EOF'
table_create Rooms TABLE_HASH_KEY ShortText
table_create Messages TABLE_NO_KEY
column_create Messages room COLUMN_SCALAR Rooms
column_create Messages user COLUMN_SCALAR ShortText
column_create Messages ts COLUMN_SCALAR Int64
column_create Messages text COLUMN_SCALAR Text
EOF
  "$kaiwa" bench search --load groonga "${corpus[@]}" >"$work/groonga/load.grn"
  t0=$(now)
  groonga "$db" <"$work/groonga/load.grn" >"$work/groonga/load.out"
  t1=$(now)
  # The indexes are built after the load (Groonga's static index construction, its fastest).
  groonga "$db" >"$work/groonga/index.out" <<'EOF'
column_create Rooms messages_room COLUMN_INDEX Messages room
table_create Terms TABLE_PAT_KEY ShortText --default_tokenizer TokenBigram --normalizer NormalizerNFKC100
column_create Terms messages_text COLUMN_INDEX|WITH_POSITION Messages text
EOF
  t2=$(now)
  loaded=$(grep -o '\],[0-9]*\]$' "$work/groonga/load.out" | tail -1 | tr -dc 0-9)
  rm -f "$work/groonga/load.grn" "$work/groonga/load.out"
  gbytes=$(du -c --block-size=1 "$db"* | tail -1 | cut -f1)
  echo "groonga: loaded ${loaded:-?} records in $(minus "$t1" "$t0") s, indexed in $(minus "$t2" "$t1") s; db $gbytes bytes"
  du --block-size=1 "$db"* | sort -n | tail -5 | sed 's/^/groonga file: /'
fi
if [[ -n ${GROONGA_ONLY:-} ]]; then
  exit 0
fi
if [[ $groonga == 1 ]]; then
  gport=$(free_port)
  # GQTP, not HTTP: Groonga's HTTP server closes the connection after each reply.
  groonga -s --protocol gqtp --bind-address 127.0.0.1 --port "$gport" "$db" >"$work/groonga/server.log" 2>&1 &
  groonga_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break
    sleep 0.1  # waiting for Groonga to listen
  done
  groonga_flags=(--groonga "127.0.0.1:$gport")
fi

# -- kaiwa --------------------------------------------------------------------------------------
data="$work/data"
if [[ $load == offline ]]; then
  "$kaiwa" bench search --load offline --data-dir "$data" "${corpus[@]}"
  family_sizes "$data" | sed 's/^/kaiwa before indexing: /'
  echo "kaiwa before indexing: du $(du -s --block-size=1 "$data" | cut -f1)"
fi
"$kaiwa" start --data-dir "$data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 ${NODE_FLAGS:-} >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 600); do
  grep -q '^listening' "$work/node.log" && break
  sleep 0.1  # waiting for the node to print its ports
done
read -r public admin <<<"$(grep -o 'public=[^ ]*\|admin=[^ ]*' "$work/node.log" | cut -d= -f2 | tr '\n' ' ')"
bench_load=none
[[ $load == ws ]] && bench_load=ws
status=0
"$kaiwa" bench search --load "$bench_load" "${corpus[@]}" --target "$public" --admin "$admin" \
  "${groonga_flags[@]}" "$@" || status=$?
kill -TERM "$node_pid"
wait "$node_pid" || true
node_pid=
family_sizes "$data" | sed 's/^/kaiwa after indexing: /'
echo "kaiwa after indexing: du $(du -s --block-size=1 "$data" | cut -f1)"
exit $status
