#!/usr/bin/env bash
# Usage: tests/portable/inflight.sh PG_CONFIG DIST_DIR OWNER
#
# Calls in flight while the edition is upgraded in place (docs/editions.md, "Upgrading in
# place"), in a database owned by OWNER. Two sessions wait in the lock queue for a month another
# session holds, one with a timeout, one without; once both are queued (pg_locks, granted =
# false) the script is run again, then the first one's timeout expires and the second one is
# cancelled. Their old code must still find every helper (replaced in place, same OIDs): the
# first returns false, the second fails with 57014, and neither holds anything. Then a newer
# script that renames a helper (month_lock__mine, built from a copy of the sources): a call in
# flight that reaches the removed helper fails with 42883 and holds nothing, as documented.
set -euo pipefail
pg_config=${1:?}; dist=${2:?}; owner=${3:?}
root=$(cd "$(dirname "$0")/../.." && pwd)
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
db=ml_inflight
super=$PGUSER
work=$(mktemp -d /tmp/month_lock_inflight.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "inflight: FAILED: $*"; exit 1; }
"${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $owner"
PGUSER=$owner "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql"

waiters_queued() { # waiters_queued N: wait until N sessions wait for 2094-01
  for _ in $(seq 200); do
    [ "$("${psql[@]}" -d $db -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 209401 AND NOT granted")" = "$1" ] && return 0
    sleep 0.05
  done
  fail "the waiters never queued"
}
round() { # round NEWER_SCRIPT: prints the timed waiter's and the cancelled waiter's output
  PGUSER=$owner PGAPPNAME=ml_inflight_holder "${psql[@]}" -d $db -c "SELECT month_lock_try(2094, 1)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
  local holder=$!
  for _ in $(seq 200); do
    [ "$("${psql[@]}" -d $db -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 209401 AND granted")" = 1 ] && break
    sleep 0.05
  done
  PGUSER=$owner "$bindir/psql" -X -q -At -d $db -c "SELECT 'timed', month_lock_try(2094, 1, 3000)" \
    -c "SELECT 'timed_holds', count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()" >"$work/timed" 2>&1 &
  local timed=$!
  PGUSER=$owner PGAPPNAME=ml_inflight_cancelled "$bindir/psql" -X -q -At -d $db -c "SELECT 'cancelled', month_lock(2094, 1)" \
    -c "SELECT 'cancelled_holds', count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()" >"$work/cancelled" 2>&1 &
  local cancelled=$!
  waiters_queued 2
  PGUSER=$owner "${psql[@]}" -d $db -f "$1" 2>/dev/null
  "${psql[@]}" -d $db -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'ml_inflight_cancelled'" >/dev/null
  wait $timed || true
  wait $cancelled || true
  "${psql[@]}" -d $db -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ml_inflight_holder'" >/dev/null
  wait $holder 2>/dev/null || true
  cat "$work/timed" "$work/cancelled"
}
oids() { "${psql[@]}" -d $db -At -c "SELECT string_agg(oid::text, ',' ORDER BY oid) FROM pg_proc WHERE proname LIKE 'month\\_lock%'"; }

before=$(oids)
out=$(round "$dist/month_lock-portable.sql")
echo "$out" | sed 's/^/inflight:   /'
[ "$(oids)" = "$before" ] || fail "an upgrade in place changed the functions' OIDs"
echo "inflight: ok: an upgrade in place keeps every function (same OIDs)"
grep -qx 'timed|f' <<<"$out" && grep -qx 'timed_holds|0' <<<"$out" \
  || fail "a waiter whose timeout came after an upgrade in place did not return false holding nothing"
echo "inflight: ok: a waiter's timeout after an upgrade in place returns false"
grep -q 'canceling statement due to user request' <<<"$out" && grep -qx 'cancelled_holds|0' <<<"$out" \
  || fail "a waiter cancelled after an upgrade in place did not fail with 57014 holding nothing"
echo "inflight: ok: a waiter cancelled after an upgrade in place fails with 57014"

# A newer script that renames a helper: the older code in flight cannot find it.
mkdir -p "$work/src/tools" "$work/src/sql/portable" "$work/dist"
cp "$root/tools/portable-build.sh" "$work/src/tools/"
cp "$root/sql/month_lock.sql" "$work/src/sql/"
for f in "$root"/sql/portable/*.sql; do
  sed 's/month_lock__mine(/month_lock__mine_v2(/g' "$f" >"$work/src/sql/portable/$(basename "$f")"
done
"$work/src/tools/portable-build.sh" newer "$work/dist" >/dev/null
out=$(round "$work/dist/month_lock-portable.sql")
echo "$out" | sed 's/^/inflight:   /'
check=$("${psql[@]}" -d $db -At -c "SELECT to_regprocedure('public.month_lock__mine(bigint[], integer)') IS NULL AND to_regprocedure('public.month_lock__mine_v2(bigint[], integer)') IS NOT NULL")
[ "$check" = t ] || fail "the newer script did not replace month_lock__mine by month_lock__mine_v2"
grep -q 'function public.month_lock__mine(bigint\[\], integer) does not exist' <<<"$out" \
  && grep -qx 'timed_holds|0' <<<"$out" && grep -qx 'cancelled_holds|0' <<<"$out" \
  || fail "documented: calls in flight that reach a helper the newer script removed fail with 42883 and hold nothing"
echo "inflight: ok: documented: after a newer script renamed a helper, calls in flight that reach it fail (42883), holding nothing"
