#!/usr/bin/env bash
# Usage: tools/check-unsafe.sh
#
# The extension's unsafe boundary, as far as the compiler does not hold it by itself. The crate
# root denies `unsafe_code` and allows it on the FFI module only (extension/src/lib.rs), so any
# `unsafe` outside extension/src/pg/ fails to compile. Only an attribute naming the lint can
# loosen that (no lint group holds it: allow(warnings) or allow(clippy::all) leave it denied),
# so this check fails when:
#   1. `unsafe_code` is named anywhere but those two lines of lib.rs, in any form: allow,
#      expect, warn, forbid, cfg_attr, spaces or line breaks inside the attribute, a comment;
#   2. the `unsafe` keyword appears outside extension/src/pg/ (outside `//` comments): a second
#      line of defence should a way around (1) exist;
#   3. a source file pulls code in from elsewhere (`#[path]`, `include!`), around both;
#   4. the FFI layer names the crate above it (it must reach the layers above only through its
#      hooks): `crate::` or `$crate::`, `crate as`, `super::super`, `super::` in pg/mod.rs (the
#      crate root from there), `extern crate`, or the crate's own name `month_lock::`.
set -euo pipefail
cd "$(dirname "$0")/../extension/src"
fail=0
complain() {
  echo "check-unsafe: $1" >&2
  fail=1
}

# 1. Exactly two mentions of unsafe_code, both in lib.rs: the deny at the crate root and the allow
#    on the line before 'mod pg;'.
mentions=$(grep -rn --include='*.rs' 'unsafe_code' . || true)
deny_line=$(grep -nx '#!\[deny(unsafe_code)\]' lib.rs | cut -d: -f1 || true)
allow_line=$(grep -nx '#\[allow(unsafe_code)\]' lib.rs | cut -d: -f1 || true)
expected="./lib.rs:$deny_line:#![deny(unsafe_code)]
./lib.rs:$allow_line:#[allow(unsafe_code)]"
if [ -z "$deny_line" ] || [ -z "$allow_line" ] || [ "$mentions" != "$expected" ] \
  || [ "$(sed -n "$((allow_line + 1))p" lib.rs)" != 'mod pg;' ]; then
  complain "unsafe_code may be named only by '#![deny(unsafe_code)]' in lib.rs and by
  '#[allow(unsafe_code)]' on the line before 'mod pg;' there; found:
${mentions:-  (none)}"
fi

# 2. The keyword outside the FFI layer (line comments stripped; a doc line may say `unsafe`).
keyword=$(find . -name '*.rs' -not -path './pg/*' -print0 | xargs -0 grep -nHE '\bunsafe\b' \
  | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' | grep -E ':[0-9]+:([^/]|/[^/])*\bunsafe\b' || true)
if [ -n "$keyword" ]; then
  complain "\`unsafe\` outside extension/src/pg/:
$keyword"
fi

# 3. Code from elsewhere.
pulled=$(grep -rnE --include='*.rs' '#!?\[[[:space:]]*path[[:space:]]*=|\binclude(_str|_bytes)?[[:space:]]*!' . || true)
if [ -n "$pulled" ]; then
  complain "a source file pulls code in from elsewhere (#[path] / include!), around this check:
$pulled"
fi

# 4. The FFI layer names nothing above it.
upward=$(grep -rnE --include='*.rs' '\bcrate[[:space:]]*::|\bcrate[[:space:]]+as\b|\bsuper[[:space:]]*::[[:space:]]*super\b|\bextern[[:space:]]+crate\b|\bmonth_lock[[:space:]]*::' pg/ || true)
from_root=$(grep -nE '\bsuper[[:space:]]*::' pg/mod.rs | sed 's|^|pg/mod.rs:|' || true)
upward=$(printf '%s\n%s' "$upward" "$from_root" | sed '/^$/d')
if [ -n "$upward" ]; then
  complain "the FFI layer (extension/src/pg/) names the crate above it:
$upward"
fi

[ "$fail" = 0 ] && echo "check-unsafe: unsafe only in extension/src/pg/, which names nothing above it"
exit "$fail"
