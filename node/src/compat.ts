// `month-lock/compat`: the original application's advisory-locks.ts API, on month_lock.
// Session scope on a postgres.js `sql` made with { max: 1 } (one connection, as that
// application used): the lock stays with that connection until released. Behind a transaction
// pooler use the main entry's withMonthLock instead (transaction scope).
import { isPostgresSql, type PostgresSqlLike } from "./driver/postgres.js";
import { MonthBusyError } from "./errors.js";
import { checkMonthNumber, checkTimeout, checkYear } from "./month.js";
import * as SQL from "./sql.js";

export { InvalidArgumentError, MonthBusyError } from "./errors.js";

/** The default wait of withMonthLock when no timeout is given. */
const DEFAULT_TIMEOUT_MS = 30_000;

/** One row of the `month_locks` view, as the server names its columns. */
export interface AdvisoryLockRow {
  year: number;
  month: number;
  month_start: Date | string;
  mode: "exclusive" | "shared";
  granted: boolean;
  pid: number;
  waiting_since: Date | null;
  application_name: string | null;
  usename: string | null;
  client_addr: string | null;
  backend_start: Date | null;
}

/** The postgres.js `sql` the functions take (checked by shape; postgres.js is not imported). */
export type Sql = PostgresSqlLike | ((...args: any[]) => any);

function checkSql(sql: unknown): PostgresSqlLike {
  if (!isPostgresSql(sql)) throw new TypeError("month-lock/compat: sql must be a postgres.js sql");
  // A session lock taken on one pooled connection cannot be released from another.
  const max = sql.options?.max;
  if (typeof sql.release !== "function" && typeof max === "number" && max > 1) {
    throw new TypeError(`month-lock/compat: sql must be made with { max: 1 } (got max: ${max}), or be sql.reserve()`);
  }
  return sql;
}

async function one<R>(sql: PostgresSqlLike, text: string, params: unknown[]): Promise<R> {
  const rows = (await sql.unsafe(text, params as any[])) as R[];
  return rows[0];
}

/**
 * Takes the month for this connection, waiting up to `timeoutMs` (0: one attempt) in the
 * server's queue. Resolves false at the timeout; never rejects for a busy month. Taking a
 * month this connection already holds resolves true and does not stack.
 */
export async function acquireMonthLock(sql: Sql, year: number, month: number, timeoutMs: number): Promise<boolean> {
  checkYear(year);
  checkMonthNumber(month);
  const timeout = checkTimeout(timeoutMs ?? 0)!;
  const s = checkSql(sql);
  return (await one<{ ok: boolean }>(s, SQL.TRY_SESSION_PLAIN, [year, month, timeout])).ok;
}

/** Releases the month: true if this connection held it, otherwise false (quietly). */
export async function releaseMonthLock(sql: Sql, year: number, month: number): Promise<boolean> {
  checkYear(year);
  checkMonthNumber(month);
  const s = checkSql(sql);
  return (await one<{ released: boolean }>(s, SQL.RELEASE, [year, month])).released;
}

/**
 * Runs `fn` with the month held and releases it afterwards, on success and on error. Resolves
 * with `fn`'s result; rejects with `fn`'s error, or with `MonthBusyError` if the month was not
 * had within `timeoutMs` (default `DEFAULT_TIMEOUT_MS`), in which case `fn` did not run.
 */
export async function withMonthLock<T>(
  sql: Sql,
  year: number,
  month: number,
  fn: () => T | Promise<T>,
  timeoutMs: number = DEFAULT_TIMEOUT_MS,
): Promise<T> {
  if (typeof fn !== "function") throw new TypeError("month-lock/compat: fn must be a function");
  if (!(await acquireMonthLock(sql, year, month, timeoutMs))) {
    throw new MonthBusyError([{ year, month }], timeoutMs, "timeout");
  }
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    // fn's error is the one reported, even if the release fails too (the connection broke).
    await releaseMonthLock(sql, year, month).catch(() => undefined);
    throw error;
  }
  await releaseMonthLock(sql, year, month);
  return result;
}

/** Whether any session holds the month. */
export async function isMonthLocked(sql: Sql, year: number, month: number): Promise<boolean> {
  checkYear(year);
  checkMonthNumber(month);
  const s = checkSql(sql);
  return (await one<{ locked: boolean }>(s, SQL.IS_LOCKED, [year, month])).locked;
}

/** Every holder and waiter of a month lock: the rows of the `month_locks` view. */
export async function getAllAdvisoryLocks(sql: Sql): Promise<AdvisoryLockRow[]> {
  const s = checkSql(sql);
  return [...((await s.unsafe(SQL.ALL_ROWS)) as AdvisoryLockRow[])];
}
