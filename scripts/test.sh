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
exec bun test "$@"
