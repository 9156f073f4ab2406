// postgres.js (`postgres`): an `sql` instance, a reserved connection, or a transaction's `sql`.
import * as SQL from "../sql.js";
import { InTransactionError, UnsupportedDriverError } from "../errors.js";
import { qualify } from "../schema.js";
import { cancelUntilSettled, runAbortable, unlessAborted } from "./abort.js";
import type { Beat, Conn, Dedicated, Driver, Row } from "./types.js";

/** The parts of a postgres.js query used here. */
interface PendingLike extends PromiseLike<any[]> {
  cancel(): unknown;
  /** postgres.js 4.2: `.transform(false)` leaves the instance's `transform` out of this query's rows. */
  transform?(transform: false): PendingLike;
  /** postgres.js 4.2 (not documented): true once the query is the one its connection runs. */
  active?: boolean;
  /** postgres.js 4.2 (not documented): the connection the query was given to. */
  connection?: { destroy?(error?: Error): void };
}

/**
 * `sql.unsafe(text, params)` with the rows as the server names and types them, whatever
 * `transform` (e.g. `postgres.camel`) the application's sql has (postgres.js 4.2; postgres.js 3, 4.0, 4.1
 * have no way to leave it out).
 */
export function plain(sql: PostgresSqlLike, text: string, params: unknown[] = []): PendingLike {
  const query = sql.unsafe(text, params as any[]);
  return typeof query.transform === "function" ? query.transform(false) : query;
}

/** A transaction's sql (from sql.begin): postgres.js gives only those `savepoint`. */
export function isTransactionSql(sql: PostgresSqlLike): boolean {
  return typeof sql.savepoint === "function";
}

/** The parts of a postgres.js `sql` (Sql, ReservedSql, TransactionSql) used here. */
export interface PostgresSqlLike {
  (...args: any[]): unknown;
  unsafe(text: string, params?: any[]): PendingLike;
  begin?: (options: string, cb: (tx: PostgresSqlLike) => unknown) => PromiseLike<unknown>;
  release?: () => unknown;
  /** postgres.js 4.2 and later (every sql, reserved and transaction ones too); not in 3, 4.0, 4.1. */
  batch?: unknown;
  savepoint?: unknown;
  options?: { max?: number };
}

export function isPostgresSql(db: unknown): db is PostgresSqlLike {
  return typeof db === "function" && typeof (db as PostgresSqlLike).unsafe === "function";
}

/**
 * `sql` runs the statements. A wait is cancelled with postgres.js's own cancel (the protocol's
 * CancelRequest, on a socket of its own: it needs no free connection) when the connection goes
 * straight to the server, and with `pg_cancel_backend` sent through `pool` (the application's
 * sql: another of its connections, so it waits for one to be free) when a pooler sits in
 * between: PgBouncer 1.18 and 1.19 can exit on a CancelRequest (pgbouncer#847). Without a
 * `pool` ({ max: 1 }, session scope) postgres.js's own cancel is the only one there is.
 */
// postgres.js 4 sends a CancelRequest only while the statement is the one the connection runs
// (never for a later one), and sends one each time it is asked: the cancel is repeated until
// the statement has ended, as a CancelRequest that arrives before the statement starts is
// ignored by the server.
function sqlConn(sql: PostgresSqlLike, key: object, pool?: PostgresSqlLike): Conn {
  let pid: number | undefined;
  let direct = false;
  return {
    async run<R extends Row>(sqlText: string, params: unknown[], signal?: AbortSignal) {
      const q = qualified(key, sql, sqlText);
      const text = typeof q === "string" ? q : await q;
      if (signal && pool && pid === undefined) {
        signal.throwIfAborted();
        // The pid of this transaction's server backend: one extra round trip, only for calls
        // that pass a signal. The connection is direct when the server's pid is the one the
        // connection's BackendKeyData named (a pooler hands out keys of its own).
        const rows = (await plain(sql, SQL.BACKEND_PID)) as Array<{ pid: number }> & { state?: { pid?: unknown } };
        pid = rows[0].pid;
        direct = rows.state?.pid === pid;
      }
      const query = plain(sql, text, params);
      return runAbortable<R>(
        signal,
        async () => (await query) as R[],
        pool && !direct
          ? (settled) => cancelUntilSettled(() => Promise.resolve(plain(pool, SQL.CANCEL_BACKEND, [pid!])), settled)
          : (settled) => cancelUntilSettled(() => Promise.resolve(query.cancel()), settled),
      );
    },
  };
}

/** `text` with the extension's schema, looked up once per `key` (the application's sql). */
export function qualified(key: object, sql: PostgresSqlLike, text: string): string | Promise<string> {
  return qualify(key, text, async (q) => [...((await plain(sql, q)) as Array<{ schema: string }>)]);
}

