#!/usr/bin/env bash
# Usage: tests/portable/run.sh PG_CONFIG DIST_DIR
#
# The SQL-only edition's tests, inside tools/with-cluster.sh (PGHOST/PGPORT/PGUSER = a superuser
# of a throwaway cluster on which month_lock's library is never loaded, except in the database
# of the cross-edition steps). docs/editions.md describes what each step proves.
#   1. a non-superuser role owns databases and installs the edition there with psql -f
#   2. tests/regress (pg_regress + isolation specs) against it as that role, with the expected
#      output of tests/regress/expected, replaced by tests/portable/regress-expected/NAME.out
#      only for tests whose difference docs/editions.md names (settings_1.out: PostgreSQL 14,
#      where an unknown month_lock.* name is accepted by the server itself)
#   3. the edition's own suite tests/portable/sql + specs as that role
#   3c. cancels storming month_lock calls never drop an earlier hold, and a failed month_lock_all
#      adds no session reference (tests/portable/cancel_storm.py; its other phases: make portable-storm)
#   3d. other roles of the database: overloads planted in the edition's schema are never bound,
#      the install refuses a schema others may create objects in and objects others created
#      under its names, and a role's own month_lock_token_seq changes nothing
#      (tests/portable/hostile.sh)
#   3e. an interrupt while month_lock_claim skips a month held before the call leaves it held
#      (tests/portable/claim_held.sh)
#   4. native and SQL-only sessions in one database (two schemas) exclude each other, and both
#      catalogs match; tokens come from one sequence (tests/portable/cross.sh)
#   5. moving SQL-only -> CREATE EXTENSION month_lock -> SQL-only, locks held and tokens growing
#      (tests/portable/move.sh)
#   5b. calls in flight during an upgrade in place find every helper they call (replaced in
#      place), and what happens when a newer script renames one (tests/portable/inflight.sh)
#   6. the pg_tle form: its body is the plain script, and it installs through a stub pgtle
#      (tests/portable/pg_tle.sh)
set -euo pipefail
pg_config=${1:?pg_config}
dist=${2:?dist dir}
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/portable
bindir=$("$pg_config" --bindir)
pgxs=$(dirname "$("$pg_config" --pgxs)")/../..
pg_regress=$pgxs/src/test/regress/pg_regress
pg_isolation_regress=$pgxs/src/test/isolation/pg_isolation_regress
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
owner=month_lock_owner
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
out=$(mktemp -d /tmp/month_lock_portable.XXXXXX)
chmod 755 "$out"
status=0
step() { echo "=== portable: $*"; }
fail() { echo "portable: FAILED: $*"; status=1; }

step "1. role $owner (no superuser) owns the test databases and installs the edition with psql -f"
"${psql[@]}" -d postgres -c "CREATE ROLE $owner LOGIN CREATEROLE NOSUPERUSER NOCREATEDB"
if [ "$major" -ge 16 ]; then
  # A CREATEROLE role that creates a role may SET ROLE to it (view.sql does).
  "${psql[@]}" -d postgres -c "ALTER ROLE $owner SET createrole_self_grant = 'set, inherit'"
fi
if [ "$major" -lt 15 ]; then
  # The edition refuses a schema where PUBLIC may create objects (docs/editions.md), which is
  # PostgreSQL 14's default for public: the test databases start as PostgreSQL 15 makes them
  # (public belongs to the database owner, no CREATE for PUBLIC). tests/portable/hostile.sh
  # tests the refusal.
  "${psql[@]}" -d template1 -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC" -c "ALTER SCHEMA public OWNER TO $owner"
fi
if [ "$major" -ge 15 ]; then
  # deadlock.spec sets deadlock_timeout, a superuser setting; PostgreSQL 15+ can grant it.
  "${psql[@]}" -d postgres -c "GRANT SET ON PARAMETER deadlock_timeout TO $owner"
fi
for db in ml_portable_regress ml_portable_isolation ml_portable_suite ml_portable_specs; do
  "${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $owner"
  PGUSER=$owner "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql"
done
PGUSER=$owner "${psql[@]}" -d ml_portable_suite -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" -At \
  | grep -qx f || fail "the installing role is a superuser"

