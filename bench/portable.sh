#!/usr/bin/env bash
# Usage: bench/portable.sh PG_CONFIG DIST_DIR RESULTS_MD   (inside tools/with-cluster.sh, as a superuser)
#
# The SQL-only edition's costs beside the native extension's and the built-in advisory
# functions', in one database (native in schema native, SQL-only in schema portable):
#   - the in-server pair (one attempt + release on a free month), in a PL/pgSQL loop, with an
#     empty lock table and with 10,000 other advisory locks held by another session;
#   - month_is_locked, the same two ways;
#   - handoff: a waiter queued with a timeout (dblink, asynchronous), the holder releases; the
#     time from just before the release call to the waiter's grant, server clock.
# Each figure: median of RUNS runs, with min..max. Writes RESULTS_MD (figures only live there).
set -euo pipefail
pg_config=${1:?pg_config}; dist=${2:?dist}; results=${3:?results}
bindir=$("$pg_config" --bindir)
runs=${RUNS:-5}
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
db=ml_bench
# 10,000 locks need a larger shared lock table than the throwaway cluster starts with.
"${psql[@]}" -d postgres -c "ALTER SYSTEM SET max_locks_per_transaction = 512"
if [ "$(id -u)" = 0 ]; then
  runuser -u "${PG_OS_USER:-postgres}" -- "$bindir/pg_ctl" -D "$PGHOST/data" -w -m fast restart >/dev/null
else
  "$bindir/pg_ctl" -D "$PGHOST/data" -w -m fast restart >/dev/null
fi
"${psql[@]}" -d postgres -c "CREATE DATABASE $db"
# The SQL-only edition first: its installer refuses a database where the native extension is.
"${psql[@]}" -d $db -c "CREATE SCHEMA portable" -c "CREATE EXTENSION dblink"
PGOPTIONS="-c search_path=portable" "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql"
"${psql[@]}" -d $db -c "CREATE SCHEMA native" -c "CREATE EXTENSION month_lock SCHEMA native"

# pair(method) -> microseconds per try+release pair, 5000 pairs
pair_sql() {
  case $1 in
    built-in) echo "b := pg_try_advisory_lock(1835821824, 202403); b := pg_advisory_unlock(1835821824, 202403);" ;;
    native) echo "b := native.month_lock_try(2024, 3); b := native.month_lock_release(2024, 3);" ;;
    portable) echo "b := portable.month_lock_try(2024, 3); b := portable.month_lock_release(2024, 3);" ;;
    is_locked-native) echo "b := native.month_is_locked(2024, 3);" ;;
    is_locked-portable) echo "b := portable.month_is_locked(2024, 3);" ;;
  esac
}
measure() { # measure METHOD N -> one figure in µs
  # The loop runs twice and only the second pass is timed: the first prepares every expression
  # of the block (the body, the loop bounds, the clock reads) in this fresh backend. Timing the
  # first pass, or anything after the loop, would add a one-off planning cost (catalogue look-ups
  # of a new connection, hundreds of µs) divided by N: a different error for each N.
  "${psql[@]}" -d $db -At -c "
    DO \$\$ DECLARE b boolean; t0 timestamptz; t1 timestamptz; BEGIN
      FOR pass IN 1..2 LOOP
        t0 := clock_timestamp();
        FOR i IN 1..$2 LOOP $(pair_sql "$1") END LOOP;
        t1 := clock_timestamp();
      END LOOP;
      PERFORM set_config('bench.us', (extract(epoch FROM t1 - t0) * 1e6 / $2)::numeric(10,2)::text, false);
    END \$\$;
    SELECT current_setting('bench.us');"
}
stats() { # stdin: numbers -> "median (min..max)"
  sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f (%.2f..%.2f)", m, a[1], a[NR]}'
}
row() { # row LABEL METHOD N
  local vals=""
  for _ in $(seq "$runs"); do vals+="$(measure "$2" "$3")"$'\n'; done
  printf '| %s | %s | %s |\n' "$1" "$3" "$(printf '%s' "$vals" | stats)"
}
rows() { # the rows of both tables, with the same loop lengths
  row "built-in pg_try_advisory_lock + pg_advisory_unlock" built-in 5000
  row "native month_lock_try + month_lock_release" native 5000
  row "SQL-only month_lock_try + month_lock_release" portable 1000
  row "native month_is_locked" is_locked-native 5000
  row "SQL-only month_is_locked" is_locked-portable 1000
}
handoff() { # handoff SCHEMA N -> N latencies in µs, one per line
  "${psql[@]}" -d $db -At -c "
    DO \$\$
    DECLARE pid_w integer; t0 timestamptz; t1 timestamptz; got boolean; out text := '';
    BEGIN
      PERFORM dblink_connect('w', 'dbname=$db host=$PGHOST port=$PGPORT user=$PGUSER');
      pid_w := (SELECT p FROM dblink('w', 'SELECT pg_backend_pid()') AS t(p integer));
      FOR i IN 1..$2 LOOP
        PERFORM $1.month_lock_try(2024, 4);
        PERFORM dblink_send_query('w', 'SELECT $1.month_lock_try(2024, 4, 10000), clock_timestamp()');
        WHILE NOT EXISTS (SELECT FROM pg_locks WHERE pid = pid_w AND locktype = 'advisory' AND NOT granted) LOOP
          PERFORM pg_sleep(0.0002);
        END LOOP;
        t0 := clock_timestamp();
        PERFORM $1.month_lock_release(2024, 4);
        SELECT g, t INTO got, t1 FROM dblink_get_result('w') AS r(g boolean, t timestamptz);
        PERFORM * FROM dblink_get_result('w') AS r(g boolean, t timestamptz);
        IF NOT got THEN RAISE EXCEPTION 'waiter not granted'; END IF;
        PERFORM * FROM dblink('w', 'SELECT $1.month_lock_release(2024, 4)') AS r(b boolean);
        out := out || (extract(epoch FROM t1 - t0) * 1e6)::numeric(10,1) || ',';
      END LOOP;
      PERFORM dblink_disconnect('w');
      PERFORM set_config('bench.out', out, false);
    END \$\$;
    SELECT current_setting('bench.out');" | tr ',' '\n' | grep -v '^$'
}
pct() { # stdin numbers -> "median / p90 / max"
  sort -n | awk '{a[NR]=$1} END {printf "%.0f / %.0f / %.0f", a[int((NR+1)/2)], a[int(NR*0.9)], a[NR]}'
}

