#!/usr/bin/env bash
# Usage: tools/deb-check.sh PG_CONFIG NEW_DEB VERSION        (under tools/with-cluster.sh, as root)
#
# Part of tools/deb-test.sh, against the throwaway cluster PGHOST/PGPORT name, which runs from
# the system PostgreSQL that PG_CONFIG names, where the older month_lock package (default_version
# 0.1.0) is installed:
#   1. CREATE EXTENSION month_lock gives 0.1.0; a session takes 2024-03, so the library is mapped
#      into its backend;
#   2. apt-get install NEW_DEB over it. dpkg unpacks each file of the new package to
#      PATH.dpkg-new and then renames it over PATH (rename(2), atomic), so month_lock.so gets a
#      new inode and the backend keeps its mapping of the old, now unlinked, file: the session
#      still holds its month and takes and releases others (a file rewritten in place would
#      crash it; tools/with-cluster.sh fails the run if the server log shows a backend
#      "terminated by signal");
#   3. ALTER EXTENSION month_lock UPDATE gives VERSION's upstream part; the session's month is
#      still held;
#   4. as an ordinary role: a month taken in one session is refused in another, the view shows
#      the holder to that role, `month-lock check` says locked (exit 1) then free (exit 0), a
#      later hold's fencing token is larger, `month-lock run` hands CMD a larger one still;
#   5. the pg_regress tests and isolation specs (tools/installcheck.sh) and the 0.1.0 -> current
#      upgrade check (tools/upgrade-check.sh) against the packaged files.
# Writes the number of passed checks to $DEB_TEST_OK.
set -euo pipefail
pg_config=${1:?pg_config}
new_deb=${2:?new deb}
version=${3:?version}
root=$(cd "$(dirname "$0")/.." && pwd)
psql=("$("$pg_config" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 -At)
lib=$("$pg_config" --pkglibdir)/month_lock.so
upstream=${version%-*}
db=month_lock_deb
role=month_lock_deb_worker
passed=0
fail() { echo "deb-check: FAILED: $*"; exit 1; }
ok() { passed=$((passed + 1)); echo "deb-check: ok - $*"; }

"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"${psql[@]}" -d $db -c "CREATE EXTENSION month_lock"
v=$("${psql[@]}" -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'")
[ "$v" = 0.1.0 ] || fail "CREATE EXTENSION from the older package gave $v, not 0.1.0"
ok "CREATE EXTENSION month_lock from the 0.1.0-1 package: version 0.1.0"

# 1. a session with the library loaded, holding a month.
coproc HOLDER { "${psql[@]}" -d $db 2>&1; }
# Bash unsets HOLDER_PID as soon as the coprocess exits: keep it for the wait below.
coproc_pid=$HOLDER_PID
exec 3>&"${HOLDER[1]}" 4<&"${HOLDER[0]}"
ask() { echo "$1" >&3; local line=""; read -r -t 30 line <&4 || true; echo "$line"; }
[ "$(ask "SELECT month_lock_try(2024, 3);")" = t ] || fail "the session could not take 2024-03"
pid=$(ask "SELECT pg_backend_pid();")
grep -q " $lib$" "/proc/$pid/maps" || fail "backend $pid has not mapped $lib"
inode_before=$(stat -c %i "$lib")

# 2. the newer package over it.
DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 install "$new_deb" >"$PGHOST/apt.log" 2>&1 \
  || { cat "$PGHOST/apt.log"; fail "apt-get install $new_deb over the older package"; }
grep -q "Unpacking postgresql-15-month-lock ($version) over (0.1.0-1)" "$PGHOST/apt.log" \
  || { cat "$PGHOST/apt.log"; fail "apt-get did not upgrade 0.1.0-1 to $version"; }
ok "apt-get install $(basename "$new_deb") over 0.1.0-1 with a session connected"
inode_after=$(stat -c %i "$lib")
[ "$inode_after" != "$inode_before" ] || fail "$lib kept its inode: dpkg rewrote it in place?"
grep -q " $lib (deleted)$" "/proc/$pid/maps" || fail "backend $pid does not map the old, unlinked library"
answer=$(ask "SELECT month_lock_held(2024, 3) AND month_lock_try(2024, 4) AND month_lock_release(2024, 4);")
[ "$answer" = t ] || fail "the loaded session answered '$answer' after the upgrade (expected t)"
ok "the loaded session keeps working across the upgrade ($lib inode $inode_before -> $inode_after, old file still mapped)"

# 3. ALTER EXTENSION UPDATE; the month stays held.
"${psql[@]}" -d $db -c "ALTER EXTENSION month_lock UPDATE"
v=$("${psql[@]}" -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'")
[ "$v" = "$upstream" ] || fail "ALTER EXTENSION month_lock UPDATE gave $v, not $upstream"
held=$("${psql[@]}" -d $db -c "SELECT count(*) FROM month_locks WHERE pid = $pid AND year = 2024 AND month = 3 AND granted")
[ "$held" = 1 ] || fail "2024-03 not held by $pid after the update"
[ "$(ask "SELECT month_lock_release(2024, 3);")" = t ] || fail "the session could not release 2024-03"
echo '\q' >&3
wait "$coproc_pid" 2>/dev/null || true
ok "ALTER EXTENSION month_lock UPDATE: 0.1.0 -> $v, the month held across it"

# 4. as an ordinary role.
"${psql[@]}" -d $db -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN"
w_psql=("${psql[@]}" -U $role -d $db)
coproc A { "${w_psql[@]}" 2>&1; }
exec 5>&"${A[1]}" 6<&"${A[0]}"
ask_a() { echo "$1" >&5; local line=""; read -r -t 30 line <&6 || true; echo "$line"; }
[ "$(ask_a "SELECT month_lock_try(2024, 5);")" = t ] || fail "$role could not take 2024-05"
pid_a=$(ask_a "SELECT pg_backend_pid();")
token_a=$(ask_a "SELECT month_lock_token(2024, 5);")
[[ "$token_a" =~ ^[0-9]+$ ]] || fail "month_lock_token gave '$token_a'"
[ "$("${w_psql[@]}" -c "SELECT month_lock_try(2024, 5)")" = f ] || fail "a second session of $role got 2024-05"
view=$("${w_psql[@]}" -c "SELECT pid || ' ' || mode || ' ' || granted || ' ' || usename FROM month_locks WHERE year = 2024 AND month = 5")
[ "$view" = "$pid_a exclusive true $role" ] || fail "the view shows '$view' to $role"
ok "as $role: 2024-05 held in one session (token $token_a), refused in another, the view shows it"

set +e
out=$(PGUSER=$role PGDATABASE=$db month-lock check 2024-05 2>&1); code=$?
set -e
[ "$code" = 1 ] && grep -q "$pid_a" <<<"$out" || fail "month-lock check 2024-05 exited $code: $out"
[ "$(ask_a "SELECT month_lock_release(2024, 5);")" = t ] || fail "$role could not release 2024-05"
echo '\q' >&5
wait "$A_PID" 2>/dev/null || true
PGUSER=$role PGDATABASE=$db month-lock check 2024-05 >/dev/null 2>&1 || fail "month-lock check 2024-05 after the release: not free"
ok "month-lock check as $role: locked (exit 1, names pid $pid_a), free after the release (exit 0)"

token_b=$("${w_psql[@]}" -c "SELECT month_lock_token(2024, 5) FROM (SELECT month_lock_try(2024, 5) AS got) t WHERE got")
[[ "$token_b" =~ ^[0-9]+$ ]] && [ "$token_b" -gt "$token_a" ] || fail "the next hold's token '$token_b' is not larger than $token_a"
token_c=$(PGUSER=$role PGDATABASE=$db month-lock run 2024-05 --timeout 5s -- sh -c 'echo "$MONTH_LOCK_TOKEN"')
[[ "$token_c" =~ ^[0-9]+$ ]] && [ "$token_c" -gt "$token_b" ] || fail "month-lock run gave token '$token_c' (previous $token_b)"
ok "tokens grow: $token_a, then $token_b, then $token_c from month-lock run"

# 5. the SQL suites against the packaged files.
# (its output directory inside the cluster's, which tools/with-cluster.sh deletes)
INSTALLCHECK_OUT=$PGHOST/installcheck "$root/tools/installcheck.sh" "$pg_config" | sed 's/^/  /'
ok "pg_regress tests and isolation specs (tools/installcheck.sh) against the package"
"$root/tools/upgrade-check.sh" "$pg_config" 0.1.0 | sed 's/^/  /'
ok "tools/upgrade-check.sh 0.1.0 -> $upstream against the package"

"${psql[@]}" -d postgres -c "DROP DATABASE $db" -c "DROP ROLE $role"
echo "$passed" >"${DEB_TEST_OK:-/dev/null}"
