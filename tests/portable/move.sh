#!/usr/bin/env bash
# Usage: tests/portable/move.sh PG_CONFIG DIST_DIR OWNER
#
# The steps docs/editions.md gives for moving between editions, on a database owned by OWNER:
# install the SQL-only edition (and re-run it: an upgrade in place keeps the token sequence),
# move to CREATE EXTENSION month_lock in one transaction, then back, while another session
# holds a month throughout and two other sessions draw tokens as fast as they can (each in
# transactions of its own month). Checks that the month stays held across both moves (the key
# space is the same) and that tokens keep growing: no token is handed out twice, each drawer's
# tokens strictly increase, and both drawers drew from both editions around each move (the
# recipes lock the sequence against nextval before they read its position; the test lingers
# 0.5 s after the read, where a recipe without that lock hands tokens out again). Then, in one session that stays connected
# throughout: the edition reinstalled under it (uninstall + install) and moved to native and
# back under it keeps working, and what each edition's release does to a month taken before
# the move (docs/editions.md, "Moving between editions").
set -euo pipefail
pg_config=${1:?}; dist=${2:?}; owner=${3:?}
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
db=ml_move
check() { # check NAME SQL-returning-boolean [role]
  local got
  got=$(PGUSER=${3:-$PGUSER} "${psql[@]}" -d $db -At -c "$2")
  if [ "$got" != t ]; then echo "move: FAILED: $1 (got '$got')"; exit 1; fi
  echo "move: ok: $1"
}
token() { # a token of a fresh hold of 2024-01 in one transaction (any edition)
  "${psql[@]}" -d $db -At -c "SELECT month_lock_token(2024, 1) FROM (SELECT month_lock_try_xact(2024, 1) AS got OFFSET 0) s WHERE s.got"
}
"${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $owner"
PGUSER=$owner "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql"
t1=$(PGUSER=$owner token)
# Upgrade in place: the same (or a newer) script again keeps the sequence.
PGUSER=$owner "${psql[@]}" -d $db -f "$dist/month_lock-portable.sql" 2>/dev/null
t2=$(PGUSER=$owner token)
[ "$t2" -gt "$t1" ] || { echo "move: FAILED: token after re-install $t2 <= $t1"; exit 1; }
echo "move: ok: re-running the script keeps the token sequence ($t1 -> $t2)"

# A session of the SQL-only edition holds 2024-05 across both moves.
PGUSER=$owner PGAPPNAME=ml_move_holder "${psql[@]}" -d $db \
  -c "SELECT month_lock_try(2024, 5)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 100); do
  [ "$("${psql[@]}" -d $db -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 202405 AND granted")" = 1 ] && break
  sleep 0.1
done

# Two drawers: sessions drawing tokens throughout both moves, recording each token with the
# edition that drew it; a call that fails during a move (docs/editions.md: calls in flight fail)
# is counted, not recorded.
"${psql[@]}" -d $db -c "CREATE TABLE public.ml_move_tokens (drawer integer, n integer, token bigint, native boolean)" \
  -c "CREATE TABLE public.ml_move_stop ()" -c "CREATE TABLE public.ml_move_errors (drawer integer, errors integer)" \
  -c "GRANT ALL ON public.ml_move_tokens, public.ml_move_stop, public.ml_move_errors TO $owner"
drawers=()
for d in 21 22; do
  PGUSER=$owner PGAPPNAME=ml_move_drawer "${psql[@]}" -d $db -c "
DO \$\$
DECLARE t bigint; n integer := 0; errs integer := 0;
BEGIN
  LOOP
    EXIT WHEN EXISTS (SELECT FROM public.ml_move_stop);
    BEGIN
      IF month_lock_try_xact(2025, $d % 12 + 1) THEN
        t := month_lock_token(2025, $d % 12 + 1);
        n := n + 1;
        INSERT INTO public.ml_move_tokens
          VALUES ($d, n, t, EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'month_lock'));
      END IF;
    EXCEPTION WHEN OTHERS THEN
      errs := errs + 1;
    END;
    COMMIT;
  END LOOP;
  INSERT INTO public.ml_move_errors VALUES ($d, errs);
END \$\$" >/dev/null 2>&1 &
  drawers+=($!)