{
  echo "# SQL-only edition: costs beside the native extension"
  echo
  echo "\`make portable-bench\` (bench/portable.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), $("${psql[@]}" -d $db -At -c 'SHOW server_version'),"
  echo "release build of the native extension, throwaway cluster on a Unix socket, fsync off,"
  echo "$(nproc) cores shared with other work (load average at the start: $(cut -d' ' -f1-3 /proc/loadavg))."
  echo "Figures: median of $runs runs (min..max); µs."
  echo
  echo "## In-server pair: one attempt + release of a free month, PL/pgSQL loop"
  echo
  echo "Each figure times the second of two passes of the loop (the first prepares the block's"
  echo "expressions); the loop's own cost is included. Both tables use the same loop lengths."
  echo
  echo "| method, empty lock table | loop | µs per pair (per call for month_is_locked) |"
  echo "|---|---|---|"
  rows
} >"$results.tmp"

# 10,000 other advisory locks, held by another session for the rest of the run.
PGAPPNAME=ml_bench_locks "${psql[@]}" -d $db -c "SELECT count(pg_advisory_lock(7, i)) FROM generate_series(1, 10000)" \
  -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
for _ in $(seq 600); do
  [ "$("${psql[@]}" -d $db -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7")" = 10000 ] && break
  sleep 0.1
done
{
  echo
  echo "| method, 10,000 other advisory locks held | loop | µs per pair (per call for month_is_locked) |"
  echo "|---|---|---|"
  rows
} >>"$results.tmp"
"${psql[@]}" -d $db -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ml_bench_locks'" >/dev/null
wait

