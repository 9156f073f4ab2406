// `month-lock/compat`: the original application's advisory-locks.ts API, on month_lock.
// Session scope on a postgres.js `sql` made with { max: 1 } (one connection, as that
// application used): the lock stays with that connection until released. Behind a pooler it
// refuses (UnsupportedDriverError): use the main entry's withMonthLock there (transaction scope).
import { isPostgresSql, isTransactionSql, plain, qualified, type PostgresSqlLike } from "./driver/postgres.js";
import { InTransactionError, MonthBusyError, UnsupportedDriverError } from "./errors.js";
import { checkMonthNumber, checkTimeout, checkYear } from "./month.js";
import * as SQL from "./sql.js";

export { InvalidArgumentError, MonthBusyError, UnsupportedDriverError } from "./errors.js";

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
  if (isTransactionSql(sql)) {
    // A session lock outlives the transaction, and postgres.js does not tell which sql the
    // transaction came from: with max > 1 its connection would go back to the pool, month held.
    throw new InTransactionError("month-lock/compat: sql must not be a transaction's sql (from sql.begin): pass the { max: 1 } sql itself, or sql.reserve()");
  }
  const max = sql.options?.max;
  if (typeof sql.release !== "function" && typeof max === "number" && max > 1) {
    throw new TypeError(`month-lock/compat: sql must be made with { max: 1 } (got max: ${max}), or be sql.reserve()`);
  }
  return sql;
}

/** `text` with the extension's schema (looked up once per `sql`). */
function q(sql: PostgresSqlLike, text: string): string | Promise<string> {
  return qualified(sql, sql, text);
}

async function one<R>(sql: PostgresSqlLike, text: string, params: unknown[]): Promise<R> {
  const rows = (await plain(sql, await q(sql, text), params)) as unknown as R[];
  return rows[0];
}

/** Which server session answered a statement: postgres.js puts its BackendKeyData on the rows. */
type Backend = string;
function backendOf(rows: unknown): Backend | undefined {
  const state = (rows as { state?: { pid?: unknown; secret?: unknown } } | null)?.state;
  return typeof state?.pid === "number" ? `${state.pid}:${String(state.secret)}` : undefined;
}

/**
 * How many references compat's calls took on each month, per server session: month_lock's own
 * holds do not stack and the original's raw advisory locks did. Counted per session, not per
 * `sql`: a reserved `sql` of a { max: 1 } sql runs on that sql's one session, and a hold
 * taken through it is the same hold.
 */
const refsByBackend = new Map<Backend, Map<number, number>>();
/** The session each `sql` last ran on. */
const lastBackend = new WeakMap<object, Backend>();
/** The tail of each `sql`'s calls that change references: they run one after another. */
const tails = new WeakMap<object, Promise<unknown>>();

function refsOf(backend: Backend): Map<number, number> {
  let refs = refsByBackend.get(backend);
  if (refs === undefined) refsByBackend.set(backend, (refs = new Map()));
  return refs;
}

function setRefs(backend: Backend, key: number, count: number): void {
  const refs = refsOf(backend);
  if (count > 0) refs.set(key, count);
  else {
    refs.delete(key);
    if (refs.size === 0) refsByBackend.delete(backend);
  }
}

function inTurn<T>(sql: PostgresSqlLike, op: () => Promise<T>): Promise<T> {
  const run = (tails.get(sql) ?? Promise.resolve()).then(op);
  tails.set(sql, run.catch(() => undefined));
  return run;
}

/** The session `sql` runs on: the last one seen, or asked (one statement) the first time. */
async function backendFor(sql: PostgresSqlLike): Promise<Backend | undefined> {
  const seen = lastBackend.get(sql);
  if (seen !== undefined) return seen;
  const backend = backendOf(await plain(sql, SQL.BACKEND_PID));
  if (backend !== undefined) lastBackend.set(sql, backend);
  return backend;
}

/** Whether each `sql` reaches the server directly (asked once, before its first hold or release). */
const direct = new WeakMap<object, boolean>();

/**
 * Refuses an `sql` behind a pooler before anything is held: a session hold there stays on a
 * pooled server connection that other clients then use, and the next statement may run on
 * another server session. Recognised when the server's `pg_backend_pid()` is not the pid the
 * connection's BackendKeyData named (a pooler hands out keys of its own); a postgres.js that
 * puts no BackendKeyData on its rows cannot be checked and is taken as direct.
 */
