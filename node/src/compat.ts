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
 * What compat knows about one connection (one `sql`): how many references its calls took on
 * each month, since month_lock's own holds do not stack and the original's raw advisory locks
 * did, and the tail of its calls that change them, which run one after another (the connection
 * runs its statements one after another anyway).
 */
interface Connection {
  refs: Map<number, number>;
  tail: Promise<unknown>;
}
const connections = new WeakMap<object, Connection>();

function inTurn<T>(sql: PostgresSqlLike, op: (refs: Map<number, number>) => Promise<T>): Promise<T> {
  let c = connections.get(sql);
  if (c === undefined) connections.set(sql, (c = { refs: new Map(), tail: Promise.resolve() }));
  const { refs } = c;
  const run = c.tail.then(() => op(refs));
  c.tail = run.catch(() => undefined);
  return run;
}

/**
 * Takes the month for this connection, waiting up to `timeoutMs` (0: one attempt) in the
 * server's queue. Resolves false at the timeout, whatever the session's `statement_timeout`;
 * never rejects for a busy month. Taking a month this connection already holds resolves true
 * and stacks, as `pg_advisory_lock` does: every true needs its release.
 */
export async function acquireMonthLock(sql: Sql, year: number, month: number, timeoutMs: number): Promise<boolean> {
  checkYear(year);
  checkMonthNumber(month);
  const timeout = checkTimeout(timeoutMs ?? 0)!;
  const s = checkSql(sql);
  const key = year * 100 + month;
  // Inside the caller's transaction (a postgres.js transaction's sql) the setting is changed
  // for the transaction only.
  const local = typeof s.savepoint === "function";
  return inTurn(s, async (refs) => {
    const [off, wait, back] = await Promise.allSettled([
      s.unsafe(SQL.COMPAT_TIMEOUT_OFF, [local]),
      s.unsafe(SQL.COMPAT_TRY, [year, month, timeout]),
      s.unsafe(SQL.COMPAT_TIMEOUT_BACK, [local]),
    ]);
    // A cancel meant for the wait can land on the restore just after it: restore once more.
    const restored = back.status === "fulfilled"
      || (await Promise.resolve(s.unsafe(SQL.COMPAT_TIMEOUT_BACK, [local])).then(() => true, () => false));
    if (wait.status === "rejected") throw wait.reason;
    const { held, ok } = (wait.value as Array<{ held: boolean; ok: boolean }>)[0];
    // The server says whether the session held the month before: a count left from a session
    // that was lost (postgres.js reconnects silently) starts again.
    if (!held) refs.delete(key);
    if (ok) refs.set(key, (refs.get(key) ?? 0) + 1);
    // A wait that answered is reported as it answered, so that a month it took is never hidden
    // behind an error of the setting's statements (which fail only with the session).
    if (!ok && off.status === "rejected") throw off.reason;
    if (!ok && !restored) throw (back as PromiseRejectedResult).reason;
    return ok;
  });
}

/**
 * Gives back one reference to the month: true if this connection held it, otherwise false
 * (quietly). The month is released when the last reference goes.
 */
export async function releaseMonthLock(sql: Sql, year: number, month: number): Promise<boolean> {
  checkYear(year);
  checkMonthNumber(month);
  const s = checkSql(sql);
  const key = year * 100 + month;
  return inTurn(s, async (refs) => {
    const count = refs.get(key) ?? 0;
    if (count > 1) {
      // Another reference stays: only ask whether the session still holds the month.
      const { held } = await one<{ held: boolean }>(s, SQL.HELD_BY_ME, [year, month]);
      if (held) refs.set(key, count - 1);
      else refs.delete(key);
      return held;
    }
    refs.delete(key);
    return (await one<{ released: boolean }>(s, SQL.RELEASE, [year, month])).released;
  });
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
