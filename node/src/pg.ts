// `month-lock/pg`: the API typed for node-postgres. Transaction scope takes a Pool (a client is
// checked out for the transaction), a Client or a pool's client, idle (not inside a transaction); session scope takes a Client or a pool's client.
import type { Client, Pool, PoolClient } from "pg";
import * as inspect from "./inspect.js";
import type { MonthInput } from "./month.js";
import * as session from "./session.js";
import * as xact from "./xact.js";

export * from "./index.js";

/** What `fn` gets as its transaction: the client the transaction runs on. */
export type PgTransaction = PoolClient | Client;

export const withMonthLock: <R>(
  db: Pool | Client | PoolClient,
  month: MonthInput,
  fn: (tx: PgTransaction, hold: xact.MonthHold) => R | Promise<R>,
  options?: xact.HoldOptions,
) => Promise<R> = xact.withMonthLock;

export const withAnyMonth: <R>(
  db: Pool | Client | PoolClient,
  months: Iterable<MonthInput>,
  fn: (tx: PgTransaction, hold: xact.MonthHold) => R | Promise<R>,
) => Promise<R> = xact.withAnyMonth;

export const withAllMonths: <R>(
  db: Pool | Client | PoolClient,
  months: Iterable<MonthInput>,
  fn: (tx: PgTransaction, hold: xact.MonthsHold) => R | Promise<R>,
  options?: { timeoutMs?: number; signal?: AbortSignal },
) => Promise<R> = xact.withAllMonths;

export const lockMonthSession: (
  conn: Client | PoolClient,
  month: MonthInput,
  options?: session.SessionLockOptions,
) => Promise<session.MonthSessionLock> = session.lockMonthSession;

export const withMonthSessionLock: <R>(
  conn: Client | PoolClient,
  month: MonthInput,
  fn: (lock: session.MonthSessionLock) => R | Promise<R>,
  options?: session.SessionLockOptions,
) => Promise<R> = session.withMonthSessionLock;

export const listMonthLocks: (db: Pool | Client | PoolClient) => Promise<inspect.MonthLockInfo[]> = inspect.listMonthLocks;
export const isMonthLocked: (db: Pool | Client | PoolClient, month: MonthInput) => Promise<boolean> = inspect.isMonthLocked;
export const heldByMe: (db: Client | PoolClient, month: MonthInput) => Promise<boolean> = inspect.heldByMe;
