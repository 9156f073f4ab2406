// node-postgres (`pg`): a Pool, a Client, or a client checked out of a pool.
import * as SQL from "../sql.js";
import { ConnectionInUseError, InTransactionError, TransactionRolledBackError } from "../errors.js";
import { qualify } from "../schema.js";
import { CANCEL_REPEAT_MS, cancelUntilSettled, runAbortable, unlessAborted } from "./abort.js";
import type { Beat, Conn, Dedicated, Driver, Row } from "./types.js";

/** The parts of a pg.Client (or PoolClient) used here. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; command: string }>;
  connectionParameters?: unknown;
  on?(event: string, listener: (...args: any[]) => void): unknown;
  removeListener?(event: string, listener: (...args: any[]) => void): unknown;
  release?(destroy?: boolean | Error): void;
  /** pg 8.17 and later: the last ReadyForQuery status, "I" idle, "T" in a transaction, "E" failed one. */
  getTransactionStatus?(): string | null;
  /** true while no statement of the client's is on its way (pg sets it at ReadyForQuery). */
  readyForQuery?: boolean;
}

/** The parts of a pg.Pool used here. */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; command: string }>;
  connect(): Promise<PgClientLike>;
  readonly totalCount: number;
}

export function isPgPool(db: unknown): db is PgPoolLike {
  return typeof db === "object" && db !== null && typeof (db as PgPoolLike).connect === "function"
    && typeof (db as PgPoolLike).query === "function" && "totalCount" in db;
}

export function isPgClient(db: unknown): db is PgClientLike {
  return typeof db === "object" && db !== null && typeof (db as PgClientLike).query === "function"
    && "connectionParameters" in db;
}

/**
 * pg has no public cancel: a second connection with the same settings asks the server to
 * `pg_cancel_backend` the waiter. Behind a transaction pooler this second connection needs a
 * free server connection of the pool.
 */
async function cancelFromSecondConnection(client: PgClientLike, pid: number, settled: () => boolean) {
  const Ctor = (client as unknown as { constructor: new (config: unknown) => PgClientLike & {
    connect(): Promise<void>; end(): Promise<void>;
  } }).constructor;
  // A connection refused (no free slot: 53300, a pooler's limit) or lost is tried again every
  // CANCEL_REPEAT_MS until the statement has ended: one refusal must not drop the abort.
  while (!settled()) {
    const other = new Ctor(client.connectionParameters);
    other.on?.("error", () => undefined);
    try {
      await other.connect();
      await cancelUntilSettled(() => other.query(SQL.CANCEL_BACKEND, [pid]), settled);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, CANCEL_REPEAT_MS));
    } finally {
      await other.end().catch(() => undefined);
    }
  }
}

/** `text` with the extension's schema, looked up once per `key` (a pool or a client). */
function qualified(key: object, db: { query: PgClientLike["query"] }, text: string): string | Promise<string> {
  return qualify(key, text, async (q) => (await db.query(q)).rows);
}

function clientConn(client: PgClientLike, key: object = client): Conn {
  let pid: number | undefined;
  return {
    async run<R extends Row>(sqlText: string, params: unknown[], signal?: AbortSignal) {
      const q = qualified(key, client, sqlText);
      const text = typeof q === "string" ? q : await q;
      if (signal) {
        signal.throwIfAborted();
        // The pid of this transaction's server backend (behind a pooler the client's own
        // BackendKeyData names the pooler's, not the server's): one extra round trip, only
        // for calls that pass a signal.
        pid ??= (await client.query(SQL.BACKEND_PID)).rows[0].pid as number;
      }
      return runAbortable<R>(
        signal,
        async () => (await client.query(text, params)).rows as R[],
        (settled) => cancelFromSecondConnection(client, pid!, settled),
      );
    },
  };
}

/** Clients a call of this package runs a transaction on right now. */
const inTransaction = new WeakSet<object>();

