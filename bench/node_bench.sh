#!/usr/bin/env bash
# The single-node benchmark (`./dev bench node`; issue 3): meridiand against
# Redis and against raw LevelDB, on loopback, in one run, one table.
#
#   bench/node_bench.sh BUILD_DIR
#
# BUILD_DIR holds node/meridiand and bench/leveldb_ceiling (a RelWithDebInfo
# build). Needs wrk, redis-server, redis-benchmark, redis-cli and curl
# (`./dev deps` installs them); installs nothing itself.
#
# Runs, each bounded in time (about 55 s in all on 2 cores):
#   1. wrk: durable PUT /v1/kv (sync = true), 100-byte values, 32 keep-alive
#      connections, keys spread over 10,000;
#   2. wrk: GET of those keys (all preloaded), same load;
#   3. wrk: POST /v1/batch, msgpack bodies of 1,000 puts each;
#   4. redis-benchmark -t set,get -c 32 -d 100 at -P 1 and -P 16, against
#      redis-server with appendonly yes, appendfsync everysec;
#   5. bench/leveldb_ceiling: raw LevelDB WriteBatches of 1,000, one fsync
#      each; and batches of one record, for the disk's fsync rate;
# then prints the figures, the ratios and the issue's targets (met/missed).
# bench/README.md says what each line measures and records a run.
#
# Tunables (environment): NODE_BENCH_SECONDS (per wrk run, default 10),
# NODE_BENCH_BATCH_CONNS (connections for the batch run, default 4),
# NODE_BENCH_REDIS_SECONDS (aimed-for length of each redis-benchmark test,
# default 3), NODE_BENCH_CEILING_SECONDS (default 5).
#
# Everything it starts (meridiand, redis-server, wrk, redis-benchmark) and
# its temp dir are removed on exit, failure or signal. Exits 0 when every
# figure was measured (targets may still be missed), 1 when a run failed or
# saw errors, 2 on bad usage or missing tools.
set -euo pipefail

usage() {
  echo "usage: bench/node_bench.sh BUILD_DIR" >&2
  exit 2
}
[ $# -eq 1 ] || usage
[ -d "$1" ] || { echo "node_bench: build dir '$1' does not exist" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)

SECONDS_PER_RUN=${NODE_BENCH_SECONDS:-10}
BATCH_CONNS=${NODE_BENCH_BATCH_CONNS:-4}
REDIS_SECONDS=${NODE_BENCH_REDIS_SECONDS:-3}
CEILING_SECONDS=${NODE_BENCH_CEILING_SECONDS:-5}
CONNS=32
WRK_THREADS=2
KEYS=10000
VALUE_BYTES=100
BATCH_OPS=1000

MERIDIAND=$BUILD/node/meridiand
CEILING=$BUILD/bench/leveldb_ceiling

say() { printf '==> [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
  printf 'node_bench: %s\n' "$*" >&2
  exit 1
}

missing=()
for tool in wrk redis-server redis-benchmark redis-cli curl awk; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "node_bench: missing ${missing[*]}; run ./dev deps" >&2
  exit 2
fi
for bin in "$MERIDIAND" "$CEILING"; do
  [ -x "$bin" ] || { echo "node_bench: $bin is not built (targets meridiand, leveldb_ceiling)" >&2; exit 2; }
done

# --- Processes and cleanup ---------------------------------------------------

WORK=$(mktemp -d -t meridian-node-bench.XXXXXX)
PIDS=()

# shellcheck disable=SC2317  # reached through the traps below
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Newest first: load generators end before the servers they talk to
  # (meridiand stopped under load waits out its 5 s grace for requests
  # whose clients are gone).
  local pid k
  for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do
    kill -TERM "${PIDS[k]}" 2>/dev/null || true
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    # Up to 10 s for a clean stop (meridiand closes LevelDB, Redis flushes
    # its AOF), then SIGKILL.
    local _
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits for it, so that a signal to
# this script is acted on at once and cleanup can end the command too.
# Call it in this shell, not in $(...), or cleanup cannot see the process.
run() {
  "$@" &
  local pid=$!
  PIDS+=("$pid")
  local rc=0
  wait "$pid" || rc=$?
  forget "$pid"
  return "$rc"
}

# Drops a process that has been waited for from PIDS.
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Sets PORT to a loopback port nothing listens on and that this script has
# not handed out before (checked by connecting; the server's own bind is
# the final word, so starts are retried on another port).
pick_port() {
  local p _ taken
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    for taken in "${TAKEN_PORTS[@]:-}"; do [ "$taken" = "$p" ] && continue 2; done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN_PORTS+=("$p")
      PORT=$p
      return 0
    fi
  done
  die "no free loopback port found"
}
TAKEN_PORTS=()

start_meridiand() {
  local attempt
  for attempt in 1 2 3; do
    pick_port
    HTTP_PORT=$PORT
    pick_port
    local gossip_port=$PORT
    rm -rf "$WORK/node"
    cat >"$WORK/bench.toml" <<EOF
[cluster]
name = "bench"
sync = true

[[region]]
name = "local"

  [[region.node]]
  id       = "bench-1"
  http     = "127.0.0.1:$HTTP_PORT"
  gossip   = "tcp://127.0.0.1:$gossip_port"
  data_dir = "$WORK/node"
EOF
    "$MERIDIAND" --config "$WORK/bench.toml" --node bench-1 >"$WORK/meridiand.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local _
    for _ in $(seq 100); do
      if curl -sf "http://127.0.0.1:$HTTP_PORT/v1/health" >/dev/null 2>&1; then
        MERIDIAND_PID=$pid
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    say "meridiand did not come up on port $HTTP_PORT (attempt $attempt): $(tail -n 2 "$WORK/meridiand.log")"
  done
  die "meridiand would not start; last log: $(cat "$WORK/meridiand.log")"
}

start_redis() {
  local attempt
  for attempt in 1 2 3; do
    pick_port
    REDIS_PORT=$PORT
    rm -rf "$WORK/redis"
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
      --appendonly yes --appendfsync everysec --save "" --daemonize no \
      --logfile "$WORK/redis/redis.log" &
    local pid=$!
    PIDS+=("$pid")
    local _
    for _ in $(seq 100); do
      if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; then
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    say "redis-server did not come up on port $REDIS_PORT (attempt $attempt)"
  done
  die "redis-server would not start; last log: $(tail -n 5 "$WORK/redis/redis.log" 2>/dev/null)"
}

# --- wrk scripts --------------------------------------------------------------

VALUE=$(printf "%${VALUE_BYTES}s" "" | tr ' ' 'v')

# Shared by every wrk script: a per-thread random seed, and one RESULT line
# with exact figures (latency in microseconds) for this script to parse.
cat >"$WORK/common.lua" <<'EOF'
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end
function seed()
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f errors=%d status_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status, e.status))
end
EOF

