#!/usr/bin/env bash
# Usage: tools/upgrade-check.sh PG_CONFIG [FROM_VERSION]     (default 0.1.0)
#
# Against the server PGHOST/PGPORT/PGUSER name (a superuser), whose installation has month_lock's
# current version, the released FROM_VERSION script (sql/month_lock--FROM.sql) and the upgrade
# scripts installed (make tree-install does that):
#   1. database A: CREATE EXTENSION month_lock (the current version, fresh);
#   2. database B: CREATE EXTENSION month_lock VERSION 'FROM'; a second session takes a session
#      lock, a shared lock and a transaction lock in B and keeps them; ALTER EXTENSION month_lock
#      UPDATE; the locks are still granted to that session and it can release them;
#   3. the catalog of A and B is identical: extension version, every member function's
#      signature, result, definition (pg_get_functiondef), comment and ACL, the view's definition,
#      comment and ACL, the extension's member list.
set -euo pipefail
pg_config=${1:?pg_config}
from=${2:-0.1.0}
psql=("$("$pg_config" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 -At)
to=$("${psql[@]}" -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'month_lock'")
if [ "$to" = "$from" ]; then
  echo "upgrade-check: default version is $from itself, no upgrade to check"; exit 0
fi
echo "upgrade-check: $from -> $to"
for db in mlu_fresh mlu_upgraded; do
  "${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
"${psql[@]}" -d mlu_fresh -c "CREATE EXTENSION month_lock"
"${psql[@]}" -d mlu_upgraded -c "CREATE EXTENSION month_lock VERSION '$from'"

# A session that holds locks across the update (a coprocess keeps it open).
coproc HOLDER { "${psql[@]}" -d mlu_upgraded 2>&1; }
# Bash unsets HOLDER_PID as soon as the coprocess exits: keep it for the wait below.
coproc_pid=$HOLDER_PID
exec 3>&"${HOLDER[1]}" 4<&"${HOLDER[0]}"
ask() { echo "$1" >&3; local line; read -r -t 30 line <&4; echo "$line"; }
[ "$(ask "SELECT month_lock_try(2024, 3);")" = t ]
[ "$(ask "SELECT month_lock_try_shared(2024, 4);")" = t ]
echo "BEGIN;" >&3
[ "$(ask "SELECT month_lock_try_xact(2024, 5);")" = t ]
holder_pid=$(ask "SELECT pg_backend_pid();")

"${psql[@]}" -d mlu_upgraded -c "ALTER EXTENSION month_lock UPDATE"
version=$("${psql[@]}" -d mlu_upgraded -c "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'")
[ "$version" = "$to" ] || { echo "upgrade-check: version after update is $version, not $to"; exit 1; }

held=$("${psql[@]}" -d mlu_upgraded -c "SELECT string_agg(year || '-' || month || ' ' || mode, ', ' ORDER BY year, month)
  FROM month_locks WHERE pid = $holder_pid AND granted")
echo "upgrade-check: held across the update by pid $holder_pid: $held"
[ "$held" = "2024-3 exclusive, 2024-4 shared, 2024-5 exclusive" ] || { echo "upgrade-check: locks lost"; exit 1; }
echo "COMMIT;" >&3
[ "$(ask "SELECT month_lock_release(2024, 3) AND month_lock_release_shared(2024, 4) AND NOT month_lock_held(2024, 5);")" = t ]
echo '\q' >&3
wait "$coproc_pid" 2>/dev/null || true

catalog="
SELECT 'extension', extname || ' ' || extversion || ' relocatable=' || extrelocatable || ' schema=' || extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'month_lock'
UNION ALL
SELECT 'member', pg_describe_object(classid, objid, objsubid)
  FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
UNION ALL
SELECT 'function ' || p.oid::regprocedure,
       'returns ' || pg_get_function_result(p.oid) || E'\n' || pg_get_functiondef(p.oid)
       || E'\ncomment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '<none>')
       || E'\nacl: ' || coalesce(p.proacl::text, '<default>') || ' owner: ' || p.proowner::regrole
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
UNION ALL
SELECT 'relation ' || c.oid::regclass,
       c.relkind::text || E'\n' || coalesce(pg_get_viewdef(c.oid), '')
       || E'\ncomment: ' || coalesce(obj_description(c.oid, 'pg_class'), '<none>')
       || E'\nacl: ' || coalesce(c.relacl::text, '<default>') || ' owner: ' || c.relowner::regrole
  FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
ORDER BY 1, 2"
out=$(mktemp -d)
"${psql[@]}" -d mlu_fresh -c "$catalog" >"$out/fresh.txt"
"${psql[@]}" -d mlu_upgraded -c "$catalog" >"$out/upgraded.txt"
if ! diff -u "$out/fresh.txt" "$out/upgraded.txt"; then
  echo "upgrade-check: FAILED, the catalog after ALTER EXTENSION UPDATE differs from a fresh $to install (above: - fresh, + upgraded)"
  exit 1
fi
echo "upgrade-check: $(grep -c '' "$out/fresh.txt") catalog lines identical (fresh $to vs $from updated)"
echo "upgrade-check: 1 passed, 0 failed"
for db in mlu_fresh mlu_upgraded; do "${psql[@]}" -d postgres -c "DROP DATABASE $db"; done
rm -rf "$out"
