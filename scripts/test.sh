#!/usr/bin/env bash
# `npm test`: installs what is missing (node modules, livekit-server, Redis), then runs every
# test (unit + end-to-end on a real livekit-server, real Redis, real worker processes).
# Extra arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/ensure_deps.sh
LIVEKIT_SERVER_BIN="$(bash scripts/ensure_livekit_server.sh | tail -n 1)"
REDIS_URL="$(bash scripts/ensure_redis.sh)"
# A Redis this script started itself (none answered on 6379) is stopped afterwards, also when a
# step below fails.
port="${REDIS_URL##*:}"; port="${port%%/*}"
if [ -f ".tools/redis-$port.pid" ]; then
  trap 'kill "$(cat ".tools/redis-'"$port"'.pid")" 2>/dev/null || true; rm -f ".tools/redis-'"$port"'.pid"' EXIT
fi
bash scripts/ensure_chromium.sh >/dev/null   # Debian chromium for the browser tests (no download)
bash scripts/ensure_faketime.sh >/dev/null   # Debian faketime: a worker with another clock (the clock check tests)
export LIVEKIT_SERVER_BIN REDIS_URL

node_modules/.bin/vitest run "$@"
