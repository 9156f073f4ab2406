// `month-lock`: the driver is told apart at run time (pg Pool/Client or postgres.js sql).
// `month-lock/pg` and `month-lock/postgres` export the same functions typed for one driver.
export { withMonthLock, withAnyMonth, withAllMonths } from "./xact.js";
export type { HoldOptions, MonthHold, MonthsHold } from "./xact.js";
export { lockMonthSession, withMonthSessionLock } from "./session.js";
export type { MonthSessionLock, SessionLockOptions } from "./session.js";
export { listMonthLocks, isMonthLocked, heldByMe } from "./inspect.js";
export type { MonthLockInfo } from "./inspect.js";
export { parseMonth, formatMonth, MAX_TIMEOUT_MS } from "./month.js";
export type { MonthInput, YearMonth } from "./month.js";
export { InvalidArgumentError, MonthBusyError, MonthAlreadyHeldError, MonthLockLostError, ConnectionInUseError, UnsupportedDriverError, InTransactionError, TransactionRolledBackError } from "./errors.js";
