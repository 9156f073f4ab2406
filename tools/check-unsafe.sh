#!/usr/bin/env bash
# Usage: tools/check-unsafe.sh
#
# The extension's unsafe boundary, as far as the compiler does not hold it by itself. The crate
# root denies `unsafe_code` and allows it on the FFI module only (extension/src/lib.rs), so any
# `unsafe` outside extension/src/pg/ fails to compile; this check fails when that arrangement is
# loosened: a second `allow(unsafe_code)` (or `expect`), the deny removed, or the FFI layer
# naming the rest of the crate (it must reach the layers above only through its hooks).
set -euo pipefail
cd "$(dirname "$0")/../extension/src"
fail=0
if ! grep -qx '#!\[deny(unsafe_code)\]' lib.rs; then
  echo "check-unsafe: extension/src/lib.rs no longer has #![deny(unsafe_code)]" >&2
  fail=1
fi
allowed=$(grep -rnE '(allow|expect)\(unsafe_code\)' --include='*.rs' . || true)
if [ "$allowed" != "./lib.rs:$(grep -nE '(allow|expect)\(unsafe_code\)' lib.rs | cut -d: -f1):#[allow(unsafe_code)]" ] \
  || ! grep -A1 -x '#\[allow(unsafe_code)\]' lib.rs | grep -qx 'mod pg;'; then
  echo "check-unsafe: unsafe_code may be allowed on 'mod pg;' in lib.rs only; found:" >&2
  echo "${allowed:-  (none)}" >&2
  fail=1
fi
if grep -rnE '\bcrate::' --include='*.rs' pg/; then
  echo "check-unsafe: the FFI layer (extension/src/pg/) names the crate above it (lines above)" >&2
  fail=1
fi
[ "$fail" = 0 ] && echo "check-unsafe: unsafe only in extension/src/pg/, which names nothing above it"
exit "$fail"
