#!/usr/bin/env bash
# Usage: tools/installcheck.sh PG_CONFIG
#
# PostgreSQL's own test conventions against an existing server (PGHOST, PGPORT, PGUSER ... as
# for psql) that has month_lock installed: pg_regress runs tests/regress/sql/*.sql and compares
# with tests/regress/expected/*.out; pg_isolation_regress runs tests/regress/specs/*.spec.
# The tools come from PG_CONFIG's PGXS directory (Debian ships them in postgresql-client-NN).
# Needs a role that may create databases and extensions (a superuser).
set -euo pipefail
pg_config=${1:?pg_config}
root=$(cd "$(dirname "$0")/.." && pwd)
in=$root/tests/regress
pgxs=$(dirname "$("$pg_config" --pgxs)")/../..
pg_regress=$pgxs/src/test/regress/pg_regress
pg_isolation_regress=$pgxs/src/test/isolation/pg_isolation_regress
for t in "$pg_regress" "$pg_isolation_regress"; do
  [ -x "$t" ] || { echo "installcheck: $t not found (PGXS test tools of $pg_config)"; exit 1; }
done
out=${INSTALLCHECK_OUT:-$(mktemp -d /tmp/month_lock_installcheck.XXXXXX)}
mkdir -p "$out/regress" "$out/isolation"
regress_tests=$(cd "$in/sql" && ls *.sql | sed 's/\.sql$//' | sort)
isolation_tests=$(cd "$in/specs" && ls *.spec | sed 's/\.spec$//' | sort)
status=0
echo "installcheck: regression tests ($pg_regress)"
"$pg_regress" --bindir="$("$pg_config" --bindir)" --inputdir="$in" \
  --outputdir="$out/regress" --dbname=month_lock_regress --load-extension=month_lock $regress_tests || status=1
echo "installcheck: isolation specs ($pg_isolation_regress)"
"$pg_isolation_regress" --bindir="$("$pg_config" --bindir)" --inputdir="$in" \
  --outputdir="$out/isolation" --dbname=month_lock_isolation --load-extension=month_lock $isolation_tests || status=1
for d in "$out/regress" "$out/isolation"; do
  if [ -s "$d/regression.diffs" ]; then
    echo "installcheck: differences ($d/regression.diffs):"
    head -c 20000 "$d/regression.diffs"
  fi
done
exit $status
