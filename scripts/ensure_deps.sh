#!/usr/bin/env bash
# Installs node modules with `npm ci` when they are missing or older than the lockfile.
# Fast (a hash compare) when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.pva-lock-sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
echo "ensure_deps: installing node modules (npm ci)..." >&2
# No dependency brings onnxruntime-node today (the silero and livekit plugins do). If one ever
# does, its postinstall would download CUDA providers at install time; the CPU runtime ships in
# the package, so the download is skipped. This is an environment variable, not an .npmrc key:
# npm 11 warns about unknown .npmrc keys on every command.
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error >&2
echo "$want" > "$stamp"
