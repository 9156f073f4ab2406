// `month-lock/postgres`: the API typed for postgres.js. Transaction scope takes an `sql` (the
// work runs in `sql.begin`); session scope takes `await sql.reserve()` or an sql with { max: 1 }.
import type { ReservedSql, Sql, TransactionSql } from "postgres";
import * as inspect from "./inspect.js";
import type { MonthInput } from "./month.js";
import * as session from "./session.js";
import * as xact from "./xact.js";

export * from "./index.js";

// Generic over the sql's custom types, so an `sql` made with `types: {...}` is accepted as is.
type AnySql = Sql<any>;

export const withMonthLock: <R, S extends AnySql = AnySql>(
  sql: S,
  month: MonthInput,
  fn: (tx: TransactionSql<any>, hold: xact.MonthHold) => R | Promise<R>,
  options?: xact.HoldOptions,
) => Promise<R> = xact.withMonthLock;

export const withAnyMonth: <R>(
  sql: AnySql,
  months: Iterable<MonthInput>,
  fn: (tx: TransactionSql<any>, hold: xact.MonthHold) => R | Promise<R>,
) => Promise<R> = xact.withAnyMonth;

export const withAllMonths: <R>(
  sql: AnySql,
  months: Iterable<MonthInput>,
  fn: (tx: TransactionSql<any>, hold: xact.MonthsHold) => R | Promise<R>,
  options?: { timeoutMs?: number; signal?: AbortSignal },
) => Promise<R> = xact.withAllMonths;

export const lockMonthSession: (
  sql: ReservedSql<any> | AnySql,
  month: MonthInput,
  options?: session.SessionLockOptions,
) => Promise<session.MonthSessionLock> = session.lockMonthSession;

export const withMonthSessionLock: <R>(
  sql: ReservedSql<any> | AnySql,
  month: MonthInput,
  fn: (lock: session.MonthSessionLock) => R | Promise<R>,
  options?: session.SessionLockOptions,
) => Promise<R> = session.withMonthSessionLock;

export const listMonthLocks: (sql: AnySql | TransactionSql<any> | ReservedSql<any>) => Promise<inspect.MonthLockInfo[]> = inspect.listMonthLocks;
export const isMonthLocked: (sql: AnySql | TransactionSql<any> | ReservedSql<any>, month: MonthInput) => Promise<boolean> = inspect.isMonthLocked;
export const heldByMe: (sql: TransactionSql<any> | ReservedSql<any> | AnySql, month: MonthInput) => Promise<boolean> = inspect.heldByMe;
