#!/usr/bin/env bash
# Usage: tests/portable/race.sh PG_CONFIG OWNER DATABASE
#
# Timeouts that race grants, in the SQL-only edition: one session takes and releases a month
# for random milliseconds while another asks for it with timeouts of 1..5 ms, hundreds of
# times, alternating session and transaction scope. Every answer must match what the session
# holds (true: held; false: not held), and nothing may stay held after a false or at COMMIT.
# Both answers must occur, or the loop did not exercise the race.
set -euo pipefail
pg_config=${1:?}; owner=${2:?}; db=${3:?}
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
super=$PGUSER
export PGUSER=$owner
PGAPPNAME=ml_race_holder "${psql[@]}" -d "$db" -c "
DO \$\$ BEGIN
  LOOP
    PERFORM month_lock(2030, 3);
    PERFORM pg_sleep(random() * 0.006);
    PERFORM month_lock_release(2030, 3);
    PERFORM pg_sleep(random() * 0.002);
  END LOOP;
END \$\$" >/dev/null 2>&1 &
holder=$!
result=$("${psql[@]}" -d "$db" -At -c "
DO \$\$
DECLARE r boolean; trues integer := 0; falses integer := 0; bad integer := 0;
BEGIN
  FOR i IN 1..600 LOOP
    IF i % 2 = 0 THEN
      r := month_lock_try(2030, 3, 1 + (random() * 4)::integer);
    ELSE
      r := month_lock_try_xact(2030, 3, 1 + (random() * 4)::integer);
    END IF;
    IF r <> month_lock_held(2030, 3) THEN bad := bad + 1; END IF;
    IF r THEN trues := trues + 1; ELSE falses := falses + 1; END IF;
    IF r AND i % 2 = 0 THEN PERFORM month_lock_release(2030, 3); END IF;
    COMMIT;
    IF month_lock_held(2030, 3) THEN bad := bad + 1; END IF;
  END LOOP;
  RAISE NOTICE 'race: % true, % false, % wrong', trues, falses, bad;
  IF bad > 0 OR trues = 0 OR falses = 0 THEN
    RAISE EXCEPTION 'race: % true, % false, % wrong answers or locks left', trues, falses, bad;
  END IF;
END \$\$" 2>&1) || { echo "$result"; kill "$holder" 2>/dev/null; exit 1; }
echo "$result" | sed 's/^NOTICE:  //'
PGUSER=$super "${psql[@]}" -d "$db" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ml_race_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
