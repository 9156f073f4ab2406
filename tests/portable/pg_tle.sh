#!/usr/bin/env bash
# Usage: tests/portable/pg_tle.sh PG_CONFIG DIST_DIR OWNER
#
# pg_tle cannot be installed here (neither Debian nor PyPI packages it), so this checks what
# can be checked without it: the extension script that dist/month_lock-pg_tle.sql registers is
# byte for byte dist/month_lock-portable.sql, and that file runs through a stub
# pgtle.install_extension (which executes the script as CREATE EXTENSION would, in the current
# schema) and yields a working edition.
set -euo pipefail
pg_config=${1:?}; dist=${2:?}; owner=${3:?}
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
python3 - "$dist" <<'PY'
import sys
dist = sys.argv[1]
tle = open(f'{dist}/month_lock-pg_tle.sql').read()
plain = open(f'{dist}/month_lock-portable.sql').read()
start = tle.index('$_pgtle_$') + len('$_pgtle_$')
end = tle.index('$_pgtle_$', start)
if tle[start:end] != plain:
    sys.exit('pg_tle: the registered script differs from month_lock-portable.sql')
print('pg_tle: ok: the registered script is month_lock-portable.sql')
PY
db=ml_tle
"${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $owner"
PGUSER=$owner "${psql[@]}" -d $db <<'SQL'
CREATE SCHEMA pgtle;
-- The signature of pg_tle's install_extension; the stub runs the script where CREATE EXTENSION
-- would (the current schema) instead of registering it.
CREATE FUNCTION pgtle.install_extension(name text, version text, description text, ext text,
                                        requires text[] DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE ext;
  RETURN true;
END $$;
SQL
PGUSER=$owner "${psql[@]}" -d $db -f "$dist/month_lock-pg_tle.sql" >/dev/null
got=$(PGUSER=$owner "${psql[@]}" -d $db -At -c "SELECT month_lock_try(2024, 3) AND month_lock_held(2024, 3) AND month_lock_release(2024, 3) AND (SELECT count(*) FROM pg_proc WHERE proname LIKE 'month\\_lock%' AND pronamespace = 'public'::regnamespace) >= 31")
[ "$got" = t ] || { echo "pg_tle: FAILED: the script run through the stub gave no working edition ($got)"; exit 1; }
echo "pg_tle: ok: the pg_tle form parses and installs a working edition through a stub pgtle"
