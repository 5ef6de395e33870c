#!/usr/bin/env bash
# Installs the JavaScript text-CRDT peers that bench/text_peers/replay.mjs measures
# (yjs 13 and diamond-types-node 1.0.2) from the npm registry into DIR
# (default: <repo>/bench/peers, git-ignored). Does nothing when both are present.
#   bench/text_peers/install.sh [DIR]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:-${MERIDIAN_PEERS_DIR:-$repo/bench/peers}}"

have() { # have PACKAGE VERSION-PREFIX: installed, at a version starting with the prefix
  node -e 'const v = require(process.argv[1]).version; process.exit(v.startsWith(process.argv[2]) ? 0 : 1)' \
    "$dir/node_modules/$1/package.json" "$2" 2>/dev/null
}
command -v npm >/dev/null || { echo "install.sh: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
if have yjs 13. && have diamond-types-node 1.0.2; then exit 0; fi

mkdir -p "$dir" || { echo "install.sh: cannot create $dir" >&2; exit 1; }
if ! log="$(npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      yjs@13 diamond-types-node@1.0.2 2>&1)"; then
  printf '%s\n' "$log" >&2
  echo "install.sh: npm install of yjs@13 diamond-types-node@1.0.2 into $dir failed" >&2
  exit 1
fi
