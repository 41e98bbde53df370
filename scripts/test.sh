#!/usr/bin/env bash
# The whole test suite: installs the system tools the tests drive (as root), then bun test.
# Extra arguments go to `bun test` (e.g. a path filter).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/bun ] || npm install --no-audit --no-fund
if [ "$(id -u)" = 0 ]; then
  bash scripts/setup-system.sh
else
  echo "note: not root: the iptables and network-namespace tests need root and will fail" >&2
fi
export PATH="$PWD/node_modules/.bin:$PATH"
# The production bundle (dist/, what the image runs; ~1 s): bin/edgemesh runs it, so the tests that
# drive bin/edgemesh test it too.
bun scripts/build.ts
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# 60 s per test and per hook unless a test names its own: e2e hooks stop several agents and a
# network-namespace bed (8 s grace each before SIGKILL), more than Bun's 5 s default on a loaded
# machine. On the command line because Bun 1.4 does not read a timeout from bunfig.toml.
exec bun test --timeout 60000 "$@"
