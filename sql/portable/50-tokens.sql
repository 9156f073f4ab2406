-- month_lock, SQL-only edition: fencing tokens.
--
-- Every call draws a new token from the shared sequence month_lock_token_seq (sql/month_lock.sql);
-- nothing is cached (docs/editions.md, Differences). A cache would have to tell whether the hold
-- it was drawn for is still the session's hold, and no state SQL can keep does so safely: a
-- setting is rewound by ROLLBACK TO SAVEPOINT while session locks are not, and the per-session
-- state that a rollback leaves alone (a sequence's currval) cannot be written in a read-only
-- transaction, where a hold can still be released and taken again.

-- Earlier versions kept the generations of a per-transaction token cache in this sequence; it is
-- no longer used. Dropped if the installing role owns it (the uninstall script drops it too).
DO $hint_seq$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_class c
              WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('@extschema@.month_lock__hint_seq')
                AND c.relowner OPERATOR(pg_catalog.=)
                    (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER)) THEN
    DROP SEQUENCE @extschema@.month_lock__hint_seq;
  END IF;
END
$hint_seq$;

-- Exclusive holds only; 55000 otherwise. The hold is checked, then the token drawn, in one call:
-- a token is only ever returned for the hold it was drawn for. Durability: a value nextval takes
-- from the sequence's pre-logged range carries no WAL and no transaction id, so its transaction
-- would commit without a flush. The transactional logical message gives the transaction both:
-- its COMMIT returns only once the token's sequence record is flushed (and, with
-- synchronous_commit = on and synchronous standbys, replicated).
CREATE OR REPLACE FUNCTION @extschema@.month_lock_token(year integer, month integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
  token bigint;
  other text;
BEGIN
  sp := @extschema@.month_lock__space();
  ym := @extschema@.month_lock__month(year, month, sp);
  IF (@extschema@.month_lock__mine(sp, ym) & 1) = 0 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: month %s-%s is not held exclusively by this session',
                                  pg_catalog.lpad((ym / 100)::text, 4, '0'), pg_catalog.lpad((ym % 100)::text, 2, '0')),
      HINT = 'Take the month first (month_lock_try, month_lock, month_lock_try_xact, ...): a token belongs to a hold.';
  END IF;
  -- One database, one token sequence (10-checks.sql): another edition created beside this one
  -- later draws from its own, so this one hands out none.
  other := @extschema@.month_lock__other_edition(
    (SELECT c.relowner FROM pg_catalog.pg_class c
      WHERE c.oid = '@extschema@.month_lock_token_seq'::pg_catalog.regclass));
  IF other IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: another month_lock edition is installed in this database (schema %s): no token from this one', other),
      HINT = 'Fencing tokens come from one sequence per database: use one edition (docs/editions.md, moving between editions).';
  END IF;
  token := pg_catalog.nextval('@extschema@.month_lock_token_seq'::pg_catalog.regclass);
  PERFORM pg_catalog.pg_logical_emit_message(true, 'month_lock', token::text);
  RETURN token;
END
$fn$;