async function requireDirect(s: PostgresSqlLike): Promise<void> {
  let ok = direct.get(s);
  if (ok === undefined) {
    const rows = (await plain(s, SQL.BACKEND_PID)) as unknown as Array<{ pid: number }> & { state?: { pid?: unknown } };
    const keyPid = rows.state?.pid;
    ok = typeof keyPid !== "number" || keyPid === rows[0].pid;
    direct.set(s, ok);
    const backend = backendOf(rows);
    if (ok && backend !== undefined && !lastBackend.has(s)) lastBackend.set(s, backend);
  }
  if (!ok) {
    throw new UnsupportedDriverError(
      "month-lock/compat (session scope)",
      "a direct connection to the server, and this sql goes through a pooler (the server's pg_backend_pid() is not the connection's BackendKeyData pid): use the main entry's withMonthLock (transaction scope) from \"month-lock\"",
    );
  }
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
  return inTurn(s, async () => {
    await requireDirect(s);
    const tryText = await q(s, SQL.COMPAT_TRY);
    const { ok, rows } = await acquireInOwnTransaction(s, tryText, year, month, timeout);
    const backend = backendOf(rows);
    if (backend !== undefined) {
      lastBackend.set(s, backend);
      // The server says whether the session held the month before: a count left from a
      // session that was lost (postgres.js reconnects silently) starts again.
      const before = (rows as Array<{ held: boolean }>)[0].held ? (refsOf(backend).get(key) ?? 0) : 0;
      setRefs(backend, key, ok ? before + 1 : before);
    }
    return ok;
  });
}

interface Acquired {
  ok: boolean;
  /** The wait's rows (postgres.js puts the answering session's BackendKeyData on them). */
  rows: unknown;
}

/**
 * Outside a transaction: four statements sent together (one round trip), BEGIN, SET LOCAL
 * statement_timeout = 0, the wait (bounded by month_lock_try's own timeout; `held` = this
 * session held the month already, nothing taken then), COMMIT. One transaction, so that no
 * transaction pooler can hand the server connection to someone else between them (PgBouncer
 * before 1.21 does between pipelined statements outside one), and the caller's
 * statement_timeout comes back with the COMMIT. The session lock outlives the COMMIT; a wait
 * that fails takes nothing, and the COMMIT of the failed transaction rolls it back.
 */
async function acquireInOwnTransaction(
  s: PostgresSqlLike, tryText: string, year: number, month: number, timeout: number,
): Promise<Acquired> {
  const [, off, wait, commit] = await Promise.allSettled([
    plain(s, "BEGIN"),
    plain(s, SQL.COMPAT_TIMEOUT_OFF_LOCAL),
    plain(s, tryText, [year, month, timeout]),
    plain(s, "COMMIT"),
  ]);
  if (wait.status === "rejected" && commit.status === "rejected") await closeBlock(s);
  if (wait.status === "rejected") {
    // The SET's error (e.g. a statement_timeout shorter than it) is the cause of the wait's
    // 25P02; otherwise the wait's own.
    throw off.status === "rejected" ? off.reason : wait.reason;
  }
  const { ok } = (wait.value as unknown as Array<{ ok: boolean }>)[0];
  if (commit.status === "rejected") {
    // The COMMIT itself failed (a cancel or a statement_timeout that hit it): whether the
    // hold outlived the transaction is the server's to say, once the block is closed.
    await closeBlock(s);
    if (ok) {
      const rows = await plain(s, await q(s, SQL.HELD_BY_ME), [year, month]);
      if (!(rows as unknown as Array<{ held: boolean }>)[0].held) throw commit.reason;
    }
  }
  return { ok, rows: wait.value };
}

/**
 * Ends a transaction block whose COMMIT failed and may still be open (ROLLBACK outside one
 * only warns). Tried a few times: a statement_timeout shorter than a statement can cancel it.
 */
async function closeBlock(s: PostgresSqlLike): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await Promise.resolve(plain(s, "ROLLBACK")).then(() => true, () => false)) return;
  }
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
  return inTurn(s, async () => {
    await requireDirect(s);
    const backend = await backendFor(s);
    const count = backend === undefined ? 0 : (refsOf(backend).get(key) ?? 0);
    if (count > 1) {
      // Another reference stays: only ask whether the session still holds the month.
      const rows = await plain(s, await q(s, SQL.HELD_BY_ME), [year, month]);
      const { held } = (rows as Array<{ held: boolean }>)[0];
      setRefs(backend!, key, held ? count - 1 : 0);
      return held;
    }
    if (backend !== undefined) setRefs(backend, key, 0);
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
  return [...((await plain(s, await q(s, SQL.ALL_ROWS))) as unknown as AdvisoryLockRow[])];
}
