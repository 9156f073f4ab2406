// Session scope, for a connection of its own (a pg.Client, a pool's client, postgres.js
// `sql.reserve()` or an sql with { max: 1 }): the month stays held across transactions until
// released or until the session ends. Not for transaction poolers, where the next statement
// may run on another server session.
import { driverOf } from "./driver/detect.js";
import type { Conn, Dedicated } from "./driver/types.js";
import { InvalidArgumentError, MonthAlreadyHeldError, MonthBusyError, MonthLockLostError } from "./errors.js";
import { checkTimeout, parseMonth, type MonthInput, type YearMonth } from "./month.js";
import * as SQL from "./sql.js";
import { sqlstate } from "./driver/types.js";

export interface SessionLockOptions {
  /** Wait at most this long (ms); 0 = one attempt; left out = no limit. */
  timeoutMs?: number;
  shared?: boolean;
  /** Aborting stops a wait; nothing stays held. */
  signal?: AbortSignal;
  /**
   * How often (ms) the session is asked whether it still holds the month; 0 turns the
   * heartbeat off (a pg connection's own close and error events still fire `lost`). Default 1000.
   */
  heartbeatMs?: number;
  /**
   * How long (ms) a heartbeat may run unanswered before `lost` fires with why
   * `"unresponsive"` and the connection is closed. Counted from when the server starts on it
   * (not while it waits behind a statement of the caller's). Default: twice `heartbeatMs`, at
   * least 2000.
   */
  heartbeatTimeoutMs?: number;
}

/** A month held by a session. `await using lock = await lockMonthSession(...)` releases it at the block's end. */
export interface MonthSessionLock {
  readonly month: YearMonth;
  readonly mode: "exclusive" | "shared";
  /** Fencing token of an exclusive hold; null when shared. */
  readonly token: bigint | null;
  /**
   * Fires (reason: `MonthLockLostError`) when the hold can no longer be counted on: the
   * connection broke or was terminated, the server restarted, a heartbeat answered no, or a
   * heartbeat went unanswered for `heartbeatTimeoutMs` ("unresponsive": the connection is then
   * closed). Pass it to the work so that the work stops.
   */
  readonly lost: AbortSignal;
  /**
   * Releases the month: true if this session still held it. Quiet; only the first call
   * releases (later calls answer false). After `lost` fired as "unresponsive" it sends nothing
   * and answers false at once.
   */
  release(): Promise<boolean>;
  [Symbol.asyncDispose](): Promise<void>;
}

// Node 18 has no Symbol.asyncDispose; the well-known fallback keeps `await using` working with
// TypeScript's down-levelled helpers there.
const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose
  ?? (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

const DEFAULT_HEARTBEAT_MS = 1000;
const MIN_HEARTBEAT_TIMEOUT_MS = 2000;

/** Takes the month in session scope on `conn` (see `MonthSessionLock`). */
export async function lockMonthSession(
  conn: unknown,
  month: MonthInput,
  options: SessionLockOptions = {},
): Promise<MonthSessionLock> {
  const ym = parseMonth(month);
  const timeout = checkTimeout(options.timeoutMs);
  const heartbeatMs = checkTimeout(options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, "heartbeatMs")!;
  const heartbeatTimeoutMs = checkTimeout(options.heartbeatTimeoutMs ?? Math.max(2 * heartbeatMs, MIN_HEARTBEAT_TIMEOUT_MS), "heartbeatTimeoutMs")!;
  if (heartbeatTimeoutMs === 0) throw new InvalidArgumentError("heartbeatTimeoutMs", options.heartbeatTimeoutMs, "a positive number of milliseconds");
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError("month-lock: signal must be an AbortSignal");
  }
  const dedicated = driverOf(conn).dedicated();
  const c = dedicated.conn;
  signal?.throwIfAborted();
  const shared = options.shared === true;
  const args = timeout === undefined ? [ym.year, ym.month] : [ym.year, ym.month, timeout];
  const text = shared
    ? (timeout === undefined ? SQL.SESSION_WAIT_SHARED : SQL.SESSION_TRY_SHARED)
    : (timeout === undefined ? SQL.SESSION_WAIT : SQL.SESSION_TRY);
  // A statement that fails (cancel, error) takes nothing: the extension undoes a session grant
  // of a failed request.
  const ran = await c.run<{ held: boolean; token?: string | null; ok?: boolean | null }>(text, args, signal);
  const row = ran.rows[0];
  if (row.held) throw new MonthAlreadyHeldError(ym);
  const got = shared ? row.ok === true : row.token !== null;
  if (ran.abortedLate) {
    if (got) await release(c, ym, shared).catch(() => undefined);
    throw signal!.reason;
  }
  if (!got) throw new MonthBusyError([ym], timeout, "timeout");
  return new SessionLock(c, dedicated, ym, shared, shared ? null : BigInt(row.token!), heartbeatMs, heartbeatTimeoutMs);
}

