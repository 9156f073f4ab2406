// postgres.js 4.0.0 is postgres.js 4 (it has no `sql.batch`, which came with 4.2, and was taken
// for postgres.js 3): session scope and an AbortSignal are accepted, the session lock holds and
// releases, an abort of a queued wait leaves nothing held.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import postgres40 from "postgres40";
import { heldByMe, lockMonthSession, withMonthLock } from "month-lock";
import { createTestDb, lockRows, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("postgres40")));
after(async () => db.drop());

function sql40(extra: Record<string, unknown> = {}) {
  const t = db.app;
  return postgres40({ host: t.host, port: t.port, user: t.user, pass: t.password, database: t.database, onnotice: () => undefined, ...extra });
}

describe("postgres.js 4.0.0", () => {
  test("has no sql.batch, and session scope and a signal work", async () => {
    const sql = sql40({ max: 2 });
    try {
      assert.equal(typeof (sql as unknown as { batch?: unknown }).batch, "undefined", "the 4.0.0 this test is about");
      const reserved = await sql.reserve();
      try {
        const lock = await lockMonthSession(reserved, "2063-01", { heartbeatMs: 20 });
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(lock.lost.aborted, false);
        assert.equal(await heldByMe(reserved, "2063-01"), true);
        assert.equal(await lock.release(), true);
      } finally {
        reserved.release();
      }
      const signal = new AbortController().signal;
      assert.equal(await withMonthLock(sql, "2063-02", async () => "done", { signal }), "done");
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
