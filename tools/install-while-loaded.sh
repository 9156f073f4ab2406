#!/usr/bin/env bash
# Usage: tools/install-while-loaded.sh PG_CONFIG STAGE_DIR ALT_STAGE_DIR [MODE]
#
# Issue #8 item 6: a session that has month_lock's library loaded keeps working across an
# install of a *different* build into the same PostgreSQL. Against the server PGHOST/PGPORT/...
# name (run it under tools/with-cluster.sh, which also fails if the server log shows a backend
# "terminated by signal"), whose installation PG_CONFIG names and has STAGE_DIR's build:
#   1. a session calls month_lock_try (the library is now mapped into its backend) and keeps a
#      month;
#   2. ALT_STAGE_DIR's build (a different ELF: the same crate built with other features) is
#      installed through the path every install takes, tools/install-files.sh (a temporary file
#      renamed over month_lock.so);
#   3. the same session calls month_lock functions again: its month is still held, it takes and
#      releases more, and its backend still maps the old, now unlinked, file; a new session
#      loads the new build and works too;
#   4. STAGE_DIR's build is installed again the same way (the tree is left as it was).
# MODE=cp (for demonstrating that the test can fail, never in `make test`): step 2 copies the
# new library over the old file in place instead, as `cp` or pgrx's `sudo cp` would.
set -euo pipefail
pg_config=${1:?pg_config}
stage=${2:?stage dir}
alt_stage=${3:?alternative stage dir}
mode=${4:-rename}
root=$(cd "$(dirname "$0")/.." && pwd)
psql=("$("$pg_config" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 -At)
lib=$("$pg_config" --pkglibdir)/month_lock.so
fail() { echo "install-while-loaded: FAILED: $*"; exit 1; }

cmp -s "$stage/lib/month_lock.so" "$alt_stage/lib/month_lock.so" \
  && fail "the two builds are identical; the test needs a different library"
cmp -s "$stage/lib/month_lock.so" "$lib" || fail "$lib is not the build in $stage"

db=month_lock_install_while_loaded
"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"${psql[@]}" -d $db -c "CREATE EXTENSION month_lock"

coproc SESSION { "${psql[@]}" -d $db 2>&1; }
exec 3>&"${SESSION[1]}" 4<&"${SESSION[0]}"
ask() { echo "$1" >&3; local line=""; read -r -t 30 line <&4 || true; echo "$line"; }
[ "$(ask "SELECT month_lock_try(2024, 3);")" = t ] || fail "the session could not take 2024-03"
pid=$(ask "SELECT pg_backend_pid();")
grep -q "month_lock.so" "/proc/$pid/maps" || fail "backend $pid has not mapped month_lock.so"
inode_before=$(stat -c %i "$lib")

if [ "$mode" = cp ]; then
  echo "install-while-loaded: MODE=cp: copying the other build over $lib in place"
  cp "$alt_stage/lib/month_lock.so" "$lib"
else
  "$root/tools/install-files.sh" "$alt_stage" "$pg_config" | sed 's/^/install-while-loaded: /'
fi
cmp -s "$alt_stage/lib/month_lock.so" "$lib" || fail "the other build was not installed"
echo "install-while-loaded: $lib inode $inode_before -> $(stat -c %i "$lib")"

answer=$(ask "SELECT month_lock_held(2024, 3) AND month_lock_try(2024, 4) AND month_lock_try_shared(2024, 5, 100)
  AND month_lock_release(2024, 4) AND (SELECT count(*) = 2 FROM month_locks WHERE pid = pg_backend_pid())
  AND month_lock_release_all() = 2;")
[ "$answer" = t ] || fail "the loaded session answered '$answer' after the install (expected t)"
if [ "$mode" != cp ]; then
  grep -q "month_lock.so (deleted)" "/proc/$pid/maps" \
    || fail "backend $pid does not map the old, unlinked library"
fi
echo "install-while-loaded: backend $pid (old library mapped) still works after the install"
[ "$("${psql[@]}" -d $db -c "SELECT month_lock_try(2024, 6) AND month_lock_release(2024, 6)")" = t ] \
  || fail "a new session with the new build does not work"
echo '\q' >&3
wait "$SESSION_PID" 2>/dev/null || true

"$root/tools/install-files.sh" "$stage" "$pg_config" >/dev/null
cmp -s "$stage/lib/month_lock.so" "$lib" || fail "could not put the original build back"
"${psql[@]}" -d postgres -c "DROP DATABASE $db"
echo "install-while-loaded: 1 passed, 0 failed"
