// postgres.js (`postgres`): an `sql` instance, a reserved connection, or a transaction's `sql`.
import { runAbortable } from "./abort.js";
import type { Conn, Dedicated, Driver, Row } from "./types.js";

/** The parts of a postgres.js query used here. */
interface PendingLike extends PromiseLike<any[]> {
  cancel(): unknown;
}

/** The parts of a postgres.js `sql` (Sql, ReservedSql, TransactionSql) used here. */
export interface PostgresSqlLike {
  (...args: any[]): unknown;
  unsafe(text: string, params?: any[]): PendingLike;
  begin?: (cb: (tx: PostgresSqlLike) => unknown) => PromiseLike<unknown>;
  release?: () => unknown;
  savepoint?: unknown;
  options?: { max?: number };
}

export function isPostgresSql(db: unknown): db is PostgresSqlLike {
  return typeof db === "function" && typeof (db as PostgresSqlLike).unsafe === "function";
}

function sqlConn(sql: PostgresSqlLike): Conn {
  return {
    run<R extends Row>(text: string, params: unknown[], signal?: AbortSignal) {
      const query = sql.unsafe(text, params as any[]);
      return runAbortable<R>(
        signal,
        async () => (await query) as R[],
        // postgres.js cancels with the protocol's CancelRequest (which poolers forward) and
        // resolves once it is sent; a query not sent yet is just taken off the queue.
        async () => void (await query.cancel()),
      );
    },
  };
}

export function postgresDriver(sql: PostgresSqlLike): Driver {
  return {
    name: "postgres",
    any: sqlConn(sql),
    async transaction<R>(body: (conn: Conn, tx: unknown) => Promise<R>): Promise<R> {
      if (typeof sql.begin !== "function") {
        throw new TypeError("month-lock: this postgres.js sql cannot begin a transaction (already inside one?)");
      }
      return (await sql.begin((tx) => body(sqlConn(tx), tx))) as R;
    },
    dedicated(): Dedicated {
      const dedicated = typeof sql.release === "function" || typeof sql.savepoint === "function"
        || sql.options?.max === 1;
      if (!dedicated) {
        throw new TypeError(
          "month-lock: session scope needs one connection: pass `await sql.reserve()` or an sql made with { max: 1 }",
        );
      }
      // postgres.js reports no connection events: the heartbeat notices a lost session.
      return { conn: sqlConn(sql), watch: () => () => undefined };
    },
  };
}
