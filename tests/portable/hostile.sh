#!/usr/bin/env bash
# Usage: tests/portable/hostile.sh PG_CONFIG DIST_DIR OWNER
#
# Other roles of the database against the SQL-only edition (docs/editions.md, "Installing"):
#   plant     a role given CREATE on the edition's schema after the install plants, for every
#             internal helper and every argument position, an overload taking text there (an
#             untyped NULL or string literal would bind it); month_lock_all's false path,
#             claims, releases and tokens run as the owner: no planted function may run, and
#             month_lock_all's false leaves nothing held
#   refuse    the install refuses (42501) a schema where PUBLIC or another role may create
#             objects (on PostgreSQL 14 also public as the server makes it), and a schema where
#             another role created month_lock_token_seq beforehand (as the owner and as a
#             superuser installing)
#   tempseq   a role's temporary sequence, or a sequence of its own in its own schema, named
#             month_lock_token_seq, changes nothing: tokens are handed out, the install works
set -euo pipefail
pg_config=${1:?}; dist=${2:?}; owner=${3:?}
bindir=$("$pg_config" --bindir)
psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
planter=ml_planter
db=ml_hostile
status=0
ok() { echo "hostile: ok: $*"; }
bad() { echo "hostile: FAILED: $*"; status=1; }
as() { local who=$1; shift; PGUSER=$who "${psql[@]}" -d "$db" "$@"; }

"${psql[@]}" -d postgres -c "CREATE ROLE $planter LOGIN NOSUPERUSER"
major=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
# template0: public as the server makes it (PostgreSQL 14 grants CREATE on it to PUBLIC)
"${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $owner TEMPLATE template0"
if [ "$major" -lt 15 ]; then
  err=$(as $owner -v VERBOSITY=verbose -f "$dist/month_lock-portable.sql" 2>&1) \
    && bad "PostgreSQL $major's default public (CREATE for PUBLIC) was not refused" \
    || { grep -q "42501.*PUBLIC may create objects in schema public" <<<"$err" \
         && ok "PostgreSQL $major's default public (CREATE for PUBLIC) is refused" \
         || bad "unexpected error on PostgreSQL $major's default public: $(grep ERROR <<<"$err")"; }
fi
# The advice PostgreSQL gives (and follows from 15 on): no CREATE on public for PUBLIC.
"${psql[@]}" -d $db -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC" -c "GRANT CREATE ON SCHEMA public TO $owner"
as $owner -f "$dist/month_lock-portable.sql"

# --- plant -------------------------------------------------------------------------------------
"${psql[@]}" -d $db -c "GRANT CREATE ON SCHEMA public TO $planter"
as $planter <<'SQL'
CREATE TABLE public.planted_calls(fn text);
GRANT INSERT, SELECT ON public.planted_calls TO PUBLIC;
DO $$
DECLARE
  f record;
  types text[];
  i integer;
  sig text;
BEGIN
  FOR f IN SELECT p.proname, string_to_array(oidvectortypes(p.proargtypes), ', ') AS args,
                  p.prorettype::regtype::text AS ret
             FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'month\_lock\_\_%'
              AND p.pronargs > 0
  LOOP
    FOR i IN 1..array_length(f.args, 1) LOOP
      CONTINUE WHEN f.args[i] = 'text';
      types := ARRAY(SELECT CASE WHEN j = i THEN 'text' ELSE f.args[j] END
                       FROM generate_series(1, array_length(f.args, 1)) j);
      sig := format('public.%I(%s)', f.proname, array_to_string(types, ', '));
      EXECUTE format('CREATE FUNCTION %s RETURNS %s LANGUAGE plpgsql AS $p$ BEGIN '
                     'INSERT INTO public.planted_calls VALUES (%L); RETURN %s; END $p$',
                     sig, f.ret, sig, CASE WHEN f.ret = 'void' THEN '' ELSE 'NULL' END);
    END LOOP;
  END LOOP;
END $$;
SQL
planted=$(as $owner -At -c "SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = '$planter'")
[ "$planted" -gt 20 ] || bad "only $planted overloads planted"
# Another session holds 2034-02, so month_lock_all over 2034-01..02 returns false (its give-back
# path, where an untyped NULL once bound a planted overload).
PGAPPNAME=ml_hostile_bg PGUSER=$owner "${psql[@]}" -d $db -c "SELECT month_lock_try(2034, 2)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 200); do
  [ "$(as $owner -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 203402 AND granted")" = 1 ] && break
  sleep 0.05
