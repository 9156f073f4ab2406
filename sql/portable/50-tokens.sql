-- month_lock, SQL-only edition: fencing tokens.
--
-- A token is drawn from the shared sequence month_lock_token_seq (sql/month_lock.sql) and
-- cached for the rest of the transaction in the transaction-local setting month_lock_sql.xtok,
-- as 'G|,classid.objsubid.yyyymm=TOKEN,...'. Nothing survives the transaction: a session hold
-- gets a new, larger token in each transaction that asks (docs/editions.md). Settings are
-- rewound by ROLLBACK TO SAVEPOINT while session locks are not, so every write of the cache
-- draws a generation G from month_lock__hint_seq, whose per-session currval no rollback
-- rewinds: a cache whose G is not currval was rewound and is not used. A role can write the
-- setting itself, so a cached token is only returned if it does not exceed the token sequence's
-- position: a written value can lower the role's own token, never raise it above a token a
-- later holder of the month will get.
CREATE SEQUENCE IF NOT EXISTS @extschema@.month_lock__hint_seq AS pg_catalog.int8 CACHE 1000;
GRANT USAGE ON SEQUENCE @extschema@.month_lock__hint_seq TO PUBLIC;

-- A token list without the entry of one month (tk: ',classid.objsubid.yyyymm=').
CREATE OR REPLACE FUNCTION @extschema@.month_lock__tok_drop(toks text, tk text)
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  p integer := pg_catalog.strpos(toks, tk);
BEGIN
  IF p = 0 THEN
    RETURN toks;
  END IF;
  -- ',a=1,b=2,' without 'b=2,': keep up to the comma before the entry, then what follows the
  -- comma after it
  RETURN pg_catalog.substr(toks, 1, p)
      || pg_catalog.substr(toks, p + pg_catalog.length(tk)
                                 + pg_catalog.strpos(pg_catalog.substr(toks, p + pg_catalog.length(tk)), ','));
END
$fn$;


-- Exclusive holds only; 55000 otherwise. Durability: a value nextval takes from the sequence's
-- pre-logged range carries no WAL and no transaction id, so its transaction would commit
-- without a flush. The transactional logical message gives the transaction both: its COMMIT
-- returns only once the token's sequence record is flushed (and, with synchronous_commit = on
-- and synchronous standbys, replicated).
CREATE OR REPLACE FUNCTION @extschema@.month_lock_token(year integer, month integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
  tk text;
  x text;
  toks text;
  p integer;
  cached bigint;
  current_g boolean;
  token bigint;
  other text;
BEGIN
  sp := @extschema@.month_lock__space();
  ym := @extschema@.month_lock__month(year, month, sp);
  tk := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=';
  IF (@extschema@.month_lock__mine(sp, ym) & 1) = 0 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: month %s-%s is not held exclusively by this session',
                                  pg_catalog.lpad((ym / 100)::text, 4, '0'), pg_catalog.lpad((ym % 100)::text, 2, '0')),
      HINT = 'Take the month first (month_lock_try, month_lock, month_lock_try_xact, ...): a token belongs to a hold.';
  END IF;
  -- One database, one token sequence (10-checks.sql): another edition created beside this one
  -- later draws from its own, so this one hands out none.
  SELECT n.nspname INTO other
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relname = 'month_lock_token_seq' AND c.relkind = 'S'
     AND c.relnamespace <> '@extschema@'::pg_catalog.regnamespace
   LIMIT 1;
  IF other IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: another month_lock edition is installed in this database (schema %s): no token from this one', other),
      HINT = 'Fencing tokens come from one sequence per database: use one edition (docs/editions.md, moving between editions).';
  END IF;
  x := COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '');
  toks := ',';
  IF x <> '' AND pg_catalog.current_setting('transaction_read_only') = 'off' THEN
    BEGIN
      current_g := pg_catalog.split_part(x, '|', 1)
                   = pg_catalog.currval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
      current_g := false;  -- no generation drawn in this session (or DISCARD SEQUENCES)
    END;
    IF current_g THEN
      toks := pg_catalog.split_part(x, '|', 2);
      p := pg_catalog.strpos(toks, tk);
      IF p > 0 THEN
        cached := pg_catalog.substring(pg_catalog.split_part(pg_catalog.substr(toks, p + pg_catalog.length(tk)), ',', 1), '^[0-9]{1,18}$')::bigint;
        IF cached IS NOT NULL AND cached <= pg_catalog.pg_sequence_last_value('@extschema@.month_lock_token_seq'::pg_catalog.regclass) THEN
          RETURN cached;
        END IF;
        toks := @extschema@.month_lock__tok_drop(toks, tk);
      END IF;
    END IF;
  END IF;
  token := pg_catalog.nextval('@extschema@.month_lock_token_seq'::pg_catalog.regclass);
  PERFORM pg_catalog.pg_logical_emit_message(true, 'month_lock', token::text);
  PERFORM pg_catalog.set_config('month_lock_sql.xtok',
    pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text || '|'
      || CASE WHEN toks IN ('', ',') THEN ',' ELSE toks END || pg_catalog.substr(tk, 2) || token::text || ',', true);
  RETURN token;
END
$fn$;
