#!/usr/bin/env bash
# Usage: tools/stage.sh PG_CONFIG PROFILE OUT_DIR [EXTRA_FEATURES]
#
# Builds month_lock for the PostgreSQL major that PG_CONFIG names (`cargo pgrx package`,
# PROFILE = release | dev) and lays the files to install out in OUT_DIR:
#   lib/month_lock.so, extension/month_lock.control, extension/month_lock--VERSION.sql and every
#   script in sql/ named month_lock--*.sql (upgrade scripts, the released 0.1.0 script),
#   install.sh (tools/install-files.sh), INSTALL.
# EXTRA_FEATURES (e.g. pg_test) are added to pgNN: tools/install-while-loaded.sh stages a second,
# different build that way.
set -euo pipefail
pg_config=${1:?pg_config}
profile=${2:?profile}
out=${3:?out dir}
extra_features=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
cargo=${CARGO:-cargo}

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
args=(--pg-config "$pg_config" --out-dir "$raw" --no-default-features --features "pg$major${extra_features:+ $extra_features}")
[ "$profile" = release ] || args+=(--profile "$profile")
(cd "$root/extension" && "$cargo" pgrx package "${args[@]}")

rm -rf "$out"
mkdir -p "$out/lib" "$out/extension"
find "$raw" -type f -name '*.so' -exec cp {} "$out/lib/" \;
for f in "$root"/sql/month_lock--*.sql; do
  [ -e "$f" ] && cp "$f" "$out/extension/"
done
# pgrx's generated install script and control file last: they win over same-named files.
find "$raw" -type f \( -name '*.control' -o -name 'month_lock--*.sql' \) -exec cp {} "$out/extension/" \;
cp "$root/tools/install-files.sh" "$out/install.sh"
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$out/extension/month_lock.control")
cat >"$out/INSTALL" <<TXT
month_lock $version for PostgreSQL $major ($(uname -m), built against $("$pg_config" --version))

Install (as a user who may write to PostgreSQL's directories, usually root):

    ./install.sh /path/to/pg_config      # default: pg_config on PATH

It copies lib/* to \`pg_config --pkglibdir\` and extension/* to \`pg_config --sharedir\`/extension,
each file under a temporary name first and then renamed over the old one, so sessions that
have an older month_lock loaded keep working. Then, in each database:

    CREATE EXTENSION month_lock;                 -- new install (superuser)
    ALTER EXTENSION month_lock UPDATE;           -- from an older version

Only for PostgreSQL $major: a library built for another major refuses to load.
TXT
ls -l "$out/lib" "$out/extension" >&2
