// month-lock/compat through a real PgBouncer 1.18 in transaction mode: its acquisition's
// statements are one transaction, so the pooler cannot hand the server connection to another
// client between them (before, the three statements sent outside a transaction hung forever
// and wedged the sql). A pool of one server connection keeps the session the same for the
// release; the point here is that acquire and release settle and nothing is left.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { acquireMonthLock, isMonthLocked, releaseMonthLock, withMonthLock } from "month-lock/compat";
import { createTestDb, lockRows, ORIGINAL_SETTINGS, postgresSql, type TestDb } from "./support/env.js";
import { startPgBouncer, type PgBouncer } from "./support/pgbouncer.js";

let db: TestDb;
let bouncer: PgBouncer;
before(async () => {
  db = await createTestDb("compat_pgbouncer");
  bouncer = await startPgBouncer(db.app, 1);
});
after(async () => {
  await bouncer?.stop();
  await db.drop();
});

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms))]);
}

describe("compat through PgBouncer in transaction mode", () => {
  test("acquireMonthLock / releaseMonthLock / withMonthLock settle, the sql still answers, nothing left (20 rounds)", async () => {
    const sql = postgresSql(bouncer.target, { ...ORIGINAL_SETTINGS });
    try {
      for (let round = 0; round < 20; round++) {
        assert.equal(await within(acquireMonthLock(sql, 2074, 1, 1000), 5_000, "acquireMonthLock"), true, `round ${round}`);
        assert.equal(await isMonthLocked(sql, 2074, 1), true);
        assert.equal(await within(releaseMonthLock(sql, 2074, 1), 5_000, "releaseMonthLock"), true, `round ${round}`);
        assert.equal(await within(withMonthLock(sql, 2074, 2, async () => "done", 1000), 5_000, "withMonthLock"), "done");
        assert.equal((await within(Promise.resolve(sql`SELECT 1 AS x`), 5_000, "a plain statement"))[0].x, 1);
      }
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
