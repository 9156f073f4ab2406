#!/usr/bin/env bash
# Usage: tools/portable-build.sh VERSION OUTDIR
#
# Builds the SQL-only edition (docs/editions.md) from its one source:
#   sql/portable/*.sql                    the functions, in PL/pgSQL, one file per idea,
#                                         concatenated in name order
#   sql/month_lock.sql                    the view, token sequence, grants and comments, shared
#                                         with the native extension (made re-runnable here:
#                                         CREATE OR REPLACE VIEW, CREATE SEQUENCE IF NOT EXISTS,
#                                         pg_extension_config_dump only inside CREATE EXTENSION)
# into
#   OUTDIR/month_lock-portable.sql            one DO statement: `psql -v ON_ERROR_STOP=1 -f`
#                                             installs (or upgrades in place) into the current schema
#   OUTDIR/month_lock-pg_tle.sql              pgtle.install_extension with that same text as body
#   OUTDIR/month_lock-portable-uninstall.sql  drops the edition's objects from the current schema
# Each file is written under a temporary name and renamed, so a reader never sees half a file.
set -euo pipefail
version=${1:?version}
out=${2:?outdir}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
python3 - "$root" "$out" "$version" <<'PY'
import os, re, sys
root, out, version = sys.argv[1:4]

def read(path):
    with open(os.path.join(root, path)) as f:
        return f.read()

