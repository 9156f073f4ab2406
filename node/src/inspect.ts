// Questions about month locks; none of them takes or waits for anything.
import { driverOf } from "./driver/detect.js";
import { parseMonth, type MonthInput } from "./month.js";
import * as SQL from "./sql.js";

/** One row of the `month_locks` view: a holder or a waiter of a month. */
export interface MonthLockInfo {
  year: number;
  month: number;
  /** The month's first day, `"2024-03-01"`. */
  monthStart: string;
  mode: "exclusive" | "shared";
  granted: boolean;
  pid: number;
  /** When a waiter started waiting; null for a holder. */
  waitingSince: Date | null;
  applicationName: string | null;
  usename: string | null;
  /** Null for another role's session unless the reader may see it (as in pg_stat_activity). */
  clientAddr: string | null;
  backendStart: Date | null;
}

interface ViewRow {
  year: number; month: number; month_start: string; mode: "exclusive" | "shared"; granted: boolean;
  pid: number; waiting_since: Date | null; application_name: string | null; usename: string | null;
  client_addr: string | null; backend_start: Date | null;
}

/** Every holder and waiter of a month lock in the database: by month, holders first, then waiters in arrival order. */
export async function listMonthLocks(db: unknown): Promise<MonthLockInfo[]> {
  const { rows } = await driverOf(db).any.run<ViewRow & Record<string, unknown>>(SQL.LIST, []);
  return rows.map((r) => ({
    year: r.year,
    month: r.month,
    monthStart: r.month_start,
    mode: r.mode,
    granted: r.granted,
    pid: r.pid,
    waitingSince: r.waiting_since,
    applicationName: r.application_name,
    usename: r.usename,
    clientAddr: r.client_addr,
    backendStart: r.backend_start,
  }));
}

/** Whether any session in the database holds the month (either mode, either scope). */
export async function isMonthLocked(db: unknown, month: MonthInput): Promise<boolean> {
  const ym = parseMonth(month);
  const { rows } = await driverOf(db).any.run<{ locked: boolean }>(SQL.IS_LOCKED, [ym.year, ym.month]);
  return rows[0].locked;
}

/**
 * Whether the session that runs the question holds the month: pass the transaction or the
 * dedicated connection that holds it (through a pool this asks whichever connection is free).
 */
export async function heldByMe(db: unknown, month: MonthInput): Promise<boolean> {
  const ym = parseMonth(month);
  const { rows } = await driverOf(db).any.run<{ held: boolean }>(SQL.HELD_BY_ME, [ym.year, ym.month]);
  return rows[0].held;
}
