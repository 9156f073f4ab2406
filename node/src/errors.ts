// The errors this package raises itself. Server errors are passed on as the driver reports
// them (pg's DatabaseError, postgres.js's PostgresError), with their SQLSTATE in `code`.
import type { YearMonth } from "./month.js";

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

function label(months: readonly YearMonth[]): string {
  return months.map((m) => `${String(m.year).padStart(4, "0")}-${String(m.month).padStart(2, "0")}`).join(", ");
}

/**
 * A bad argument (month, year, timeout, list of months), reported before any query is sent.
 * `code` is the SQLSTATE the server uses for the same mistake (22023 invalid_parameter_value).
 */
export class InvalidArgumentError extends RangeError {
  readonly code = "22023";
  constructor(
    readonly argument: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`month-lock: ${argument} must be ${expected}, got ${describe(value)}`);
    this.name = "InvalidArgumentError";
  }
}

/**
 * The month (or set of months) was not had: busy at the timeout, none of the months free
 * (claim-any), or not all of them free in time (all-or-nothing). Nothing is held.
 * `code` is 55P03 (lock_not_available), the SQLSTATE of the server's raising forms.
 */
export class MonthBusyError extends Error {
  readonly code = "55P03";
  constructor(
    readonly months: readonly YearMonth[],
    readonly timeoutMs: number | undefined,
    readonly reason: "timeout" | "none-free" | "not-all-free",
  ) {
    super(
      reason === "none-free"
        ? `month-lock: none of ${label(months)} is free`
        : reason === "not-all-free"
          ? `month-lock: ${label(months)} not all free within ${timeoutMs} ms`
          : `month-lock: ${label(months)} is busy (waited ${timeoutMs} ms)`,
    );
    this.name = "MonthBusyError";
  }
}

/** A session-scope lock was asked for a month this session already holds (locks do not stack). */
export class MonthAlreadyHeldError extends Error {
  readonly code = "55000";
  constructor(readonly month: YearMonth) {
    super(`month-lock: this session already holds ${label([month])}; month locks do not stack`);
    this.name = "MonthAlreadyHeldError";
  }
}

/**
 * A connection (a pg.Client or a pool's client) was given to a call while another call of this
 * package still runs a transaction on it. Nothing was sent. `code` is 55006 (object_in_use).
 * Give each concurrent call a connection of its own (a pg.Pool takes one per call).
 */
export class ConnectionInUseError extends Error {
  readonly code = "55006";
  constructor() {
    super("month-lock: this connection is running another month-lock transaction; give each concurrent call its own connection (e.g. a pg.Pool)");
    this.name = "ConnectionInUseError";
  }
}

/**
 * The reason of a session lock's `lost` signal: the session is gone (`"session-gone"`), no
 * longer holds the month (`"not-held"`), or did not answer a heartbeat within
 * `heartbeatTimeoutMs` (`"unresponsive"`: whether it still holds the month cannot be proven,
 * so the work must stop; the connection has been closed).
 */
export class MonthLockLostError extends Error {
  constructor(
    readonly month: YearMonth,
    readonly why: "session-gone" | "not-held" | "unresponsive",
    options?: { cause?: unknown },
  ) {
    super(
      why === "not-held"
        ? `month-lock: the session no longer holds ${label([month])}`
        : why === "unresponsive"
          ? `month-lock: the session holding ${label([month])} did not answer a heartbeat in time; the hold cannot be proven`
          : `month-lock: the session holding ${label([month])} is gone`,
      options,
    );
    this.name = "MonthLockLostError";
  }
}

/**
 * A feature this package does not offer with the driver given. `code` is 0A000
 * (feature_not_supported). Nothing was sent. Raised for AbortSignals and session scope with
 * postgres.js 3, whose cancel can hit a later statement or leave the connection unusable and
 * which crashes the process on a heartbeat after its backend was terminated (README: "Drivers"),
 * and by `month-lock/compat` for an `sql` behind a pooler (its session holds would stay on a
 * pooled server connection).
 */
export class UnsupportedDriverError extends TypeError {
  readonly code = "0A000";
  constructor(readonly feature: string, readonly requirement: string) {
    super(`month-lock: ${feature} needs ${requirement}`);
    this.name = "UnsupportedDriverError";
  }
}

/**
 * A connection that is inside a transaction was given where this package needs one outside:
 * a postgres.js transaction's `sql` (from `sql.begin`) for `withMonthLock` / `withAnyMonth` /
 * `withAllMonths` (which begin and commit their own), for session scope, or for
 * `month-lock/compat` on an `sql` with `max` > 1 (the hold would stay on a pooled connection
 * when the transaction ends); a pg client in a transaction block for transaction scope.
 * Nothing was sent. `code` is 25001 (active_sql_transaction).
 */
export class InTransactionError extends TypeError {
  readonly code = "25001";
  constructor(what: string) {
    super(what.startsWith("month-lock") ? what : `month-lock: ${what}`);
    this.name = "InTransactionError";
  }
}

/**
 * node-postgres: the server answered the COMMIT of `withMonthLock`'s transaction with ROLLBACK,
 * because a statement in it failed and the error was caught inside `fn`. Nothing was
 * committed; the month was released. `code` is 25P02 (in_failed_sql_transaction). postgres.js
 * reports the same case with its own error (code `TRANSACTION_ROLLED_BACK`).
 */
export class TransactionRolledBackError extends Error {
  readonly code = "25P02";
  constructor() {
    super("month-lock: the transaction was rolled back instead of committed (a statement in it failed and its error was caught)");
    this.name = "TransactionRolledBackError";
  }
}
