// A Cloudflare Worker behind Hyperdrive: the month is held in transaction scope, inside the one
// transaction that does the work, so it never depends on a pooled session.
import pg from "pg";
import postgres from "postgres";
import { MonthBusyError, withMonthLock } from "month-lock/pg";
import * as forPostgresJs from "month-lock/postgres";

interface Env {
  /** A Hyperdrive binding whose configuration has caching disabled (used for lock traffic). */
  HYPERDRIVE_LOCKS: { connectionString: string };
}

interface Ctx {
  waitUntil(promise: Promise<unknown>): void;
}

export default {
  async fetch(request: Request, env: Env, ctx: Ctx): Promise<Response> {
    const month = new URL(request.url).searchParams.get("month") ?? "2024-03";
    // One client per request, as Hyperdrive recommends; the pooling is Hyperdrive's.
    const client = new pg.Client({ connectionString: env.HYPERDRIVE_LOCKS.connectionString });
    await client.connect();
    try {
      const rows = await withMonthLock(client, month, async (tx, hold) => {
        // Runs in the transaction that holds the month; COMMIT releases it.
        const result = await tx.query(
          "UPDATE facts SET rebuilt_at = now(), fence = $2 WHERE month = $1::date",
          [`${month}-01`, hold.token?.toString()],
        );
        return result.rowCount ?? 0;
      }, { timeoutMs: 5_000, signal: request.signal });
      return Response.json({ month, rows });
    } catch (error) {
      if (error instanceof MonthBusyError) return new Response("month busy, retry later", { status: 409 });
      throw error;
    } finally {
      ctx.waitUntil(client.end());
    }
  },
};

/** The same with postgres.js: keep `prepare` at its default (true) on Hyperdrive. */
export async function rebuildWithPostgresJs(env: Env, month: string): Promise<number> {
  const sql = postgres(env.HYPERDRIVE_LOCKS.connectionString, { max: 5, fetch_types: false });
  try {
    return await forPostgresJs.withMonthLock(sql, month, async (tx) => {
      const result = await tx`UPDATE facts SET rebuilt_at = now() WHERE month = ${`${month}-01`}::date`;
      return result.count;
    }, { timeoutMs: 5_000 });
  } finally {
    await sql.end();
  }
}