/**
 * postgres.js 4.0 and later: its queries have `.signal()` (since 4.0.0; 3 has none). `sql.batch`
 * came only with 4.2. The query is built, not sent: postgres.js runs a query when it is awaited.
 */
export function isPostgres4(sql: PostgresSqlLike): boolean {
  if (typeof sql.batch === "function") return true;
  return typeof (sql.unsafe("SELECT 1") as { signal?: unknown }).signal === "function";
}

/**
 * postgres.js 3 is kept for plain use (compat, holds without a signal). Its cancel races: an
 * abort can cancel the connection's next statement or leave a { max: 1 } connection unusable,
 * and a heartbeat on a reserved connection whose backend was terminated crashes the process.
 */
function requirePostgres4(sql: PostgresSqlLike, feature: string): void {
  if (!isPostgres4(sql)) {
    throw new UnsupportedDriverError(feature, "postgres.js 4 or later (postgres.js 3 is supported without signals and session scope), or pg");
  }
}

export function postgresDriver(sql: PostgresSqlLike): Driver {
  return {
    name: "postgres",
    any: sqlConn(sql, sql),
    async transaction<R>(body: (conn: Conn, tx: unknown) => Promise<R>, signal?: AbortSignal): Promise<R> {
      if (signal !== undefined) requirePostgres4(sql, "an AbortSignal");
      if (isTransactionSql(sql)) {
        throw new InTransactionError("this postgres.js sql is a transaction's (from sql.begin); withMonthLock begins and commits its own transaction: pass the application's sql");
      }
      if (typeof sql.begin !== "function") {
        throw new TypeError(typeof sql.release === "function"
          ? "month-lock: a reserved postgres.js sql (sql.reserve()) has no sql.begin(): pass the application's sql for transaction scope, or use lockMonthSession on the reserved one"
          : "month-lock: this postgres.js sql cannot begin a transaction (it is a transaction's sql: pass the application's sql)");
      }
      // A cancel needs another connection of the pool; with { max: 1 } there is none.
      const pool = (sql.options?.max ?? 1) > 1 ? sql : undefined;
      // A begin waiting for a connection cannot be withdrawn: an abort before the transaction
      // starts rejects now, and the transaction, when it starts, rolls back at once. Once it
      // has started, the abort is the waiting statement's (runAbortable).
      let started!: () => void;
      const starting = new Promise<void>((resolve) => (started = resolve));
      // READ COMMITTED whatever the session's default (see driver/pg.ts).
      const done = Promise.resolve(sql.begin(SQL.BEGIN_OPTIONS, (tx) => {
        started();
        signal?.throwIfAborted();
        return body(sqlConn(tx, sql, pool), tx);
      })) as Promise<R>;
      // The transaction's own outcome is reported below; this keeps an abandoned one quiet.
      done.catch(() => undefined);
      await unlessAborted(Promise.race([starting, done.then(() => undefined)]), signal, () => undefined);
      return done;
    },
    dedicated(): Dedicated {
      requirePostgres4(sql, "session scope");
      if (isTransactionSql(sql)) {
        throw new InTransactionError("session scope needs a connection of its own, not a transaction's sql (from sql.begin), which ends with its transaction: pass `await sql.reserve()` or an sql made with { max: 1 }");
      }
      const dedicated = typeof sql.release === "function" || sql.options?.max === 1;
      if (!dedicated) {
        throw new TypeError(
          "month-lock: session scope needs one connection: pass `await sql.reserve()` or an sql made with { max: 1 }",
        );
      }
      // The connection the last heartbeat was given to, to close when it does not answer.
      let last: PendingLike | undefined;
      // A direct connection: postgres.js's own cancel. postgres.js reports no connection
      // events: the heartbeat notices a lost session.
      return {
        conn: sqlConn(sql, sql),
        watch: () => () => undefined,
        canBeat: true,
        beat<R extends Row>(text: string, params: unknown[]): Beat<R> {
          let query: PendingLike | undefined;
          const send = (t: string) => (last = query = plain(sql, t, params));
          const q = qualified(sql, sql, text);
          const answer = (typeof q === "string" ? Promise.resolve(send(q)) : q.then((t) => send(t)))
            .then((rows) => [...rows] as R[]);
          // Queued behind the connection's statements: running once postgres.js makes it the
          // head of its connection. A postgres.js without that flag: from the send on.
          return { answer, running: () => query !== undefined && query.active !== false };
        },
        close(cause) {
          last?.connection?.destroy?.(cause);
        },
      };
    },
  };
}