cat >"$WORK/put.lua" <<EOF
dofile("$WORK/common.lua")
local body = '"$VALUE"'
local headers = {["Content-Type"] = "application/json"}
function init(args) seed() end
function request()
  local path = string.format("/v1/kv/bench-%05d", math.random(0, $KEYS - 1))
  return wrk.format("PUT", path, headers, body)
end
EOF

cat >"$WORK/get.lua" <<EOF
dofile("$WORK/common.lua")
function init(args) seed() end
function request()
  return wrk.format("GET", string.format("/v1/kv/bench-%05d", math.random(0, $KEYS - 1)))
end
EOF

# msgpack by hand (wrk's LuaJIT has no msgpack): the bodies are built once
# per thread, $((KEYS / BATCH_OPS)) of them covering every key, and sent in
# turn.
cat >"$WORK/batch.lua" <<EOF
dofile("$WORK/common.lua")
local function str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 + n) .. s end
  if n < 256 then return string.char(0xd9, n) .. s end
  return string.char(0xda, math.floor(n / 256), n % 256) .. s
end
local function body_for(first)
  local parts = {string.char(0xdc, math.floor($BATCH_OPS / 256), $BATCH_OPS % 256)}
  local value = str("$VALUE")
  for i = 0, $BATCH_OPS - 1 do
    parts[#parts + 1] = string.char(0x83) .. str("op") .. str("put") .. str("key") ..
        str(string.format("bench-%05d", first + i)) .. str("value") .. value
  end
  return table.concat(parts)
end
local requests = {}
local next_request = 1
function init(args)
  seed()
  local headers = {["Content-Type"] = "application/msgpack", ["Accept"] = "application/msgpack"}
  for first = 0, $KEYS - 1, $BATCH_OPS do
    requests[#requests + 1] = wrk.format("POST", "/v1/batch", headers, body_for(first))
  end
  next_request = math.random(1, #requests)
end
function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end
EOF

# Runs wrk with a script; sets RPS (rounded), RPS_EXACT, REQUESTS, P50_MS,
# P99_MS, ERRORS.
run_wrk() {
  local name=$1 script=$2 conns=$3
  local out="$WORK/$name.out"
  local threads=$WRK_THREADS
  [ "$conns" -lt "$threads" ] && threads=$conns
  say "$name: wrk -t$threads -c$conns -d${SECONDS_PER_RUN}s"
  if ! run wrk -t"$threads" -c"$conns" -d"${SECONDS_PER_RUN}s" --timeout 10s --latency \
      -s "$script" "http://127.0.0.1:$HTTP_PORT" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk failed in $name"
  fi
  local line
  line=$(grep '^RESULT ' "$out" | tail -n 1) || { cat "$out" >&2; die "wrk printed no RESULT in $name"; }
  local requests duration p50 p99 errors
  requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
  duration=$(sed -E 's/.* duration_us=([0-9]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
  errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
  RPS=$(awk -v r="$requests" -v d="$duration" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
  RPS_EXACT=$(awk -v r="$requests" -v d="$duration" 'BEGIN { printf "%.3f", r / (d / 1e6) }')
  REQUESTS=$requests
  P50_MS=$(awk -v v="$p50" 'BEGIN { printf "%.2f", v / 1000 }')
  P99_MS=$(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }')
  ERRORS=$errors
  if [ "$errors" -gt 0 ]; then
    say "$name: $errors errors (see below)"
    cat "$out" >&2
  fi
}

# Runs redis-benchmark for SET and GET at one pipeline depth, with -n sized
# from a short SET run so that each test lasts about REDIS_SECONDS. Sets
# RB_SET_RPS, RB_SET_P50, RB_SET_P99, RB_GET_RPS, RB_GET_P50, RB_GET_P99.
run_redis() {
  local pipeline=$1
  local common=(-h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNS" -P "$pipeline" -d "$VALUE_BYTES"
    -r "$KEYS" --csv)
  local probe_n=$((20000 * pipeline))
  run redis-benchmark "${common[@]}" -t set -n "$probe_n" >"$WORK/redis-probe.csv" 2>&1 ||
    die "redis-benchmark failed: $(cat "$WORK/redis-probe.csv")"
  local probe_rps
  probe_rps=$(awk -F'","' '/^"SET"/ { print $2 + 0 }' "$WORK/redis-probe.csv")
  [ -n "$probe_rps" ] || die "redis-benchmark printed no SET figure: $(cat "$WORK/redis-probe.csv")"
  local n
  n=$(awk -v r="$probe_rps" -v s="$REDIS_SECONDS" -v p="$pipeline" \
    'BEGIN { n = int(r * s); if (n < 20000 * p) n = 20000 * p; print n }')
  say "redis -P $pipeline: redis-benchmark -t set,get -c $CONNS -P $pipeline -d $VALUE_BYTES -r $KEYS -n $n"
  local csv="$WORK/redis-P$pipeline.csv"
  run redis-benchmark "${common[@]}" -t set,get -n "$n" >"$csv" 2>&1 ||
    die "redis-benchmark failed: $(cat "$csv")"
  # Columns: test, rps, avg, min, p50, p95, p99, max (ms).
  RB_SET_RPS='' RB_GET_RPS=''
  read -r RB_SET_RPS RB_SET_P50 RB_SET_P99 < <(awk -F'","' '/^"SET"/ { printf "%.0f %s %s\n", $2, $5, $7 }' "$csv")
  read -r RB_GET_RPS RB_GET_P50 RB_GET_P99 < <(awk -F'","' '/^"GET"/ { printf "%.0f %s %s\n", $2, $5, $7 }' "$csv")
  if [ -z "$RB_SET_RPS" ] || [ -z "$RB_GET_RPS" ]; then
    die "cannot read redis-benchmark output: $(cat "$csv")"
  fi
}

# --- The runs -------------------------------------------------------------------

FS_TYPE=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
say "temp dir $WORK ($FS_TYPE); $(nproc) cores; load average $LOAD_BEFORE"
if [ "$FS_TYPE" = "tmpfs" ] || [ "$FS_TYPE" = "ramfs" ]; then
  say "warning: the temp dir is on $FS_TYPE, where fsync costs nothing: set TMPDIR to a disk"
fi
FAILED=0

start_meridiand
say "meridiand on 127.0.0.1:$HTTP_PORT (sync = true, data in $WORK/node)"

# The node's count of committed writes: wrk sees only HTTP statuses, and a
# batch answers 200 even when its operations fail one by one.
node_writes() {
  curl -sf "http://127.0.0.1:$HTTP_PORT/v1/status" | sed -nE 's/.*"writes":([0-9]+).*/\1/p'
}
# check_writes NAME BEFORE EXPECTED: at least EXPECTED writes committed since.
check_writes() {
  local after
  after=$(node_writes)
  [ -n "$after" ] || die "$1: cannot read writes from /v1/status"
  if [ $((after - $2)) -lt "$3" ]; then
    say "$1: only $((after - $2)) writes committed for $3 acknowledged"
    FAILED=1
  fi
}

w0=$(node_writes)
run_wrk put "$WORK/put.lua" "$CONNS"
PUT_RPS=$RPS PUT_P50=$P50_MS PUT_P99=$P99_MS PUT_ERR=$ERRORS
check_writes put "$w0" "$REQUESTS"

say "preloading $KEYS keys for GET ($((KEYS / BATCH_OPS)) JSON batches)"
for ((first = 0; first < KEYS; first += BATCH_OPS)); do
  awk -v first="$first" -v n="$BATCH_OPS" -v value="$VALUE" 'BEGIN {
    printf "["
    for (i = 0; i < n; i++) {
      if (i) printf ","
      printf "{\"op\":\"put\",\"key\":\"bench-%05d\",\"value\":\"%s\"}", first + i, value
    }
    printf "]"
  }' >"$WORK/preload.json"
  curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/preload.json" \
    "http://127.0.0.1:$HTTP_PORT/v1/batch" >"$WORK/preload.out" || die "preload batch failed"
  ok=$(grep -o '"status":200' "$WORK/preload.out" | wc -l)
  [ "$ok" -eq "$BATCH_OPS" ] || die "preload: $ok of $BATCH_OPS puts succeeded: $(head -c 300 "$WORK/preload.out")"
done

run_wrk get "$WORK/get.lua" "$CONNS"
GET_RPS=$RPS GET_P50=$P50_MS GET_P99=$P99_MS GET_ERR=$ERRORS

w0=$(node_writes)
run_wrk batch "$WORK/batch.lua" "$BATCH_CONNS"
BATCH_RPS=$RPS_EXACT BATCH_P50=$P50_MS BATCH_P99=$P99_MS BATCH_ERR=$ERRORS
BATCH_OPS_S=$(awk -v r="$RPS_EXACT" -v n="$BATCH_OPS" 'BEGIN { printf "%.0f", r * n }')
check_writes batch "$w0" $((REQUESTS * BATCH_OPS))

# meridiand is stopped before Redis runs, so that neither competes with the
# other's background work (LevelDB compaction) for the two cores.
kill -TERM "$MERIDIAND_PID"
rc=0
wait "$MERIDIAND_PID" || rc=$?
forget "$MERIDIAND_PID"
[ "$rc" -eq 0 ] || say "meridiand exited with status $rc on SIGTERM"

start_redis
say "redis-server on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync everysec)"
run_redis 1
R1_SET=$RB_SET_RPS R1_SET_P50=$RB_SET_P50 R1_SET_P99=$RB_SET_P99
R1_GET=$RB_GET_RPS R1_GET_P50=$RB_GET_P50 R1_GET_P99=$RB_GET_P99
run_redis 16
R16_SET=$RB_SET_RPS R16_SET_P50=$RB_SET_P50 R16_SET_P99=$RB_SET_P99
R16_GET=$RB_GET_RPS R16_GET_P50=$RB_GET_P50 R16_GET_P99=$RB_GET_P99
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true

say "raw LevelDB: leveldb_ceiling --seconds $CEILING_SECONDS --batch $BATCH_OPS --value-bytes $VALUE_BYTES --keys $KEYS"
run "$CEILING" "$WORK/ceiling" --seconds "$CEILING_SECONDS" --batch "$BATCH_OPS" \
  --value-bytes "$VALUE_BYTES" --keys "$KEYS" >"$WORK/ceiling.out" 2>&1 ||
  die "leveldb_ceiling failed: $(cat "$WORK/ceiling.out")"
LDB_OPS=$(sed -n 's/^ops_per_sec=//p' "$WORK/ceiling.out")
[ -n "$LDB_OPS" ] || die "leveldb_ceiling printed no figure: $(cat "$WORK/ceiling.out")"

# One record per synced batch: how many fsyncs the disk does in a second.
# A durable PUT waits for one, so 32 connections can have at most 32 PUTs
# acknowledged per fsync however well the group commit works.
say "fsync rate: leveldb_ceiling --seconds 2 --batch 1"
run "$CEILING" "$WORK/fsync" --seconds 2 --batch 1 --value-bytes "$VALUE_BYTES" \
  --keys "$KEYS" >"$WORK/fsync.out" 2>&1 || die "leveldb_ceiling failed: $(cat "$WORK/fsync.out")"
SYNC_RATE=$(sed -n 's/^ops_per_sec=//p' "$WORK/fsync.out")
[ -n "$SYNC_RATE" ] || die "leveldb_ceiling printed no figure: $(cat "$WORK/fsync.out")"
SYNC_MS=$(awk -v r="$SYNC_RATE" 'BEGIN { printf "%.2f", (r > 0) ? 1000 / r : 0 }')
PUT_BOUND=$((SYNC_RATE * CONNS))

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# The checkout the script ran in (`./dev bench node` builds it just before).
SOURCE=$(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo "not a git checkout")

# --- The table ------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() {  # verdict VALUE OP LIMIT  (OP: ge or le)
  awk -v v="$1" -v op="$2" -v l="$3" \
    'BEGIN { ok = (op == "ge") ? (v >= l) : (v <= l); print ok ? "met" : "MISSED" }'
}

R_PUT=$(ratio "$PUT_RPS" "$R1_SET")
R_GET=$(ratio "$GET_RPS" "$R1_GET")
R_BATCH=$(ratio "$BATCH_OPS_S" "$LDB_OPS")

echo
echo "Meridian single-node benchmark, $START_DATE"
echo "$(nproc) cores; load average $LOAD_BEFORE before, $LOAD_AFTER after; temp dir on $FS_TYPE"
echo "checkout $SOURCE; $CONNS connections, $VALUE_BYTES-byte values, $KEYS keys," \
  "${SECONDS_PER_RUN} s per wrk run"
echo
printf '%-46s %14s %10s %10s %8s\n' "line" "rate" "p50 ms" "p99 ms" "errors"
printf '%-46s %14s %10s %10s %8s\n' "----" "----" "------" "------" "------"
row() { printf '%-46s %14s %10s %10s %8s\n' "$@"; }
row "1 meridian PUT /v1/kv (sync, c$CONNS)" "$PUT_RPS req/s" "$PUT_P50" "$PUT_P99" "$PUT_ERR"
row "2 meridian GET /v1/kv (c$CONNS)" "$GET_RPS req/s" "$GET_P50" "$GET_P99" "$GET_ERR"
row "3 meridian POST /v1/batch msgpack x$BATCH_OPS (c$BATCH_CONNS)" "$BATCH_OPS_S ops/s" \
  "$BATCH_P50" "$BATCH_P99" "$BATCH_ERR"
row "  (batch requests)" "$BATCH_RPS req/s" "" "" ""
row "4 redis SET -P 1 (c$CONNS, AOF everysec)" "$R1_SET req/s" "$R1_SET_P50" "$R1_SET_P99" "-"
row "4 redis GET -P 1 (c$CONNS)" "$R1_GET req/s" "$R1_GET_P50" "$R1_GET_P99" "-"
row "4 redis SET -P 16 (c$CONNS, AOF everysec)" "$R16_SET req/s" "$R16_SET_P50" "$R16_SET_P99" "-"
row "4 redis GET -P 16 (c$CONNS)" "$R16_GET req/s" "$R16_GET_P50" "$R16_GET_P99" "-"
row "5 raw LevelDB WriteBatch x$BATCH_OPS, sync each" "$LDB_OPS ops/s" "" "" "-"
row "  raw LevelDB 1-record synced writes" "$SYNC_RATE syncs/s" "" "" "-"
echo "fsync: $SYNC_MS ms on average; durable PUT bound at c$CONNS: $CONNS x $SYNC_RATE =" \
  "$PUT_BOUND req/s (PUT reached $(ratio "$PUT_RPS" "$PUT_BOUND") of it)"
echo
printf '%-46s %10s %10s %8s\n' "target" "measured" "needed" "verdict"
printf '%-46s %10s %10s %8s\n' "------" "--------" "------" "-------"
trow() { printf '%-46s %10s %10s %8s\n' "$@"; }
trow "PUT / redis SET -P1" "$R_PUT" ">= 0.40" "$(verdict "$R_PUT" ge 0.4)"
trow "GET / redis GET -P1" "$R_GET" ">= 0.50" "$(verdict "$R_GET" ge 0.5)"
trow "batch / raw LevelDB" "$R_BATCH" ">= 0.70" "$(verdict "$R_BATCH" ge 0.7)"
trow "PUT p99 (ms)" "$PUT_P99" "<= 5" "$(verdict "$PUT_P99" le 5)"
echo "(for reference: PUT / redis SET -P16 $(ratio "$PUT_RPS" "$R16_SET"), GET / redis GET -P16 $(ratio "$GET_RPS" "$R16_GET"))"

if [ "$PUT_ERR" -gt 0 ] || [ "$GET_ERR" -gt 0 ] || [ "$BATCH_ERR" -gt 0 ] || [ "$FAILED" -ne 0 ]; then
  echo "node_bench: some requests or writes failed; the figures above are not to be trusted" >&2
  FAILED=1
fi
exit "$FAILED"
