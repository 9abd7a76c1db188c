#!/usr/bin/env bash
# Usage: ensure_debian_package.sh <executable path> <Debian package>
# Makes sure a Debian package a test needs is installed (chromium for the browser tests, faketime
# for a Redis with another clock), checked by the executable it provides. Idempotent and quiet:
# does nothing when the executable is there. Installs with apt-get when running as root (or with
# passwordless sudo); otherwise says what to run and fails. Prints the executable path on success.
set -euo pipefail
bin="$1"
pkg="$2"
me="ensure_debian_package($pkg)"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "$me: $bin is missing; install it with: sudo apt-get install -y $pkg" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "$me: $bin is missing and apt-get is not available" >&2; exit 1; }

# Two concurrent callers (test.sh and a test's beforeAll) must not fight over the dpkg lock.
lock="${TMPDIR:-/tmp}/pva-ensure-apt.lock"
exec 9>"$lock"
flock -w 900 9 || { echo "$me: another install holds $lock" >&2; exit 1; }
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

echo "$me: installing Debian $pkg (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
# The package lists may be stale or missing on a new machine: update once if the install fails.
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg" >"$log" 2>&1; then
  if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; rm -f "$log"
    echo "$me: apt-get install $pkg failed" >&2
    exit 1
  fi
fi
rm -f "$log"
[ -x "$bin" ] || { echo "$me: $pkg installed but $bin is missing" >&2; exit 1; }
echo "$bin"
