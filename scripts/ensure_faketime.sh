#!/usr/bin/env bash
# Makes sure Debian's `faketime` (libfaketime) is installed, and prints the path of the library
# to preload: the clock tests start a real worker whose clock is set off by a few seconds
# (LD_PRELOAD=<it> FAKETIME=-7s), as a machine whose NTP stopped would be.
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/ensure_debian_package.sh" /usr/bin/faketime faketime >/dev/null
lib="$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -n 1 || true)"
[ -n "$lib" ] && [ -f "$lib" ] || { echo "ensure_faketime: libfaketime.so.1 not found (dpkg -L libfaketime)" >&2; exit 1; }
echo "$lib"