/**
 * Runs `fn` with the month held in session scope and releases it afterwards, also when `fn`
 * throws (its error is passed on). `fn` gets the lock; `lock.lost` fires if the session goes.
 */
export async function withMonthSessionLock<R>(
  conn: unknown,
  month: MonthInput,
  fn: (lock: MonthSessionLock) => R | Promise<R>,
  options: SessionLockOptions = {},
): Promise<R> {
  if (typeof fn !== "function") throw new TypeError("month-lock: fn must be a function");
  const lock = await lockMonthSession(conn, month, options);
  let result: R;
  try {
    result = await fn(lock);
  } catch (error) {
    // fn's error is the one reported, even if the release fails too.
    await lock.release().catch(() => undefined);
    throw error;
  }
  await lock.release();
  return result;
}

async function release(c: Conn, ym: YearMonth, shared: boolean): Promise<boolean> {
  const { rows } = await c.run<{ released: boolean }>(shared ? SQL.RELEASE_SHARED : SQL.RELEASE, [ym.year, ym.month]);
  return rows[0].released;
}

/**
 * Whether a heartbeat's error means the session is gone: the driver's own connection errors
 * (no SQLSTATE, or a code of the driver's or of the socket's such as CONNECTION_CLOSED or
 * ECONNRESET) and the server's connection_exception (08) and operator_intervention (57P01-57P05)
 * classes. Any other SQLSTATE is an answer of the session (it is alive and keeps its locks):
 * a cancelled heartbeat, a failed transaction block, a privilege taken away.
 */
function sessionGone(error: unknown): boolean {
  const code = sqlstate(error);
  if (code === undefined) return true;
  if (/^[0-9A-Z]{5}$/.test(code)) return code.startsWith("08") || code.startsWith("57P");
  // The drivers' and the socket's own codes: only those about the connection mean it is gone
  // (postgres.js CONNECTION_CLOSED / _ENDED / _DESTROYED, CONNECT_TIMEOUT; ECONNRESET, EPIPE,
  // ETIMEDOUT, ...). Others (UNSAFE_TRANSACTION, QUERY_TIMEOUT, ...) are about the statement.
  return /^(CONNECTION_|CONNECT_)/.test(code) || /^E[A-Z]+$/.test(code);
}

class SessionLock implements MonthSessionLock {
  readonly mode: "exclusive" | "shared";
  readonly lost: AbortSignal;
  #controller = new AbortController();
  #released: Promise<boolean> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #unwatch: () => void;
  #unresponsive = false;

