#!/usr/bin/env bash
# Installs livekit-server from its Go module at a pinned version, once, and prints its path.
#
#   .tools/bin/livekit-server            the git-ignored tools folder of this checkout
#   ~/.cache/persistent-voice-agent/...  a per-machine cache, so a fresh clone on the same
#                                        machine reuses the binary instead of rebuilding it
#
# Needs Go (>= 1.24) and the Go module proxy. Everything else goes to stdout/stderr as logs;
# the last line of stdout is the binary's absolute path.
set -euo pipefail

LIVEKIT_SERVER_VERSION="${LIVEKIT_SERVER_VERSION:-v1.13.5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_bin="$root/.tools/bin"
cache_dir="${PVA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/persistent-voice-agent}/livekit-server-$LIVEKIT_SERVER_VERSION"
target="$tools_bin/livekit-server"

version_ok() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "${LIVEKIT_SERVER_VERSION#v}"; }

mkdir -p "$tools_bin"
if version_ok "$target"; then echo "$target"; exit 0; fi

if ! version_ok "$cache_dir/livekit-server"; then
  command -v go >/dev/null || { echo "ensure_livekit_server: Go is required to build livekit-server $LIVEKIT_SERVER_VERSION (https://go.dev/dl/)" >&2; exit 1; }
  echo "ensure_livekit_server: building github.com/livekit/livekit-server/cmd/server@$LIVEKIT_SERVER_VERSION (first time only)..." >&2
  start=$(date +%s)
  mkdir -p "$cache_dir"
  tmp_bin="$(mktemp -d)"
  GOBIN="$tmp_bin" GOFLAGS=-mod=mod go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_SERVER_VERSION" >&2
  mv "$tmp_bin/server" "$cache_dir/livekit-server"
  rmdir "$tmp_bin"
  echo "ensure_livekit_server: built in $(( $(date +%s) - start )) s" >&2
fi
cp "$cache_dir/livekit-server" "$target.tmp" && mv "$target.tmp" "$target"
echo "$target"
