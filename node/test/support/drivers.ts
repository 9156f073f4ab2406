// The three kinds of `db` the main entry takes, so that every test runs with each of them.
import type { Target } from "./env.js";
import { pgClient, pgPool, postgresSql } from "./env.js";

export interface DriverCase {
  name: string;
  /** A db for transaction scope, and how to close it. */
  open(t: Target, extra?: Record<string, unknown>): Promise<{ db: any; close(): Promise<void> }>;
}

export const DRIVERS: DriverCase[] = [
  {
    name: "pg Pool",
    async open(t, extra = {}) {
      const pool = pgPool(t, extra);
      return { db: pool, close: () => pool.end() };
    },
  },
  {
    name: "pg Client",
    async open(t, extra = {}) {
      const client = await pgClient(t, extra);
      return { db: client, close: () => client.end() };
    },
  },
  {
    name: "postgres.js",
    async open(t, extra = {}) {
      // postgres.js takes server settings under `connection`.
      const { application_name, ...rest } = extra as { application_name?: string };
      const sql = postgresSql(t, { max: 4, ...(application_name ? { connection: { application_name } } : {}), ...rest });
      return { db: sql, close: () => sql.end({ timeout: 1 }) };
    },
  },
];

/** Runs a statement on a transaction or connection of either driver; the rows. */
export async function q(tx: any, text: string, params: unknown[] = []): Promise<any[]> {
  if (typeof tx === "function") return [...(await tx.unsafe(text, params))];
  return (await tx.query(text, params)).rows;
}
