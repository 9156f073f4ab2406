#!/usr/bin/env bash
# Usage: tools/with-cluster.sh PG_CONFIG COMMAND [ARGS...]
#
# Starts a throwaway PostgreSQL cluster from the installation PG_CONFIG names (initdb into a
# temporary directory, a Unix socket only, a free port; as the OS user `postgres` when run as
# root), runs COMMAND with PGHOST/PGPORT/PGUSER/PGDATABASE pointing at it, then stops and
# deletes the cluster, whatever COMMAND's outcome. Exits with COMMAND's status.
set -euo pipefail
pg_config=${1:?pg_config}
shift
bindir=$("$pg_config" --bindir)
os_user=${PG_OS_USER:-postgres}
# Not month_lock_cluster.*: the Rust test kit sweeps such directories when their server is gone.
dir=$(mktemp -d /tmp/month_lock_regress.XXXXXX)
chmod 755 "$dir"
as=()
if [ "$(id -u)" = 0 ]; then
  chown "$os_user" "$dir"
  as=(runuser -u "$os_user" --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log"; exit 1; }
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
  -o "-p $port -k $dir -c listen_addresses='' -c fsync=off -c max_connections=60" >/dev/null \
  || { cat "$dir/server.log"; exit 1; }
echo "with-cluster: $("$bindir/postgres" --version) on socket $dir port $port"
set +e
PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres "$@"
status=$?
set -e
if grep -q "terminated by signal" "$dir/server.log"; then
  echo "with-cluster: a backend crashed:"; grep -B2 -A2 "terminated by signal" "$dir/server.log"; status=1
fi
exit $status
