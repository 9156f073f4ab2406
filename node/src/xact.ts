// Transaction scope: the month is held from the acquiring statement until COMMIT or ROLLBACK of
// the transaction the work runs in. Nothing outlives the transaction, so this is the scope that
// survives transaction poolers (PgBouncer, Hyperdrive, Supavisor, Neon).
import { driverOf } from "./driver/detect.js";
import type { Conn } from "./driver/types.js";
import { MonthBusyError } from "./errors.js";
import {
  checkTimeout, dateArrayLiteral, MAX_TIMEOUT_MS, monthOfDate, parseMonth, parseMonths,
  type MonthInput, type YearMonth,
} from "./month.js";
import * as SQL from "./sql.js";

export interface HoldOptions {
  /** Wait at most this long (ms) in the server's lock queue; 0 = one attempt; left out = no limit. */
  timeoutMs?: number;
  /** Shared mode: any number of shared holders, excluded by an exclusive one. No token. */
  shared?: boolean;
  /** Aborting stops a wait (the statement is cancelled on the server); nothing stays held. */
  signal?: AbortSignal;
  /**
   * `false`: skip the fencing token of an exclusive hold (`hold.token` is null). The token is
   * fetched by the acquiring statement itself; leaving it out makes that statement cheaper
   * (bench/node-results.md) for work that never hands the token to anything.
   */
  token?: boolean;
}

/** What `fn` learns about its hold. */
export interface MonthHold {
  readonly month: YearMonth;
  readonly mode: "exclusive" | "shared";
  /** Fencing token of an exclusive hold (larger for every later hold of the month); null when shared or `token: false`. */
  readonly token: bigint | null;
}

export interface MonthsHold {
  /** Every month held, ascending. */
  readonly months: readonly YearMonth[];
  /** Their fencing tokens, in the same order. */
  readonly tokens: readonly bigint[];
}

function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw new TypeError("month-lock: signal must be an AbortSignal");
  return signal;
}

/** Aborted after the statement had already taken the lock: ROLLBACK (by throwing) undoes it. */
function throwIfLate(ran: { abortedLate: boolean }, signal: AbortSignal | undefined): void {
  if (ran.abortedLate) throw signal!.reason;
}

async function acquireXact(conn: Conn, month: YearMonth, options: HoldOptions): Promise<MonthHold> {
  const timeout = options.timeoutMs;
  const args = timeout === undefined ? [month.year, month.month] : [month.year, month.month, timeout];
  if (options.shared || options.token === false) {
    const text = options.shared
      ? (timeout === undefined ? SQL.XACT_WAIT_SHARED : SQL.XACT_TRY_SHARED)
      : (timeout === undefined ? SQL.XACT_WAIT_UNFENCED : SQL.XACT_TRY_UNFENCED);
    const ran = await conn.run<{ ok: boolean }>(text, args, options.signal);
    throwIfLate(ran, options.signal);
    if (!ran.rows[0].ok) throw new MonthBusyError([month], timeout, "timeout");
    return Object.freeze({ month, mode: options.shared ? "shared" as const : "exclusive" as const, token: null });
  }
  const ran = await conn.run<{ token: string | null }>(
    timeout === undefined ? SQL.XACT_WAIT : SQL.XACT_TRY, args, options.signal);
  throwIfLate(ran, options.signal);
  const token = ran.rows[0].token;
  if (token === null) throw new MonthBusyError([month], timeout, "timeout");
  return Object.freeze({ month, mode: "exclusive" as const, token: BigInt(token) });
}

/**
 * Runs `fn` in a new transaction with the month held (exclusive, or shared with
 * `{ shared: true }`) and commits; the month is released by that COMMIT, or by the ROLLBACK
 * when `fn` throws (its error is passed on). `fn` gets the transaction (pg: the client,
 * postgres.js: the transaction's `sql`) and the hold with its fencing token. A month not had
 * within `timeoutMs` rejects with `MonthBusyError`; an abort rejects with `signal.reason`.
 * Either way nothing is held. Costs one statement beyond `fn`'s own (plus BEGIN and COMMIT).
 */
export async function withMonthLock<Tx = any, R = unknown>(
  db: unknown,
  month: MonthInput,
  fn: (tx: Tx, hold: MonthHold) => R | Promise<R>,
  options: HoldOptions = {},
): Promise<R> {
  const ym = parseMonth(month);
  const opts = { ...options, timeoutMs: checkTimeout(options.timeoutMs), signal: checkSignal(options.signal) };
  if (typeof fn !== "function") throw new TypeError("month-lock: fn must be a function");
  const driver = driverOf(db);
  opts.signal?.throwIfAborted();
  return driver.transaction(async (conn, tx) => fn(tx as Tx, await acquireXact(conn, ym, opts)), opts.signal);
}

/**
 * Claim any: in a new transaction, takes the first month of `months` (in the order given) that
 * is free right now, without waiting and never ahead of a queued waiter, and runs `fn` with it.
 * None free: `MonthBusyError` (reason "none-free"), nothing held.
 */
export async function withAnyMonth<Tx = any, R = unknown>(
  db: unknown,
  months: Iterable<MonthInput>,
  fn: (tx: Tx, hold: MonthHold) => R | Promise<R>,
): Promise<R> {
  const list = parseMonths(months, "months", "given");
  if (typeof fn !== "function") throw new TypeError("month-lock: fn must be a function");
  const driver = driverOf(db);
  return driver.transaction(async (conn, tx) => {
    const { rows } = await conn.run<{ month: string | null; token: string | null }>(
      SQL.XACT_CLAIM, [dateArrayLiteral(list)]);
    if (rows[0].month === null) throw new MonthBusyError(list, 0, "none-free");
    const hold = Object.freeze({ month: monthOfDate(rows[0].month), mode: "exclusive" as const, token: BigInt(rows[0].token!) });
    return fn(tx as Tx, hold);
  });
}

/**
 * All or nothing: in a new transaction, takes every month of `months` exclusively (ascending,
 * so two such calls never deadlock) within one overall `timeoutMs`, and runs `fn` with them.
 * Not all had in time: `MonthBusyError` (reason "not-all-free"), nothing held.
 */
export async function withAllMonths<Tx = any, R = unknown>(
  db: unknown,
  months: Iterable<MonthInput>,
  fn: (tx: Tx, hold: MonthsHold) => R | Promise<R>,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<R> {
  const list = parseMonths(months);
  const timeout = checkTimeout(options.timeoutMs);
  const signal = checkSignal(options.signal);
  if (typeof fn !== "function") throw new TypeError("month-lock: fn must be a function");
  const driver = driverOf(db);
  signal?.throwIfAborted();
  return driver.transaction(async (conn, tx) => {
    const ran = await conn.run<{ tokens: string | null }>(
      SQL.XACT_ALL, [dateArrayLiteral(list), timeout ?? MAX_TIMEOUT_MS], signal);
    throwIfLate(ran, signal);
    const tokens = ran.rows[0].tokens;
    if (tokens === null) throw new MonthBusyError(list, timeout, "not-all-free");
    return fn(tx as Tx, Object.freeze({ months: list, tokens: tokens.split(",").map((t) => BigInt(t)) }));
  }, signal);
}
