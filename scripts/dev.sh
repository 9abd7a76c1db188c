#!/usr/bin/env bash
# `npm run dev`: the main job. Installs what is missing, then
#  - when LIVEKIT_URL is not configured (environment or .env): starts a local livekit-server
#    with livekit.yaml and uses the development key from .env.development;
#  - when no Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): starts a
#    private one (REDIS_URL) so sessions are shared across jobs;
#  - starts the token service + web client (`tsx web/server/main.ts`, http://127.0.0.1:8080);
#  - runs the worker in dev mode (`tsx agent/main.ts dev`).
# Ctrl-C stops everything it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/ensure_deps.sh

# Set to something (blank means the default, as everywhere), in the environment or in .env as
# dotenv reads it (`export X=…`, `X = …` and quotes included).
configured() {
  local v="${!1:-}"
  [ -n "${v// /}" ] && return 0
  [ -f .env ] && node -e 'const v = require("dotenv").parse(require("fs").readFileSync(".env"))[process.argv[1]]; process.exit(v !== undefined && v.trim() !== "" ? 0 : 1)' "$1"
}

pids=()
worker=""
redis_pidfile=""
# Ctrl-C reaches every child by itself (one process group), and the worker then tells its jobs to
# save and leave: a TERM on top would cut that short (agents-js exits at once on a TERM while a
# close is under way, orphaning its job processes for 15 s). So after an INT the worker gets up
# to 15 s to stop on its own; then whatever is left (and everything at a TERM or an exit) gets TERM.
cleanup() {
  trap - EXIT INT TERM
  if [ "$1" = INT ] && [ -n "$worker" ]; then
    for _ in $(seq 1 150); do kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The private Redis runs as a daemon (out of this process group): stopped by its pid file.
  if [ -n "$redis_pidfile" ] && [ -f "$redis_pidfile" ]; then
    kill "$(cat "$redis_pidfile")" 2>/dev/null || true
    rm -f "$redis_pidfile"
  fi
}
trap 'cleanup INT' INT
trap 'cleanup TERM' TERM
trap 'cleanup EXIT' EXIT

if ! configured LIVEKIT_URL; then
  set -a; . ./.env.development; set +a
  if curl -fsS "http://127.0.0.1:7880" >/dev/null 2>&1; then
    echo "dev: a LiveKit server already answers on 127.0.0.1:7880; using it" >&2
  else
    bin="$(bash scripts/ensure_livekit_server.sh | tail -n 1)"
    mkdir -p .tools
    # livekit.yaml sends webhooks to the token service on 8080: to WEB_PORT when it is another.
    "$bin" --config-body "$(sed "s#127.0.0.1:8080/livekit/webhook#127.0.0.1:${WEB_PORT:-8080}/livekit/webhook#" livekit.yaml)" > .tools/livekit-server.log 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:7880" >/dev/null 2>&1 && break; sleep 0.05; done
    curl -fsS "http://127.0.0.1:7880" >/dev/null || { echo "dev: livekit-server did not start (see .tools/livekit-server.log)" >&2; exit 1; }
    echo "dev: livekit-server on ws://127.0.0.1:7880 (logs: .tools/livekit-server.log)" >&2
  fi
fi

if ! configured REDIS_URL && ! configured REDIS_SENTINELS && ! configured REDIS_CLUSTER_NODES; then
  REDIS_URL="$(bash scripts/ensure_redis.sh)"; export REDIS_URL
  port="${REDIS_URL##*:}"; port="${port%%/*}"
  # One it started (none answered on 6379) is this run's: stopped with the rest.
  [ -f ".tools/redis-$port.pid" ] && redis_pidfile=".tools/redis-$port.pid"
  echo "dev: sessions are shared through Redis at $REDIS_URL" >&2
fi

# The token service + web client next to the worker (same environment: LiveKit, Redis, agent name).
node_modules/.bin/tsx web/server/main.ts &
pids+=("$!")
echo "dev: web client on http://127.0.0.1:${WEB_PORT:-8080}; or join with a token from: npm run token -- --identity <you> --room <room>" >&2
node_modules/.bin/tsx agent/main.ts dev &
worker="$!"
pids+=("$worker")
wait "${pids[-1]}"
