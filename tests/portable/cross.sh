#!/usr/bin/env bash
# Usage: tests/portable/cross.sh PG_CONFIG DIST_DIR OWNER OUTDIR
#
# One database, two schemas: `native` (CREATE EXTENSION month_lock, by the superuser) and
# `portable` (the SQL-only edition, installed by OWNER with psql -f). Checks that both catalogs
# offer the same API (names, argument types and names, results, volatility, parallel safety,
# strictness, comments, the view's columns and definition, grants), then runs cross/specs:
# sessions of either edition exclude each other on the same month, in both scopes and modes,
# with legacy keys and another namespace, and a release in one edition hands the month to a
# waiter queued in the other.
set -euo pipefail
pg_config=${1:?}; dist=${2:?}; owner=${3:?}; out=${4:?}
here=$(cd "$(dirname "$0")" && pwd)
bindir=$("$pg_config" --bindir)
pgxs=$(dirname "$("$pg_config" --pgxs)")/../..
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
db=ml_cross
"${psql[@]}" -d postgres -c "CREATE DATABASE $db"
# The SQL-only edition first: it refuses to install beside another edition's token sequence
# (one database, one sequence), checked below; CREATE EXTENSION cannot be refused.
"${psql[@]}" -d $db -c "CREATE SCHEMA portable AUTHORIZATION $owner"
PGUSER=$owner PGOPTIONS="-c search_path=portable" "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql"
"${psql[@]}" -d $db -c "CREATE SCHEMA native" -c "CREATE EXTENSION month_lock SCHEMA native"

# One sequence per database: beside the native extension, the SQL-only edition neither installs
# (nor upgrades in place) nor hands out tokens; its locks still work (the specs below).
"${psql[@]}" -d $db -c "CREATE SCHEMA portable2 AUTHORIZATION $owner"
if err=$(PGUSER=$owner PGOPTIONS="-c search_path=portable2" "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql" 2>&1); then
  echo "cross: FAILED: the SQL-only edition installed beside the native extension"; exit 1
fi
grep -q 'another month_lock edition is installed in this database (schema ' <<<"$err" \
  || { echo "cross: FAILED: unexpected refusal: $err"; exit 1; }
echo "cross: ok: the SQL-only edition does not install beside another edition"
got=$(PGUSER=$owner PGOPTIONS="-c search_path=portable" "${psql[@]}" -d $db -At -v VERBOSITY=sqlstate \
  -c "SELECT month_lock_try(2024, 2)" -c "SELECT month_lock_token(2024, 2)" 2>&1 || true)
grep -q '^ERROR:  55000' <<<"$got" || { echo "cross: FAILED: a SQL-only token beside the native extension: $got"; exit 1; }
echo "cross: ok: beside the native extension the SQL-only edition hands out no token (55000)"

# Every check is one row (check, ok); any ok = false fails.
result=$("${psql[@]}" -d $db -At -F ' ' <<'SQL'
WITH api AS (
  SELECT n.nspname AS edition, p.proname, pg_get_function_arguments(p.oid) AS args,
         pg_get_function_result(p.oid) AS result, p.provolatile, p.proparallel, p.proisstrict,
         p.prosecdef, obj_description(p.oid, 'pg_proc') AS comment
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname IN ('native', 'portable') AND p.proname NOT LIKE 'month\_lock\_\_%'),
native AS (SELECT proname, args, result, provolatile, proparallel, proisstrict, prosecdef, comment FROM api WHERE edition = 'native'),
portable AS (SELECT proname, args, result, provolatile, proparallel, proisstrict, prosecdef, comment FROM api WHERE edition = 'portable')
SELECT 'same functions, signatures, attributes and comments',
       NOT EXISTS (SELECT * FROM native EXCEPT SELECT * FROM portable)
   AND NOT EXISTS (SELECT * FROM portable EXCEPT SELECT * FROM native)
   AND (SELECT count(*) FROM native) = 31
UNION ALL
SELECT 'every SQL-only function pins search_path and is not SECURITY DEFINER',
       bool_and(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] AND NOT p.prosecdef)
  FROM pg_proc p WHERE p.pronamespace = 'portable'::regnamespace
UNION ALL
SELECT 'same view columns',
       (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'native.month_locks'::regclass AND attnum > 0)
     = (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'portable.month_locks'::regclass AND attnum > 0)
UNION ALL
SELECT 'same view definition (up to the schema name)',
       replace(pg_get_viewdef('native.month_locks'::regclass), 'native.', '')
     = replace(pg_get_viewdef('portable.month_locks'::regclass), 'portable.', '')
UNION ALL
SELECT 'same comments on view and sequence',
       obj_description('native.month_locks'::regclass, 'pg_class') = obj_description('portable.month_locks'::regclass, 'pg_class')
   AND obj_description('native.month_lock_token_seq'::regclass, 'pg_class') = obj_description('portable.month_lock_token_seq'::regclass, 'pg_class')
UNION ALL
SELECT 'PUBLIC reads the view and draws tokens, cannot set the sequence back',
       has_table_privilege('public', 'portable.month_locks', 'SELECT')
   AND has_sequence_privilege('public', 'portable.month_lock_token_seq', 'USAGE')
   AND NOT has_sequence_privilege('public', 'portable.month_lock_token_seq', 'UPDATE');
SQL
)
echo "$result"
if grep -q ' f$' <<<"$result"; then
  echo "cross: catalog check failed"; exit 1
fi
mkdir -p "$out"
specs=$(cd "$here/cross/specs" && ls *.spec | sed 's/\.spec$//' | sort)
"$pgxs/src/test/isolation/pg_isolation_regress" --bindir="$bindir" --inputdir="$here/cross" \
  --outputdir="$out" --use-existing --dbname=$db $specs
