// The session lock's heartbeat: it names the extension's functions by their schema (a search_path
// of the work's does not change them), an error of the session that is not its end does not
// fire `lost`, the release is sent whatever the heartbeat saw, and a heartbeat never runs in the
// caller's transaction where the driver can tell (pg) or where the driver queues it behind the
// transaction (postgres.js sql.begin).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { heldByMe, lockMonthSession } from "month-lock";
import { createTestDb, lockRows, pgClient, postgresSql, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("session_heartbeat")));
after(async () => db.drop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HEARTBEAT_MS = 20;
/** Heartbeats run until then. */
const BEATS = HEARTBEAT_MS * 10;

async function heldOnServer(year: number, month: number): Promise<number> {
  return (await db.observer.query("SELECT count(*)::int AS n FROM month_locks WHERE year = $1 AND month = $2 AND granted", [year, month])).rows[0].n;
}

/** Every heartbeat fails with 42501 (no EXECUTE on month_lock_held) while `body` runs. */
async function withHeartbeatFailing<T>(body: () => Promise<T>): Promise<T> {
  const fn = "month_lock_held(pg_catalog.int4, pg_catalog.int4)";
  await db.observer.query(`REVOKE EXECUTE ON FUNCTION ${fn} FROM PUBLIC`);
  try {
    return await body();
  } finally {
    await db.observer.query(`GRANT EXECUTE ON FUNCTION ${fn} TO PUBLIC`);
  }
}

/** Counts the SQLSTATEs of `c`'s failed statements. */
function countFailures(c: pg.Client): Map<string, number> {
  const failed = new Map<string, number>();
  const query = c.query.bind(c) as (...a: unknown[]) => Promise<unknown>;
  (c as unknown as { query: unknown }).query = (...a: unknown[]) => {
    const p = query(...a);
    p.catch((e: { code?: string }) => failed.set(String(e.code), (failed.get(String(e.code)) ?? 0) + 1));
    return p;
  };
  return failed;
}

describe("session lock heartbeat", () => {
  test("a search_path without the extension's schema: no lost, and release() gives the month back", async () => {
    const c = await pgClient(db.app);
    try {
      const lock = await lockMonthSession(c, "2061-01", { heartbeatMs: HEARTBEAT_MS });
      await c.query("SET search_path = pg_catalog");
      await sleep(BEATS);
      assert.equal(lock.lost.aborted, false, String(lock.lost.reason));
      assert.equal(await lock.release(), true);
      assert.equal(await heldOnServer(2061, 1), 0);
    } finally {
      await c.end();
    }
  });

  test("heartbeats answered with an error (42501) do not fire lost; the release is still sent", async () => {
    const c = await pgClient(db.app);
    try {
      const failed = countFailures(c);
      const lock = await lockMonthSession(c, "2061-02", { heartbeatMs: HEARTBEAT_MS });
      await withHeartbeatFailing(() => sleep(BEATS));
      assert.ok(failed.get("42501")! >= 3, `heartbeats failed: ${JSON.stringify([...failed])}`);
      assert.equal(lock.lost.aborted, false, String(lock.lost.reason));
      assert.equal(await heldOnServer(2061, 2), 1);
      assert.equal(await lock.release(), true);
      assert.equal(await heldOnServer(2061, 2), 0, "nothing left held");
    } finally {
      await c.end();
    }
  });

  test("pg: no heartbeat runs inside the caller's transaction (a failing one would abort it)", async () => {
    const c = await pgClient(db.app);
    try {
      const failed = countFailures(c);
      const lock = await lockMonthSession(c, "2061-03", { heartbeatMs: HEARTBEAT_MS });
      await withHeartbeatFailing(async () => {
        await sleep(BEATS);
        assert.ok((failed.get("42501") ?? 0) >= 3, "heartbeats outside the transaction fail (the check below can fail)");
        await c.query("BEGIN");
        await c.query("SELECT 1");
        await sleep(BEATS);
        assert.equal((await c.query("SELECT 2 AS x")).rows[0].x, 2, "the transaction is not aborted");
        const done = await c.query("COMMIT");
        assert.equal(done.command, "COMMIT");
      });
      assert.equal(lock.lost.aborted, false);
      assert.equal(await lock.release(), true);
    } finally {
      await c.end();
    }
  });

  test("postgres.js { max: 1 }: heartbeats wait for sql.begin's transaction to end", async () => {
    const sql = postgresSql(db.app, { max: 1 });
    try {
      const lock = await lockMonthSession(sql, "2061-04", { heartbeatMs: HEARTBEAT_MS });
      await withHeartbeatFailing(async () => {
        const x = await sql.begin(async (tx) => {
          await tx`SELECT 1`;
          await sleep(BEATS);
          return (await tx`SELECT 2 AS x`)[0].x;
        });
        assert.equal(x, 2);
      });
      assert.equal(lock.lost.aborted, false);
      assert.equal(await heldByMe(sql, "2061-04"), true);
      assert.equal(await lock.release(), true);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("release() after `await using` (asyncDispose) released the month answers false", async () => {
    const c: pg.Client = await pgClient(db.app);
    try {
      const lock = await lockMonthSession(c, "2061-05", { heartbeatMs: 0 });
      await lock[Symbol.asyncDispose]();
      assert.equal(await heldOnServer(2061, 5), 0);
      assert.equal(await lock.release(), false);
      const again = await lockMonthSession(c, "2061-05", { heartbeatMs: 0 });
      assert.equal(await again.release(), true);
      assert.equal(await again.release(), false, "a second release answers false");
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await c.end();
    }
  });
});

describe("session lock heartbeat with pg before 8.17 (no getTransactionStatus)", () => {
  test("no heartbeat is sent at all, so none runs inside (and aborts) the caller's transactions", async () => {
    const c = await pgClient(db.app);
    try {
      // pg 8.11-8.16 as the package sees it: the method is missing.
      (c as unknown as { getTransactionStatus?: unknown }).getTransactionStatus = undefined;
      const failed = countFailures(c);
      const lock = await lockMonthSession(c, "2061-06", { heartbeatMs: 5 });
      let aborted = 0;
      await withHeartbeatFailing(async () => {
        for (let round = 0; round < 40; round++) {
          await c.query("BEGIN");
          await sleep(15); // the application's work between statements
          try {
            await c.query("SELECT 1");
            const done = await c.query("COMMIT");
            if (done.command !== "COMMIT") aborted++;
          } catch {
            aborted++;
            await c.query("ROLLBACK");
          }
        }
      });
      assert.equal(aborted, 0, "caller transactions aborted by a heartbeat");
      assert.equal(failed.get("42501") ?? 0, 0, "no heartbeat was sent");
      assert.equal(lock.lost.aborted, false);
      assert.equal(await lock.release(), true);
    } finally {
      await c.end();
    }
  });
});