  constructor(
    private readonly conn: Conn,
    private readonly dedicated: Pick<Dedicated, "watch" | "idle" | "canBeat" | "beat" | "close">,
    readonly month: YearMonth,
    shared: boolean,
    readonly token: bigint | null,
    heartbeatMs: number,
    heartbeatTimeoutMs: number,
  ) {
    this.mode = shared ? "shared" : "exclusive";
    this.lost = this.#controller.signal;
    this.#unwatch = dedicated.watch((cause) => this.#lose("session-gone", cause));
    if (heartbeatMs > 0 && dedicated.canBeat) {
      // The beat on its way, and since when the server runs it.
      let inFlight: { running(): boolean; since?: number; confirming?: boolean } | undefined;
      this.#timer = setInterval(() => {
        if (inFlight !== undefined) {
          // A beat the server runs but does not answer within heartbeatTimeoutMs: the link or
          // the server stalls, and the hold cannot be proven (the server may have ended the
          // session and handed the month on). One unanswered beat must not silence the rest.
          if (inFlight.since === undefined && inFlight.running()) inFlight.since = Date.now();
          if (inFlight.since !== undefined && Date.now() - inFlight.since >= heartbeatTimeoutMs && !this.#released) {
            // Overdue by the clock, but the process itself may have stalled (a synchronous
            // loop, a long GC) with the answer waiting unread in the socket, and timers run
            // before the socket is read. Declared lost only if the beat is still unanswered
            // after two I/O poll phases have run since (an immediate set from a check phase
            // runs after the next poll phase).
            const overdue = inFlight;
            if (overdue.confirming) return;
            overdue.confirming = true;
            setImmediate(() => setImmediate(() => {
              overdue.confirming = false;
              if (inFlight === overdue && this.#timer !== undefined && !this.#released) this.#lose("unresponsive");
            }));
          }
          return;
        }
        // Never inside the caller's transaction (where a failing heartbeat would abort it)
        // when the driver can tell: the next beat asks again.
        if (dedicated.idle !== undefined && !dedicated.idle()) return;
        const beat = this.dedicated.beat<{ held: boolean }>(SQL.HELD_BY_ME, [month.year, month.month]);
        const current: { running(): boolean; since?: number; confirming?: boolean } = { running: beat.running };
        if (beat.running()) current.since = Date.now();
        inFlight = current;
        beat.answer.then(
          (rows) => {
            if (!rows[0].held && !this.#released) this.#lose("not-held");
          },
          (error) => {
            // Any other error is the session's answer: it is alive and keeps the month; the
            // next beat asks again.
            if (sessionGone(error) && !this.#released) this.#lose("session-gone", error);
          },
        ).finally(() => {
          if (inFlight === current) inFlight = undefined;
        });
      }, heartbeatMs);
      // The heartbeat alone does not keep the process alive.
      this.#timer.unref?.();
    }
  }

  #stopHeartbeat(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #lose(why: "session-gone" | "not-held" | "unresponsive", cause?: unknown): void {
    // The connection's listeners stay until release(): a broken pg connection emits more than
    // one error, and one without a listener would crash the process.
    this.#stopHeartbeat();
    if (this.lost.aborted) return;
    const error = new MonthLockLostError(this.month, why, { cause });
    if (why === "unresponsive") {
      // Closed, so that what waits on the stalled connection (the caller's statements, a
      // release) fails instead of hanging, and the server, if it still runs the session,
      // ends it (and its locks) when it notices.
      this.#unresponsive = true;
      this.dedicated.close(error);
    }
    this.#controller.abort(error);
  }

  release(): Promise<boolean> {
    // Only the first call releases: later ones (and the one of `await using` after an
    // explicit release) answer false.
    if (this.#released !== undefined) return this.#released.then(() => false, () => false);
    this.#released = (async () => {
      this.#stopHeartbeat();
      this.#unwatch();
      // The connection was closed as unresponsive: nothing can be sent (a postgres.js sql
      // would reconnect through the same stalled link) and the hold is not provable.
      if (this.#unresponsive) return false;
      // Sent even after `lost` fired: the signal may have fired for a session that is still
      // there (a driver's error event), and then the release gives the month back.
      try {
        return await release(this.conn, this.month, this.mode === "shared");
      } catch (error) {
        // The session went away: the server released with it.
        if (this.lost.aborted || sessionGone(error)) return false;
        throw error;
      }
    })();
    return this.#released;
  }

  async [asyncDispose](): Promise<void> {
    await this.release();
  }
}