done
got=$(as $owner -At -F ' ' <<'SQL'
SELECT month_lock_all(ARRAY['2034-01-01', '2034-02-01']::date[]),
       month_lock_all(ARRAY['2034-01-01', '2034-02-01']::date[], 20),
       month_lock_held(2034, 1);
SELECT month_lock_claim(ARRAY['2034-02-01', '2034-03-01']::date[]) = '2034-03-01',
       month_lock_token(2034, 3) > 0, month_lock_release(2034, 3), month_lock_release(2034, 3),
       month_lock_try_shared(2034, 4), month_lock_release_shared(2034, 4),
       month_lock_try(2034, 5, 5), month_lock_all(ARRAY['2034-06-01', '2034-07-01']::date[]),
       month_lock_release(ARRAY['2034-06-01', '2034-07-01']::date[]),
       month_lock_try(2034, 8), month_lock_try(2034, 8), month_lock_release_all(),
       month_is_locked(2034, 2), month_lock_held(2034, 2);
BEGIN;
SELECT month_lock_try_xact(2034, 9), month_lock_all_xact(ARRAY['2034-09-01', '2034-02-01']::date[], 5),
       month_lock_claim_xact(ARRAY['2034-02-01', '2034-10-01']::date[]) = '2034-10-01', month_lock_token(2034, 10) > 0;
COMMIT;
SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid();
SQL
)
stop_bg() { "${psql[@]}" -d postgres -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ml_hostile_bg'" >/dev/null; wait "$@" 2>/dev/null || true; }
stop_bg $holder
expect=$'f f f\nt t t f t t t t 2 t t 2 t f\nt f t t\n0'
[ "$got" = "$expect" ] && ok "month_lock_all's false path and the other calls bind no planted overload, and leave nothing held" \
  || bad "with planted overloads: got
$got
expected
$expect"
calls=$(as $owner -At -c "SELECT count(*) || ' ' || coalesce(string_agg(DISTINCT fn, ', '), '') FROM public.planted_calls")
[ "$calls" = "0 " ] && ok "none of $planted planted overloads ran" || bad "planted overloads ran: $calls"
as $planter -c "DROP OWNED BY $planter"
"${psql[@]}" -d $db -c "REVOKE CREATE ON SCHEMA public FROM $planter"

# --- refuse ------------------------------------------------------------------------------------
refused() { # what expected_message: the owner's install into public must fail with it
  local err
  if err=$(as $owner -v VERBOSITY=verbose -f "$dist/month_lock-portable.sql" 2>&1); then
    bad "$1: the install was not refused"
  elif grep -q "$2" <<<"$err"; then
    ok "$1: refused ($2)"
  else
    bad "$1: unexpected error: $err"
  fi
}
"${psql[@]}" -d $db -c "GRANT CREATE ON SCHEMA public TO PUBLIC"
refused "CREATE on the schema for PUBLIC (PostgreSQL 14's default)" "42501.*PUBLIC may create objects in schema public"
"${psql[@]}" -d $db -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC" -c "GRANT CREATE ON SCHEMA public TO $planter"
refused "CREATE on the schema for another role" "42501.*$planter may create objects in schema public"
# The planter creates objects under the edition's names in a schema that the owner then
# installs into (the edition in public removed first: one edition per database); CREATE is
# taken back before the owner installs.
as $owner -f "$dist/month_lock-portable-uninstall.sql"
"${psql[@]}" -d $db -c "REVOKE CREATE ON SCHEMA public FROM $planter" \
  -c "CREATE SCHEMA squat AUTHORIZATION $owner" -c "GRANT USAGE, CREATE ON SCHEMA squat TO $planter"
as $planter -c "CREATE SEQUENCE squat.month_lock_token_seq" -c "GRANT USAGE ON SEQUENCE squat.month_lock_token_seq TO $owner WITH GRANT OPTION" \
  -c "CREATE SEQUENCE squat.month_lock__hint_seq"
as $owner -c "REVOKE CREATE ON SCHEMA squat FROM $planter"
for installer in $owner $PGUSER; do
  # the owner is refused by COMMENT ON SEQUENCE already; a superuser by the final ownership check
  err=$(PGOPTIONS="-c search_path=squat" PGUSER=$installer "${psql[@]}" -d $db -v VERBOSITY=verbose -f "$dist/month_lock-portable.sql" 2>&1) \
    && bad "a month_lock_token_seq another role created beforehand was kept (installing as $installer)" \
    || { grep -Eq "42501.*(must be owner of sequence month_lock_token_seq|squat.month_lock_token_seq exists already and belongs to another role)" <<<"$err" \
         && ok "refused, installing as $installer: a month_lock_token_seq another role created beforehand" \
         || bad "unexpected error: $(grep ERROR <<<"$err")"; }
done
as $planter -c "DROP SEQUENCE squat.month_lock_token_seq"
PGOPTIONS="-c search_path=squat" as $owner -f "$dist/month_lock-portable.sql" \
  && ok "installs once the other role's sequence is gone (its month_lock__hint_seq, no longer used, stays its own)" \
  || bad "the install after the squatted sequence was dropped"
# the role's month_lock__hint_seq (a sequence earlier versions used) cannot take tokens away
as $planter -c "REVOKE USAGE ON SEQUENCE squat.month_lock__hint_seq FROM PUBLIC, $owner CASCADE"
got=$(PGOPTIONS="-c search_path=squat" as $owner -At -c "SELECT month_lock_try(2035, 1)" -c "SELECT month_lock_token(2035, 1) > 0" -c "SELECT month_lock_release(2035, 1)" 2>&1)
[ "$got" = $'t\nt\nt' ] && ok "tokens in the re-installed schema" || bad "tokens in schema squat: $got"
PGOPTIONS="-c search_path=squat" as $owner -f "$dist/month_lock-portable-uninstall.sql"
as $owner -f "$dist/month_lock-portable.sql"

# --- tempseq -----------------------------------------------------------------------------------
"${psql[@]}" -d $db -c "CREATE SCHEMA planter_own AUTHORIZATION $planter"
as $planter -c "CREATE SEQUENCE planter_own.month_lock_token_seq"
PGAPPNAME=ml_hostile_bg PGUSER=$planter "${psql[@]}" -d $db -c "CREATE TEMP SEQUENCE month_lock_token_seq" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
tempseq=$!
for _ in $(seq 200); do
  [ "$(as $owner -At -c "SELECT count(*) FROM pg_class WHERE relname = 'month_lock_token_seq' AND relpersistence = 't'")" = 1 ] && break
  sleep 0.05
done
got=$(as $owner -At -v VERBOSITY=sqlstate -c "SELECT month_lock_try(2036, 1)" -c "SELECT month_lock_token(2036, 1) > 0" -c "SELECT month_lock_release(2036, 1)" 2>&1)
[ "$got" = $'t\nt\nt' ] && ok "a role's temporary and own sequences named month_lock_token_seq change no token" \
  || bad "tokens beside a role's sequences named month_lock_token_seq: $got"
as $owner -f "$dist/month_lock-portable.sql" && ok "the install (an upgrade in place) is not refused beside them" \
  || bad "the install was refused beside a role's sequences named month_lock_token_seq"
stop_bg $tempseq

# --- dollar -----------------------------------------------------------------------------------
# A schema name with a dollar-quote tag in it would end the functions' $fn$ bodies: refused with
# 42602 naming the schema, before anything is created (the uninstall script too).
"${psql[@]}" -d $db -c 'CREATE SCHEMA "x$fn$y" AUTHORIZATION '"$owner"
for f in month_lock-portable.sql month_lock-portable-uninstall.sql; do
  err=$(PGOPTIONS='-c search_path=x$fn$y' as $owner -v VERBOSITY=verbose -f "$dist/$f" 2>&1) \
    && bad "$f ran in schema x\$fn\$y" \
    || { grep -Fq 'ERROR:  42602: month_lock: cannot install into schema "x$fn$y": the name contains "$"' <<<"$err" \
         && ok "$f refuses schema x\$fn\$y (42602, naming it)" || bad "$f in schema x\$fn\$y: $err"; }
done
n=$(as $owner -At -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'x\$fn\$y'")
n=$((n + $(as $owner -At -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'x\$fn\$y'")))
[ "$n" = 0 ] && ok "nothing was created in schema x\$fn\$y" || bad "$n objects in schema x\$fn\$y"

# --- own schema ---------------------------------------------------------------------------------
# docs/editions.md's recipe for a schema of its own (PostgreSQL 14): with GRANT USAGE to PUBLIC,
# every role may call the functions and read the view (the edition in public removed first:
# one edition per database).
as $owner -f "$dist/month_lock-portable-uninstall.sql"
"${psql[@]}" -d $db -c "CREATE SCHEMA month_lock AUTHORIZATION $owner"
as $owner -c "GRANT USAGE ON SCHEMA month_lock TO PUBLIC"
PGOPTIONS="-c search_path=month_lock" as $owner -f "$dist/month_lock-portable.sql"
got=$(as $planter -At -c "SELECT month_lock.month_lock_try(2037, 1), month_lock.month_lock_token(2037, 1) > 0,
  (SELECT count(*) FROM month_lock.month_locks WHERE month_start = '2037-01-01'), month_lock.month_lock_release(2037, 1)" 2>&1)
[ "$got" = 't|t|1|t' ] && ok "another role calls the edition in a schema of its own after GRANT USAGE" \
  || bad "another role and the edition in a schema of its own: $got"

"${psql[@]}" -d postgres -c "DROP DATABASE $db" -c "DROP ROLE $planter" >/dev/null
exit $status