def write(name, text):
    tmp = os.path.join(out, '.' + name + '.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, os.path.join(out, name))

def once(text, old, new):
    n = text.count(old)
    if n != 1:
        sys.exit(f"portable-build: expected exactly one {old!r} in sql/month_lock.sql, found {n}")
    return text.replace(old, new)

parts = sorted(f for f in os.listdir(os.path.join(root, 'sql/portable')) if f.endswith('.sql'))
if not parts:
    sys.exit('portable-build: no sql/portable/*.sql')
functions = ''.join(read(os.path.join('sql/portable', f)).rstrip('\n') + '\n\n' for f in parts)
# The helpers this script creates, for the upgrade's drop of the others (10-checks.sql): the
# signature, the argument names and the result type of each.
helpers = []
for m in re.finditer(r'CREATE OR REPLACE FUNCTION @extschema@\.(month_lock__\w+)\(([^)]*)\)\s*RETURNS\s+(\S+)', functions):
    args = [a.strip().split() for a in m.group(2).split(',') if a.strip()]
    names = ', '.join(f"'{a[0]}'" for a in args)
    helpers.append(f"('@extschema@.{m.group(1)}({', '.join(a[-1] for a in args)})', "
                   f"ARRAY[{names}]::pg_catalog.text[], '{m.group(3)}')")
if functions.count('@month_lock_helpers@') != 1 or not helpers:
    sys.exit('portable-build: expected one @month_lock_helpers@ in sql/portable and helpers to list')
functions = functions.replace('@month_lock_helpers@', ',\n                                   '.join(helpers))
shared = read('sql/month_lock.sql')
shared = once(shared, 'CREATE VIEW @extschema@.month_locks AS',
              'CREATE OR REPLACE VIEW @extschema@.month_locks AS')
shared = once(shared, 'CREATE SEQUENCE @extschema@.month_lock_token_seq AS',
              'CREATE SEQUENCE IF NOT EXISTS @extschema@.month_lock_token_seq AS')
shared = once(shared,
    "SELECT pg_catalog.pg_extension_config_dump('@extschema@.month_lock_token_seq', '');",
    "SELECT pg_catalog.pg_extension_config_dump('@extschema@.month_lock_token_seq', '')\n"
    "  FROM pg_catalog.pg_extension e\n"
    " WHERE e.extname OPERATOR(pg_catalog.=) 'month_lock'\n"
    "   AND e.extnamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace;")
# Every function the body creates, as (name, argument types).
sigs = []
for m in re.finditer(r'CREATE OR REPLACE FUNCTION @extschema@\.(\w+)\(([^)]*)\)', functions):
    args = [a.strip().split()[-1] for a in m.group(2).split(',') if a.strip()]
    sigs.append(f"{m.group(1)}({', '.join(args)})")
# Last in the body: every object of the edition belongs to the installing role. CREATE OR REPLACE
# keeps the owner of an object that exists already and CREATE ... IF NOT EXISTS keeps the object
# itself, so an object another role created beforehand under one of these names would stay that
# role's, to change later; such an install is refused. (The argument types of the signatures are
# keywords or pg_catalog-qualified: regprocedure reads them the same under any search_path.)
procs = ',\n        '.join(f"'@extschema@.{s}'" for s in sigs)
owned = f"""
-- ---- every object is the installing role's ----
DO $owned$
DECLARE
  me pg_catalog.oid := (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
  bad pg_catalog.text;
BEGIN
  SELECT o.what INTO bad FROM (
    SELECT pg_catalog.concat('@extschema@.', c.relname) AS what, c.relowner AS owner
      FROM pg_catalog.pg_class c
     WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['@extschema@.month_locks',
                                                  '@extschema@.month_lock_token_seq']::pg_catalog.regclass[]::pg_catalog.oid[])
    UNION ALL
    SELECT pg_catalog.concat('@extschema@.', p.proname, '(', pg_catalog.pg_get_function_identity_arguments(p.oid), ')'),
           p.proowner
      FROM pg_catalog.pg_proc p
     WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
        {procs}]::pg_catalog.regprocedure[]::pg_catalog.oid[])) o
   WHERE o.owner OPERATOR(pg_catalog.<>) me
   ORDER BY 1 LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '42501',
      MESSAGE = pg_catalog.format('month_lock: %s exists already and belongs to another role than the installing one', bad),
      HINT = 'An object another role created under a month_lock name would stay that role''s: drop it (or install as its owner), then run the script again.';
  END IF;
END
$owned$;
"""
body = (functions + '\n-- ---- shared with the native extension: sql/month_lock.sql ----\n\n' + shared
        + owned)
for tag in ('$month_lock_body$', '$month_lock_install$', '$_pgtle_$'):
    if tag in body:
        sys.exit(f'portable-build: {tag} must not occur in the sources')

# The install statement. It runs with the caller's search_path, so everything in it is
# schema-qualified; the body's @extschema@ becomes the current schema (inside CREATE EXTENSION
# PostgreSQL may already have substituted it: then there is nothing left to replace).
wrapper = """DO $month_lock_install$
DECLARE
  target pg_catalog.text := pg_catalog.current_schema();
BEGIN
  IF target IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '3F000', MESSAGE = 'month_lock: no current schema to install into',
      HINT = 'SET search_path TO the schema month_lock should be installed in, then run the script again.';
  END IF;
  IF pg_catalog.strpos(target, pg_catalog.chr(39)) OPERATOR(pg_catalog.>) 0 THEN
    RAISE EXCEPTION USING ERRCODE = '42602', MESSAGE = 'month_lock: the schema name must not contain a single quote';
  END IF;
  -- The schema's name is pasted into dollar-quoted function bodies ($fn$ ... $fn$): a name
  -- with a dollar sign could end one (PostgreSQL's own CREATE EXTENSION refuses such names too).
  IF pg_catalog.strpos(target, '$') OPERATOR(pg_catalog.>) 0 THEN
    RAISE EXCEPTION USING ERRCODE = '42602',
      MESSAGE = pg_catalog.format('month_lock: cannot install into schema %%s: the name contains "$"', pg_catalog.quote_ident(target)),
      HINT = 'Install into a schema whose name has no dollar sign (docs/editions.md).';
  END IF;
  EXECUTE pg_catalog.replace($month_lock_body$
%s$month_lock_body$, pg_catalog.concat('@', 'extschema@'), pg_catalog.quote_ident(target));
END
$month_lock_install$;
"""
header = f"""-- month_lock {version}, SQL-only edition (docs/editions.md). Generated by tools/portable-build.sh
-- from sql/portable/*.sql and sql/month_lock.sql; do not edit.
--
-- Install or upgrade in place, as the database owner (no superuser needed), into the schema
-- first in search_path:
--   psql -v ON_ERROR_STOP=1 -d DB -f month_lock-portable.sql
-- One statement: it installs completely or not at all. The token sequence keeps its position.
"""
plain = header + '\n' + wrapper % body
write('month_lock-portable.sql', plain)

tle = f"""-- month_lock {version} for pg_tle (Trusted Language Extensions): registers the SQL-only edition so
-- that CREATE EXTENSION month_lock works where pg_tle is available (Amazon RDS / Aurora,
-- Supabase). Run as a member of pgtle_admin; generated by tools/portable-build.sh, do not edit.
-- The extension's script is exactly month_lock-portable.sql.
SELECT pgtle.install_extension(
  'month_lock',
  '{version}',
  'Calendar-month locks that wait in PostgreSQL''s own lock queue (SQL-only edition)',
$_pgtle_${plain}$_pgtle_$,
  ARRAY['plpgsql']
);
"""
write('month_lock-pg_tle.sql', tle)

# Uninstall: every function the body creates, the view and the sequences (month_lock__hint_seq:
# earlier versions').
drops = ''.join(f'DROP FUNCTION IF EXISTS @extschema@.{s};\n' for s in sigs)
ubody = ('DROP VIEW IF EXISTS @extschema@.month_locks;\n' + drops +
         'DROP SEQUENCE IF EXISTS @extschema@.month_lock__hint_seq;\n'
         'DROP SEQUENCE IF EXISTS @extschema@.month_lock_token_seq;\n')
uninstall = f"""-- month_lock {version}, SQL-only edition: drops every object of the edition from the schema first
-- in search_path, the token sequence included (lock it and read its position first when moving to the
-- native extension: docs/editions.md). Generated by tools/portable-build.sh, do not edit.
""" + '\n' + wrapper % ubody
write('month_lock-portable-uninstall.sql', uninstall)
PY
echo "portable-build: $out/month_lock-portable.sql, $out/month_lock-pg_tle.sql, $out/month_lock-portable-uninstall.sql"
