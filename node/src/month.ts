// Months as callers write them, checked before any query is sent.
import { InvalidArgumentError } from "./errors.js";

/** A calendar month: `year` 1..9999, `month` 1..12. */
export interface YearMonth {
  readonly year: number;
  readonly month: number;
}

/**
 * What the API accepts as a month: `"2024-03"`, `{ year: 2024, month: 3 }`, or a `Date` (its
 * UTC year and month, so the answer does not depend on the machine's time zone).
 */
export type MonthInput = string | YearMonth | Date;

/** Checks one integer argument; `name` is the argument the error names. */
export function checkYear(value: unknown, name = "year"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 9999) {
    throw new InvalidArgumentError(name, value, "an integer 1..9999");
  }
  return value;
}

export function checkMonthNumber(value: unknown, name = "month"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 12) {
    throw new InvalidArgumentError(name, value, "an integer 1..12");
  }
  return value;
}

/** Parses any accepted form into a frozen `{ year, month }`, or throws `InvalidArgumentError`. */
export function parseMonth(input: MonthInput, name = "month"): YearMonth {
  if (typeof input === "string") {
    const m = /^(\d{4})-(\d{2})$/.exec(input);
    const year = m ? Number(m[1]) : 0;
    const month = m ? Number(m[2]) : 0;
    if (year < 1 || month < 1 || month > 12) {
      throw new InvalidArgumentError(name, input, 'a "YYYY-MM" string such as "2024-03" (year 0001..9999, month 01..12)');
    }
    return Object.freeze({ year, month });
  }
  if (input instanceof Date) {
    const year = input.getUTCFullYear();
    if (Number.isNaN(input.getTime()) || year < 1 || year > 9999) {
      throw new InvalidArgumentError(name, input, "a valid Date in the years 1..9999");
    }
    return Object.freeze({ year, month: input.getUTCMonth() + 1 });
  }
  if (typeof input === "object" && input !== null) {
    return Object.freeze({
      year: checkYear((input as YearMonth).year, `${name}.year`),
      month: checkMonthNumber((input as YearMonth).month, `${name}.month`),
    });
  }
  throw new InvalidArgumentError(name, input, 'a "YYYY-MM" string, { year, month } or a Date');
}

/**
 * A list of months: each checked, duplicates dropped, in ascending order (`"ascending"`) or
 * in the order given (`"given"`, a priority order).
 */
export function parseMonths(inputs: Iterable<MonthInput>, name = "months", order: "ascending" | "given" = "ascending"): YearMonth[] {
  if (inputs === null || typeof inputs !== "object" || !(Symbol.iterator in inputs)) {
    throw new InvalidArgumentError(name, inputs, "an array of months");
  }
  const byKey = new Map<number, YearMonth>();
  let i = 0;
  for (const input of inputs) {
    const ym = parseMonth(input, `${name}[${i++}]`);
    const key = ym.year * 100 + ym.month;
    if (!byKey.has(key)) byKey.set(key, ym);
  }
  if (byKey.size === 0) throw new InvalidArgumentError(name, inputs, "at least one month");
  const entries = [...byKey.entries()];
  if (order === "ascending") entries.sort((a, b) => a[0] - b[0]);
  return entries.map(([, ym]) => ym);
}

/** `"2024-03"`. */
export function formatMonth(ym: YearMonth): string {
  return `${String(ym.year).padStart(4, "0")}-${String(ym.month).padStart(2, "0")}`;
}

/** A `date[]` literal of the months' first days, the same text for every driver. */
export function dateArrayLiteral(months: readonly YearMonth[]): string {
  return `{${months.map((ym) => `${formatMonth(ym)}-01`).join(",")}}`;
}

/** `"2024-03-01"` (a `date` as text) back to a month. */
export function monthOfDate(text: string): YearMonth {
  return Object.freeze({ year: Number(text.slice(0, -6)), month: Number(text.slice(-5, -3)) });
}

/** The largest wait the server takes (`int4` milliseconds). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** `undefined` (wait without limit) or an integer 0..MAX_TIMEOUT_MS (0: one attempt). */
export function checkTimeout(value: unknown, name = "timeoutMs"): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_TIMEOUT_MS) {
    throw new InvalidArgumentError(name, value, `an integer 0..${MAX_TIMEOUT_MS} (milliseconds)`);
  }
  return value;
}
