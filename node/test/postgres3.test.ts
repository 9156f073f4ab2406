// postgres.js 3: plain holds work (compat's calls, holds without a signal); an AbortSignal and
// session scope are refused with UnsupportedDriverError before anything is sent, since
// postgres.js 3's cancel can hit the connection's next statement or leave a { max: 1 }
// connection unusable, and a heartbeat on its reserved connection after the backend was
// terminated crashes the process (README: "Drivers").
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import postgres3 from "postgres3";
import { lockMonthSession, UnsupportedDriverError, withAllMonths, withMonthLock, withMonthSessionLock } from "month-lock";
import { acquireMonthLock, releaseMonthLock, withMonthLock as compatWithMonthLock } from "month-lock/compat";
import { createTestDb, lockRows, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("postgres3")));
after(async () => db.drop());

function sql3(extra: Record<string, unknown> = {}) {
  const t = db.app;
  const sent: string[] = [];
  const sql = postgres3({
    host: t.host, port: t.port, user: t.user, pass: t.password, database: t.database,
    onnotice: () => undefined, debug: (_c: number, text: string) => sent.push(text), ...extra,
  });
  return { sql, sent };
}

describe("postgres.js 3", () => {
  test("an AbortSignal and session scope: UnsupportedDriverError (0A000), nothing sent", async () => {
    const { sql, sent } = sql3({ max: 1, fetch_types: false, prepare: false });
    try {
      const signal = new AbortController().signal;
      const refused = (e: unknown) => e instanceof UnsupportedDriverError && e.code === "0A000" && /postgres\.js 4/.test(e.message);
      await assert.rejects(withMonthLock(sql, "2062-01", () => 1, { signal }), refused);
      await assert.rejects(withAllMonths(sql, ["2062-01"], () => 1, { signal }), refused);
      await assert.rejects(lockMonthSession(sql, "2062-01"), refused);
      await assert.rejects(withMonthSessionLock(sql, "2062-01", () => 1), refused);
      await sql`SELECT 1`; // postgres.js 3: reserve() before the first query never resolves
      sent.length = 0;
      const reserved = await sql.reserve();
      try {
        await assert.rejects(lockMonthSession(reserved, "2062-01"), refused);
      } finally {
        reserved.release();
      }
      assert.deepEqual(sent, [], "nothing sent");
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("plain use works: withMonthLock without a signal, compat's calls with the original settings", async () => {
    const { sql } = sql3({ max: 1, fetch_types: false, prepare: false });
    try {
      assert.equal(await withMonthLock(sql, "2062-02", (_tx, hold) => typeof hold.token, { timeoutMs: 1000 }), "bigint");
      assert.equal(await acquireMonthLock(sql, 2062, 3, 0), true);
      assert.equal(await compatWithMonthLock(sql, 2062, 3, async () => "stacked"), "stacked");
      assert.equal(await releaseMonthLock(sql, 2062, 3), true);
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