done
# Until each drawer has drawn 10 more tokens of edition $1 (native true/false) than it had when
# `mark` ran: a drawer slower than the other still draws in every phase (up to 30 s).
mark() { "${psql[@]}" -d $db -At -c "SELECT coalesce(max(n) FILTER (WHERE drawer = 21), 0) || ' ' || coalesce(max(n) FILTER (WHERE drawer = 22), 0) FROM public.ml_move_tokens"; }
each_drew() {
  local b21 b22; read -r b21 b22 <<<"$2"
  for _ in $(seq 300); do
    [ "$("${psql[@]}" -d $db -At -c "SELECT count(DISTINCT drawer) FROM public.ml_move_tokens WHERE native = $1 AND ((drawer = 21 AND n > $b21 + 10) OR (drawer = 22 AND n > $b22 + 10))")" = 2 ] && return
    sleep 0.1
  done
}
each_drew false "0 0"

# SQL-only -> native (superuser): read the sequence, drop the edition, create the extension,
# carry the sequence over; one transaction, so other sessions see one edition or the other.
# ALTER SEQUENCE (a no-op here) first: its lock keeps every session's nextval waiting until
# COMMIT, so no token is drawn between the read and the drop.
"${psql[@]}" -d $db >/dev/null <<SQL
BEGIN;
ALTER SEQUENCE public.month_lock_token_seq NO CYCLE;
SELECT last_value AS seq_last, is_called AS seq_called FROM public.month_lock_token_seq \gset
SELECT pg_catalog.pg_sleep(0.5);
\i $dist/month_lock-portable-uninstall.sql
CREATE EXTENSION month_lock SCHEMA public;
SELECT pg_catalog.setval('public.month_lock_token_seq', :seq_last, :'seq_called');
COMMIT;
SQL
after_first=$(mark)

check "native installed" "SELECT count(*) = 1 FROM pg_extension WHERE extname = 'month_lock'"
check "no SQL-only function left" "SELECT count(*) = 0 FROM pg_proc WHERE proname LIKE 'month\\_lock%' AND prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')"
check "the SQL-only session's month is held for the native edition" "SELECT month_is_locked(2024, 5) AND NOT month_lock_try(2024, 5)" $owner
t3=$(token)
[ "$t3" -gt "$t2" ] || { echo "move: FAILED: native token $t3 <= $t2"; exit 1; }
echo "move: ok: the native edition's token continues ($t2 -> $t3)"

# native -> SQL-only: the same in reverse; the edition belongs to the database owner again.
each_drew true "$after_first"
"${psql[@]}" -d $db >/dev/null <<SQL
BEGIN;
ALTER SEQUENCE public.month_lock_token_seq NO CYCLE;
SELECT last_value AS seq_last, is_called AS seq_called FROM public.month_lock_token_seq \gset
SELECT pg_catalog.pg_sleep(0.5);
DROP EXTENSION month_lock;
SET ROLE $owner;
\i $dist/month_lock-portable.sql
SELECT pg_catalog.setval('public.month_lock_token_seq', :seq_last, :'seq_called');
RESET ROLE;
COMMIT;
SQL
check "no extension" "SELECT count(*) = 0 FROM pg_extension WHERE extname = 'month_lock'"
check "the month is still held, now seen by the SQL-only edition" "SELECT month_is_locked(2024, 5) AND NOT month_lock_try(2024, 5)" $owner
t4=$(PGUSER=$owner token)
[ "$t4" -gt "$t3" ] || { echo "move: FAILED: SQL-only token $t4 <= $t3"; exit 1; }
echo "move: ok: the SQL-only edition's token continues ($t3 -> $t4)"
# The drawers: tokens of the SQL-only edition again, then stop.
each_drew false "$(mark)"
"${psql[@]}" -d $db -c "INSERT INTO public.ml_move_stop DEFAULT VALUES"
for p in "${drawers[@]}"; do wait "$p" || { echo "move: FAILED: a drawer ended with an error"; exit 1; }; done
"${psql[@]}" -d $db -At -c "SELECT 'move: drawers: ' || count(*) || ' tokens (' || count(*) FILTER (WHERE native) || ' native), '
  || (SELECT sum(errors) FROM public.ml_move_errors) || ' calls failed during the moves' FROM public.ml_move_tokens"
