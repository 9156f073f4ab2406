// What the lock logic needs from a driver, so that it is written once for pg and postgres.js.

export type Row = Record<string, unknown>;

/** The answer of one statement, and whether an abort arrived too late to stop it. */
export interface Ran<R extends Row> {
  rows: R[];
  /**
   * The signal fired but the statement had finished anyway (its cancel came too late). The
   * caller undoes what the statement took before it reports the abort.
   */
  abortedLate: boolean;
}

/** One connection (or the pool's next one, for questions). */
export interface Conn {
  /**
   * Runs one statement. With a signal, an abort cancels the statement on the server and the
   * promise rejects with `signal.reason`, once the cancel has been delivered.
   */
  run<R extends Row>(text: string, params: unknown[], signal?: AbortSignal): Promise<Ran<R>>;
}

/** A heartbeat on its way: its answer, and whether the server is running it yet. */
export interface Beat<R extends Row> {
  answer: Promise<R[]>;
  /**
   * Whether the beat is the statement the connection runs now (not queued behind one of the
   * caller's): its deadline counts from then.
   */
  running(): boolean;
}

/** A connection given for session scope, and how to hear that it is gone. */
export interface Dedicated {
  conn: Conn;
  /** Calls `gone` when the driver reports the connection closed or broken; returns an unsubscribe. */
  watch(gone: (cause: unknown) => void): () => void;
  /**
   * Whether a heartbeat may be sent now: the connection is idle outside a transaction block
   * with nothing queued, when the driver can tell (pg). Left out: the heartbeat is sent anyway
   * (postgres.js queues it behind the connection's statements).
   */
  idle?(): boolean;
  /** false: the driver cannot tell when a heartbeat is safe to send, so none is sent. */
  canBeat: boolean;
  /** Sends one heartbeat statement. */
  beat<R extends Row>(text: string, params: unknown[]): Beat<R>;
  /** Closes the connection's socket (an unresponsive session): what is pending on it fails. */
  close(cause: Error): void;
}

export interface Driver {
  readonly name: "pg" | "postgres";
  /**
   * Runs `body` in a transaction on one connection: COMMIT on success, ROLLBACK on error. An
   * abort of `signal` while the call still waits for a pool's connection rejects at once with
   * `signal.reason`; the connection, when the pool hands it over later, goes back unused.
   */
  transaction<R>(body: (conn: Conn, tx: unknown) => Promise<R>, signal?: AbortSignal): Promise<R>;
  /** For questions: any connection, one autocommit statement. */
  readonly any: Conn;
  /** The connection itself, for session scope; a TypeError for a pool. */
  dedicated(): Dedicated;
}

/** The SQLSTATE of a cancelled statement. */
export const QUERY_CANCELED = "57014";

export function sqlstate(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
