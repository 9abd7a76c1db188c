#!/usr/bin/env bash
# Makes sure Debian's `chromium` is installed at /usr/bin/chromium for the browser tests
# (driven by playwright-core with `executablePath`; no browser is ever downloaded by npm).
# Idempotent and quiet: does nothing when it is already there. Installs with apt-get when
# running as root (or with passwordless sudo); otherwise says what to run and fails.
# Prints the executable path on success.
set -euo pipefail
bin="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "ensure_chromium: $bin is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "ensure_chromium: $bin is missing and apt-get is not available" >&2; exit 1; }

# Two concurrent callers (test.sh and a test's beforeAll) must not fight over the dpkg lock.
lock="${TMPDIR:-/tmp}/pva-ensure-chromium.lock"
exec 9>"$lock"
flock -w 900 9 || { echo "ensure_chromium: another install holds $lock" >&2; exit 1; }
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

echo "ensure_chromium: installing Debian chromium (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2; rm -f "$log"
  echo "ensure_chromium: apt-get install chromium failed" >&2
  exit 1
fi
rm -f "$log"
[ -x "$bin" ] || { echo "ensure_chromium: chromium installed but $bin is missing" >&2; exit 1; }
echo "$bin"