check "no token was handed out twice" "SELECT count(*) = count(DISTINCT token) FROM public.ml_move_tokens"
check "each drawer's tokens strictly increase" "SELECT bool_and(token > prev) FROM (SELECT token, lag(token) OVER (PARTITION BY drawer ORDER BY n) AS prev FROM public.ml_move_tokens) t WHERE prev IS NOT NULL"
"${psql[@]}" -d $db -At -c "SELECT 'move: drawer ' || drawer || ': ' || string_agg(CASE WHEN native THEN 'native' ELSE 'SQL-only' END || ' x' || c, ', ' ORDER BY first) FROM (SELECT drawer, native, grp, min(n) AS first, count(*) AS c FROM (SELECT drawer, n, native, sum(CASE WHEN native IS DISTINCT FROM prev THEN 1 ELSE 0 END) OVER (PARTITION BY drawer ORDER BY n) AS grp FROM (SELECT drawer, n, native, lag(native) OVER (PARTITION BY drawer ORDER BY n) AS prev FROM public.ml_move_tokens) a) b GROUP BY drawer, native, grp) c GROUP BY drawer ORDER BY drawer"
check "both drawers drew from the SQL-only edition, then the native one, then the SQL-only one" "SELECT bool_and(phases = 3 AND NOT first_native) AND count(*) = 2 FROM (SELECT drawer, 1 + count(*) FILTER (WHERE prev IS NOT NULL AND native <> prev) AS phases, bool_or(native AND prev IS NULL) AS first_native FROM (SELECT drawer, native, lag(native) OVER (PARTITION BY drawer ORDER BY n) AS prev FROM public.ml_move_tokens) t GROUP BY drawer) d"
"${psql[@]}" -d $db -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ml_move_holder'" >/dev/null
wait $holder 2>/dev/null || true
check "the holder's month is free once its session ended" "SELECT NOT month_is_locked(2024, 5)" $owner

# One session across a reinstall and both moves (each step run by \! in another connection).
super=$PGUSER
out=$(PGUSER=$owner "${psql[@]}" -d $db -At 2>&1 <<SQL
SELECT 'used', month_lock_try(2024, 7), month_lock_token(2024, 7) > 0;
\! PGUSER=$owner $bindir/psql -X -q -v ON_ERROR_STOP=1 -d $db -f "$dist/month_lock-portable-uninstall.sql" -f "$dist/month_lock-portable.sql" 2>/dev/null
SELECT 'after_reinstall', month_lock_try(2024, 7), month_lock_try(2024, 8), month_lock_token(2024, 7) > 0,
       month_lock_release(2024, 8);
SELECT 'taken_before_native', month_lock_try(2024, 9);
\! PGUSER=$super $bindir/psql -X -q -v ON_ERROR_STOP=1 -d $db -c "BEGIN" -c "SELECT last_value, is_called FROM public.month_lock_token_seq" -f "$dist/month_lock-portable-uninstall.sql" -c "CREATE EXTENSION month_lock SCHEMA public" -c "COMMIT" >/dev/null
SELECT 'native_release', month_lock_release(2024, 9), month_lock_release_all(), month_is_locked(2024, 9);
SELECT 'raw_unlock', pg_advisory_unlock(month_lock_key_classid()::integer, 202409), month_is_locked(2024, 9);
SELECT 'native_take', month_lock_try(2024, 10);
\! PGUSER=$super $bindir/psql -X -q -v ON_ERROR_STOP=1 -d $db -c "BEGIN" -c "DROP EXTENSION month_lock" -c "SET ROLE $owner" -f "$dist/month_lock-portable.sql" -c "RESET ROLE" -c "COMMIT" >/dev/null 2>&1
SELECT 'portable_release', month_lock_release(2024, 10), month_is_locked(2024, 10);
SELECT 'after_moves', month_lock_try(2024, 11), month_lock_token(2024, 11) > 0, month_lock_release(2024, 11),
       month_lock_release(2024, 7);
SQL
) || { echo "$out"; echo "move: FAILED: a session across reinstall and moves"; exit 1; }
expect() { # expect LINE DESCRIPTION
  grep -qx "$1" <<<"$out" || { echo "$out"; echo "move: FAILED: $2 (wanted '$1')"; exit 1; }
  echo "move: ok: $2"
}
expect 'used|t|t' "a session uses the SQL-only edition"
expect 'after_reinstall|t|t|t|t' "the same session re-enters, takes, draws a token after a reinstall under it"
expect 'native_release|f|0|t' "documented: the native month_lock_release and month_lock_release_all do not free a month taken with the SQL-only edition before the move"
expect 'raw_unlock|t|f' "documented: pg_advisory_unlock(month_lock_key_classid(), yyyymm) frees it"
expect 'portable_release|t|f' "the SQL-only month_lock_release frees a month taken with the native edition before the move"
expect 'after_moves|t|t|t|t' "the same session keeps working after both moves"