step "2. tests/regress against the SQL-only edition, as $owner"
# Expected output: the native files, except where docs/editions.md names a difference.
mkdir -p "$out/regress-in/expected"
ln -s "$root/tests/regress/sql" "$out/regress-in/sql"
ln -s "$root/tests/regress/specs" "$out/regress-in/specs"
cp "$root"/tests/regress/expected/*.out "$out/regress-in/expected/"
for f in "$here"/regress-expected/*.out; do
  [ -e "$f" ] && cp "$f" "$out/regress-in/expected/"
done
regress_tests=$(cd "$root/tests/regress/sql" && ls *.sql | sed 's/\.sql$//' | sort)
isolation_tests=$(cd "$root/tests/regress/specs" && ls *.spec | sed 's/\.spec$//' | sort)
mkdir -p "$out/regress" "$out/isolation" "$out/suite" "$out/specs"
# Before PostgreSQL 16 a non-superuser cannot SET ROLE to a role it created: view.sql (which
# creates a reader role and reads as it) and, on 14, deadlock.spec run as the superuser, against
# the same edition installed by the owner.
as_super_regress=""
as_super_isolation=""
if [ "$major" -lt 16 ]; then
  regress_tests=$(echo $regress_tests | tr ' ' '\n' | grep -vx view)
  as_super_regress=view
fi
if [ "$major" -lt 15 ]; then
  isolation_tests=$(echo $isolation_tests | tr ' ' '\n' | grep -vx deadlock)
  as_super_isolation=deadlock
fi
PGUSER=$owner "$pg_regress" --bindir="$bindir" --inputdir="$out/regress-in" --outputdir="$out/regress" \
  --use-existing --dbname=ml_portable_regress $regress_tests || fail "pg_regress (tests/regress)"
if [ -n "$as_super_regress" ]; then
  mkdir -p "$out/regress-super"
  "$pg_regress" --bindir="$bindir" --inputdir="$out/regress-in" --outputdir="$out/regress-super" \
    --use-existing --dbname=ml_portable_regress $as_super_regress || fail "pg_regress (tests/regress, as superuser)"
fi
if [ -n "$as_super_isolation" ]; then
  mkdir -p "$out/isolation-super"
  "$pg_isolation_regress" --bindir="$bindir" --inputdir="$out/regress-in" --outputdir="$out/isolation-super" \
    --use-existing --dbname=ml_portable_isolation $as_super_isolation || fail "isolation specs (tests/regress, as superuser)"
fi
PGUSER=$owner "$pg_isolation_regress" --bindir="$bindir" --inputdir="$out/regress-in" --outputdir="$out/isolation" \
  --use-existing --dbname=ml_portable_isolation $isolation_tests || fail "isolation specs (tests/regress)"

# docs/editions.md: a release of a month not held in session scope is quiet for the client but
# leaves pg_advisory_unlock's WARNING in the server log (api.sql releases such months).
if [ -r "$PGHOST/server.log" ]; then
  if grep -q "you don't own a lock of type" "$PGHOST/server.log"; then
    echo "portable: as documented, quiet releases left pg_advisory_unlock's WARNING in the server log"
  else
    fail "no WARNING of a quiet release in the server log (docs/editions.md says there is one)"
  fi
fi

step "3. the edition's own suite, as $owner"
suite_tests=$(cd "$here/sql" && ls *.sql | sed 's/\.sql$//' | sort)
PGUSER=$owner "$pg_regress" --bindir="$bindir" --inputdir="$here" --outputdir="$out/suite" \
  --use-existing --dbname=ml_portable_suite $suite_tests || fail "pg_regress (tests/portable)"
spec_tests=$(cd "$here/specs" && ls *.spec | sed 's/\.spec$//' | sort)
PGUSER=$owner "$pg_isolation_regress" --bindir="$bindir" --inputdir="$here" --outputdir="$out/specs" \
  --use-existing --dbname=ml_portable_specs $spec_tests || fail "isolation specs (tests/portable)"

step "3b. timeouts racing grants, as $owner"
"$here/race.sh" "$pg_config" "$owner" ml_portable_suite || fail "timeouts racing grants"

step "3c. cancels landing inside month_lock calls, as $owner"
# The phases whose promise holds without exception apart from window (2) of docs/editions.md,
# Cancels (an earlier hold is never dropped; a failed month_lock_all adds no session reference). The fresh and release phases measure the windows
# the edition has (docs/editions.md, Cancels) and run with `make portable-storm`.
# shellcheck disable=SC2086
python3 "$here/cancel_storm.py" "$pg_config" "$owner" ml_portable_suite 600 \
  ${MONTH_LOCK_STORM_PHASES:-reentry xact} || fail "cancel storm"

step "3d. other roles: planted overloads, objects created beforehand, sequences of their own"
"$here/hostile.sh" "$pg_config" "$dist" "$owner" || fail "other roles"

step "3e. cancels while month_lock_claim skips a held month, as $owner"
"$here/claim_held.sh" "$pg_config" "$owner" ml_portable_suite || fail "month_lock_claim keeps earlier holds"

step "4. native and SQL-only sessions in one database"
"$here/cross.sh" "$pg_config" "$dist" "$owner" "$out/cross" || fail "cross-edition"

step "5. moving between editions"
"$here/move.sh" "$pg_config" "$dist" "$owner" || fail "moving between editions"

step "5b. calls in flight during an upgrade in place"
"$here/inflight.sh" "$pg_config" "$dist" "$owner" || fail "calls in flight during an upgrade in place"

step "6. the pg_tle form"
"$here/pg_tle.sh" "$pg_config" "$dist" "$owner" || fail "pg_tle form"

for d in "$out"/regress "$out"/regress-super "$out"/isolation "$out"/isolation-super "$out"/suite "$out"/specs "$out"/cross; do
  if [ -s "$d/regression.diffs" ]; then
    echo "portable: differences ($d/regression.diffs):"
    head -c 30000 "$d/regression.diffs"
  fi
done
[ $status = 0 ] && echo "portable: every step passed" && rm -rf "$out"
exit $status