{
  echo
  echo "## Handoff: release call start to the queued waiter's grant (server clock), 200 handoffs"
  echo
  echo "| edition | median / p90 / max µs |"
  echo "|---|---|"
  echo "| native | $(handoff native 200 | pct) |"
  echo "| SQL-only | $(handoff portable 200 | pct) |"
} >>"$results.tmp"
# Backfill: 120 months (2020-01..2029-12), 8 workers (dblink, asynchronous), each claiming the
# first free month not yet done (month_lock_claim), 5 ms of work per month (pg_sleep), then
# releasing it; wall time from the start to the last worker's end. Ideal: 120 x 5 ms / 8.
backfill() { # backfill SCHEMA -> ms
  "${psql[@]}" -d $db -At <<SQL | grep -v '^$' | tail -1
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_done;
CREATE UNLOGGED TABLE bench_done (month date PRIMARY KEY);
DO \$\$
DECLARE t0 timestamptz; w integer; n integer;
  worker text := \$w\$
    DO \$d\$
    DECLARE m date; todo date[];
    BEGIN
      LOOP
        todo := ARRAY(SELECT d::date FROM generate_series(date '2020-01-01', date '2029-12-01', interval '1 month') d
                       WHERE NOT EXISTS (SELECT FROM public.bench_done b WHERE b.month = d::date));
        EXIT WHEN pg_catalog.cardinality(todo) = 0;
        m := $1.month_lock_claim(todo);
        IF m IS NULL THEN PERFORM pg_sleep(0.0005); CONTINUE; END IF;
        IF NOT EXISTS (SELECT FROM public.bench_done b WHERE b.month = m) THEN
          PERFORM pg_sleep(0.005);
          INSERT INTO public.bench_done VALUES (m);
        END IF;
        COMMIT;
        PERFORM $1.month_lock_release(extract(year FROM m)::integer, extract(month FROM m)::integer);
      END LOOP;
    END \$d\$ \$w\$;
BEGIN
  FOR w IN 1..8 LOOP
    PERFORM dblink_connect('b' || w, 'dbname=$db host=$PGHOST port=$PGPORT user=$PGUSER');
  END LOOP;
  t0 := clock_timestamp();
  FOR w IN 1..8 LOOP
    PERFORM dblink_send_query('b' || w, worker);
  END LOOP;
  FOR w IN 1..8 LOOP
    PERFORM * FROM dblink_get_result('b' || w) AS r(status text);
    PERFORM * FROM dblink_get_result('b' || w) AS r(status text);
  END LOOP;
  PERFORM set_config('bench.ms', (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric(10,1)::text, false);
  n := (SELECT count(*) FROM bench_done);
  IF n <> 120 THEN RAISE EXCEPTION 'backfill: % months done, not 120', n; END IF;
  FOR w IN 1..8 LOOP
    PERFORM dblink_disconnect('b' || w);
  END LOOP;
END \$\$;
SELECT current_setting('bench.ms');
SQL
}
backfill_row() { # backfill_row LABEL SCHEMA
  local vals=""
  for _ in $(seq "$runs"); do vals+="$(backfill "$2")"$'\n'; done
  printf '| %s | %s |\n' "$1" "$(printf '%s' "$vals" | stats)"
}
{
  echo
  echo "## Backfill: 120 months, 8 workers, claim any, 5 ms of work per month (ideal 75 ms)"
  echo
  echo "| edition | wall ms |"
  echo "|---|---|"
  backfill_row native native
  backfill_row SQL-only portable
} >>"$results.tmp"

# Memory: 10,000 waited grants (transaction scope) in one transaction, by the wait path of each
# method on free months, in a fresh session: growth of the backend's memory contexts.
memory() { # memory SQL-FOR-MONTH-i -> kB
  "${psql[@]}" -d $db -At <<SQL | grep -v '^$' | tail -1
BEGIN;
SELECT sum(total_bytes) AS before FROM pg_backend_memory_contexts \\gset
DO \$\$ BEGIN FOR i IN 0..9999 LOOP $1; END LOOP; END \$\$;
SELECT ((sum(total_bytes) - :before) / 1024)::bigint FROM pg_backend_memory_contexts;
COMMIT;
SQL
}
{
  echo
  echo "## Memory: 10,000 waited grants in one transaction (growth of the backend's memory contexts)"
  echo
  echo "| method | kB |"
  echo "|---|---|"
  echo "| built-in pg_advisory_xact_lock | $(memory "PERFORM pg_advisory_xact_lock(1835821824, (1000 + i / 12) * 100 + 1 + i % 12)") |"
  echo "| SQL-only wait path (month_lock__wait: EXCEPTION block, lock_timeout) | $(memory "PERFORM portable.month_lock__wait('{1835821824,2,1835821824,1}', (1000 + i / 12) * 100 + 1 + i % 12, true, false, 10000)") |"
} >>"$results.tmp"
mv "$results.tmp" "$results"
cat "$results"