export function pgDriver(db: PgPoolLike | PgClientLike): Driver {
  const pool = isPgPool(db) ? db : undefined;
  return {
    name: "pg",
    get any(): Conn {
      return {
        async run<R extends Row>(sqlText: string, params: unknown[]) {
          const q = qualified(db, db, sqlText);
          const text = typeof q === "string" ? q : await q;
          return { rows: (await db.query(text, params)).rows as R[], abortedLate: false };
        },
      };
    },
    async transaction<R>(body: (conn: Conn, tx: unknown) => Promise<R>, signal?: AbortSignal): Promise<R> {
      // A pool's connect() cannot be withdrawn: an abort rejects now, the client goes back when it comes.
      const client = pool ? await unlessAborted(pool.connect(), signal, (c) => c.release?.()) : (db as PgClientLike);
      // A pg.Client queues a second caller's statements into the first caller's transaction.
      if (inTransaction.has(client)) throw new ConnectionInUseError();
      // A client inside a transaction block (pg 8.17+ says): our BEGIN would only warn and our
      // COMMIT would end the caller's transaction.
      const status = client.getTransactionStatus?.();
      if (status === "T" || status === "E") {
        if (pool) client.release?.();
        throw new InTransactionError("this pg client is inside a transaction block; withMonthLock begins and commits its own: pass an idle client or the pool");
      }
      inTransaction.add(client);
      let broken: unknown;
      try {
        // READ COMMITTED whatever the session's default: under REPEATABLE READ or SERIALIZABLE
        // the acquiring statement (the first) would take the snapshot before the wait, and the
        // work would not see what the previous holder committed.
        await client.query(SQL.BEGIN_READ_COMMITTED).catch((e: unknown) => {
          broken = e;
          throw e;
        });
        let result: R;
        try {
          result = await body(clientConn(client, pool ?? client), client);
        } catch (error) {
          await client.query("ROLLBACK").catch((e: unknown) => (broken = e));
          throw error;
        }
        const done = await client.query("COMMIT").catch((e: unknown) => {
          broken = e;
          throw e;
        });
        if (done.command !== "COMMIT") {
          // The server answers COMMIT of a failed transaction with ROLLBACK, not an error.
          throw new TransactionRolledBackError();
        }
        return result;
      } finally {
        inTransaction.delete(client);
        // A client whose ROLLBACK or COMMIT failed is not handed to the next user of the pool.
        if (pool) client.release?.(broken instanceof Error ? broken : broken !== undefined);
      }
    },
    dedicated(): Dedicated {
      if (pool) {
        throw new TypeError(
          "month-lock: session scope needs one connection, not a pool: pass `await pool.connect()` or a pg.Client",
        );
      }
      const client = db as PgClientLike;
      // pg before 8.17 cannot say whether the client is inside a transaction block: a beat
      // could run inside the caller's transaction and abort it, so none is sent.
      const canBeat = typeof client.getTransactionStatus === "function";
      return {
        conn: clientConn(client),
        canBeat,
        idle() {
          // Nothing running, nothing queued behind (pg's own queue, not public: an unknown
          // shape counts as empty) and outside a transaction block.
          const queued = (client as unknown as { _queryQueue?: unknown[] })._queryQueue?.length ?? 0;
          return canBeat && client.readyForQuery !== false && queued === 0 && client.getTransactionStatus!() === "I";
        },
        beat<R extends Row>(text: string, params: unknown[]): Beat<R> {
          const q = qualified(client, client, text);
          const answer = (typeof q === "string" ? client.query(q, params) : q.then((t) => client.query(t, params)))
            .then((r) => r.rows as R[]);
          // Sent only when the client is idle: it runs at once.
          return { answer, running: () => true };
        },
        close() {
          // end() first, so that pg takes the closing socket for an ended client (its pending
          // statements fail with "Connection terminated", no `error` event); then the socket
          // (not public; absent: end() alone) is destroyed, as a Terminate cannot cross a
          // stalled link.
          (client as unknown as { end?(): Promise<void> }).end?.().catch(() => undefined);
          const stream = (client as unknown as { connection?: { stream?: { destroy?(): void } } }).connection?.stream;
          stream?.destroy?.();
        },
        watch(gone) {
          const onError = (e: unknown) => gone(e);
          const onEnd = () => gone(new Error("connection ended"));
          client.on?.("error", onError);
          client.on?.("end", onEnd);
          return () => {
            client.removeListener?.("error", onError);
            client.removeListener?.("end", onEnd);
          };
        },
      };
    },
  };
}
