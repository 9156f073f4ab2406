#!/usr/bin/env bash
# Usage: tools/install.sh PG_CONFIG WANTED_MAJOR PGRX_HOME STAGE_DIR     (make install)
#
# Builds month_lock (release) for the PostgreSQL that PG_CONFIG names (a path, or a command on
# PATH) and installs it there with tools/install-files.sh (each file written under a temporary
# name and renamed over the old one). WANTED_MAJOR is what `make install PG=NN` asked for, empty
# when PG was not given: a PG_CONFIG of another major is refused rather than built for, since
# the library of one major refuses to load into another.
set -euo pipefail
pg_config=${1:?pg_config}
wanted=${2-}
pgrx_home=${3:?pgrx home}
stage=${4:?stage dir}
root=$(cd "$(dirname "$0")/.." && pwd)

if ! resolved=$(command -v "$pg_config"); then
  if [ -n "$wanted" ]; then
    echo "make install PG=$wanted: no pg_config at $pg_config. Install PostgreSQL $wanted's server" \
      "headers (Debian: postgresql-server-dev-$wanted) or name its pg_config:" \
      "make install PG_CONFIG=/path/to/pg_config" >&2
  else
    echo "make install: PG_CONFIG=$pg_config not found; name the pg_config of the PostgreSQL to" \
      "install into: make install PG_CONFIG=/path/to/pg_config" >&2
  fi
  exit 2
fi
major=$("$resolved" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ -n "$wanted" ] && [ "$major" != "$wanted" ]; then
  echo "make install PG=$wanted: PG_CONFIG=$resolved is PostgreSQL $major. Name a pg_config of" \
    "$wanted (make install PG_CONFIG=/path/to/pg_config) or leave PG out." >&2
  exit 2
fi
echo "month_lock: installing a release build into PostgreSQL $major ($resolved)"

"$root/tools/pgrx-home.sh" "$pgrx_home/$major" "$major" "$resolved"
PGRX_HOME=$pgrx_home/$major "$root/tools/stage.sh" "$resolved" release "$stage/$major"
if [ "$(id -u)" = 0 ]; then
  "$root/tools/install-files.sh" "$stage/$major" "$resolved"
else
  sudo "$root/tools/install-files.sh" "$stage/$major" "$resolved"
fi
