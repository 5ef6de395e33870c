#!/usr/bin/env bash
# The text benchmark (`./dev bench text`; issue 7): replays an editing trace
# (default tests/data/traces/automerge-paper.json.gz) in Meridian's text
# CRDT (bench/text_trace), in diamond-types-node and in Yjs (from npm, into
# bench/peers/), in one run, and prints one table with our ratios and the
# issue's targets (bench/text_peers/compare.mjs).
#
#   bench/text_bench.sh BUILD_DIR [TRACE.json.gz]
#
# BUILD_DIR holds bench/text_trace (a RelWithDebInfo build). Needs node and
# npm (`./dev bench text` installs them). Runs: text_trace and
# diamond-types with TEXT_BENCH_RUNS runs each (default 5; the median
# apply and load times), Yjs with TEXT_BENCH_YJS_RUNS (default 1: about 6 s
# a run). Exits 1 when a replay's text differs from the trace's endContent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:?usage: text_bench.sh BUILD_DIR [TRACE.json.gz]}"
trace="${2:-$root/tests/data/traces/automerge-paper.json.gz}"
runs="${TEXT_BENCH_RUNS:-5}"
yjs_runs="${TEXT_BENCH_YJS_RUNS:-1}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$root/bench/text_peers/install.sh"
echo "==> meridian: $build/bench/text_trace replay ($runs runs)"
"$build/bench/text_trace" replay --json --runs "$runs" "$trace" >"$tmp/ours.json"
echo "==> diamond-types-node ($runs runs)"
node --expose-gc "$root/bench/text_peers/replay.mjs" --peer dt --runs "$runs" "$trace" >"$tmp/dt.json"
echo "==> yjs ($yjs_runs runs)"
node --expose-gc "$root/bench/text_peers/replay.mjs" --peer yjs --runs "$yjs_runs" "$trace" >"$tmp/yjs.json"
for f in ours dt yjs; do printf '%s: %s\n' "$f" "$(cat "$tmp/$f.json")"; done
echo
node "$root/bench/text_peers/compare.mjs" "$tmp/ours.json" "$tmp/dt.json" "$tmp/yjs.json"
