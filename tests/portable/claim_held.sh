#!/usr/bin/env bash
# Usage: tests/portable/claim_held.sh PG_CONFIG OWNER DATABASE [ROUNDS]
#
# month_lock_claim skips the months this session holds, and an interrupt processed while it
# skips one must not give that month back. Each round, a session takes 192 months and calls
# month_lock_claim over an array listing 2020-01 many times under a statement_timeout meant to
# land while the call skips it; the timeout follows where the previous round's landed (later
# when it came while the call read its argument, earlier when the call finished first, in steps
# of a tenth or a twentieth, so that it follows the server's speed). After every cancelled call
# every month must still be held, month_lock_release_all must then release each once, and no
# other session may take 2020-01 meanwhile. At least a quarter of the rounds must land at the
# skip, or the loop did not test it (before the fix, every such round lost the month).
set -euo pipefail
pg_config=${1:?}; owner=${2:?}; db=${3:?}; rounds=${4:-60}
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -At -d "$db")
export PGUSER=$owner
# The session holds 192 months (2020-01 .. 2035-12): the skip compares each element with all of
# them, so the call spends most of its time skipping, where the timeout is meant to land.
n=20000
arr="pg_catalog.array_fill('2020-01-01'::date, ARRAY[$n])"
months="pg_catalog.generate_series(2020, 2035) y, pg_catalog.generate_series(1, 12) m"
take="SELECT count(*) FILTER (WHERE month_lock_try(y, m)) FROM $months"
# How long an uncancelled call takes (it returns NULL: every element is held): the shortest of
# three, after one to warm up.
total=$("${psql[@]}" -v ON_ERROR_STOP=1 <<SQL | sort -n | head -1
$take \\g /dev/null
SELECT month_lock_claim($arr) \\g /dev/null
SELECT pg_catalog.clock_timestamp() AS t0 \\gset
SELECT month_lock_claim($arr) \\g /dev/null
SELECT ceil(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - :'t0'))::integer;
SELECT pg_catalog.clock_timestamp() AS t0 \\gset
SELECT month_lock_claim($arr) \\g /dev/null
SELECT ceil(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - :'t0'))::integer;
SELECT pg_catalog.clock_timestamp() AS t0 \\gset
SELECT month_lock_claim($arr) \\g /dev/null
SELECT ceil(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - :'t0'))::integer;
SQL
)
t=$((total * 85 / 100)); [ "$t" -ge 2 ] || t=2
skip=0 elsewhere=0 finished=0 lost=0 taken=0
for i in $(seq "$rounds"); do
  out=$("${psql[@]}" -v VERBOSITY=default 2>&1 <<SQL || true
SELECT 'start', ($take);
SET statement_timeout = $t;
SELECT 'returned', month_lock_claim($arr) IS NULL;
RESET statement_timeout;
SELECT 'held', count(*) FILTER (WHERE month_lock_held(y, m)) FROM $months;
\\! PGUSER=$owner $bindir/psql -X -q -At -d $db -c "SELECT 'other_took', month_lock_try(2020, 1)"
SELECT 'release', month_lock_release_all(), month_lock_held(2020, 1);
SQL
)
  grep -qx 'start|192' <<<"$out" || { echo "$out"; echo "claim_held: FAILED: could not take the 192 months"; exit 1; }
  if grep -qx 'returned|t' <<<"$out"; then
    finished=$((finished + 1)); t=$((t * 9 / 10)); [ "$t" -ge 2 ] || t=2
  elif grep -q 'month_lock__claim(date\[\],boolean) line [0-9]* at CONTINUE' <<<"$out"; then
    skip=$((skip + 1)); t=$((t + RANDOM % 3 - 1))
  else
    elsewhere=$((elsewhere + 1)); t=$((t * 21 / 20 + 1))
  fi
  grep -qx 'held|192' <<<"$out" || lost=$((lost + 1))
  grep -qx 'other_took|f' <<<"$out" || taken=$((taken + 1))
  grep -qx 'release|192|f' <<<"$out" || { grep -qx 'held|192' <<<"$out" && { echo "$out"; echo "claim_held: FAILED: month_lock_release_all did not release each month once"; exit 1; }; }
done
echo "claim_held: $rounds rounds (a call: ${total} ms): $skip cancelled at the skip, $elsewhere elsewhere, $finished finished; earlier hold lost $lost, taken by another session $taken"
[ "$lost" -eq 0 ] && [ "$taken" -eq 0 ] || { echo "claim_held: FAILED: month_lock_claim gave back a month held before the call"; exit 1; }
[ $((skip * 4)) -ge "$rounds" ] || { echo "claim_held: FAILED: fewer than a quarter of the rounds were cancelled at the skip"; exit 1; }
echo "claim_held: ok"
