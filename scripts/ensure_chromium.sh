#!/usr/bin/env bash
# Makes sure Debian's `chromium` is installed at /usr/bin/chromium for the browser tests
# (driven by playwright-core with `executablePath`; no browser is ever downloaded by npm).
# Prints the executable path on success (see ensure_debian_package.sh).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/ensure_debian_package.sh" "${CHROMIUM_BIN:-/usr/bin/chromium}" chromium
