// month-lock/compat behind a real PgBouncer 1.18 in transaction mode is refused: a session hold
// there stays on a pooled server connection that other clients use, and two compat users
// overlapped on the same month. acquireMonthLock, releaseMonthLock and withMonthLock reject with
// UnsupportedDriverError before anything is held (fn does not run), the sql still answers, the
// questions (isMonthLocked) still work, and the main entry's withMonthLock, which the error
// points to, holds the month through the same pooler.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { acquireMonthLock, isMonthLocked, releaseMonthLock, UnsupportedDriverError, withMonthLock } from "month-lock/compat";
import { withMonthLock as withMonthLockMain } from "month-lock";
import { createTestDb, lockRows, ORIGINAL_SETTINGS, postgresSql, type TestDb } from "./support/env.js";
import { startPgBouncer, type PgBouncer } from "./support/pgbouncer.js";

let db: TestDb;
let bouncer: PgBouncer;
before(async () => {
  db = await createTestDb("compat_pgbouncer");
  bouncer = await startPgBouncer(db.app, 2);
});
after(async () => {
  await bouncer?.stop();
  await db.drop();
});

function refused(error: unknown): boolean {
  assert.ok(error instanceof UnsupportedDriverError, String(error));
  assert.equal(error.code, "0A000");
  assert.match(error.message, /pooler/);
  assert.match(error.message, /withMonthLock/);
  return true;
}

describe("compat through PgBouncer in transaction mode", () => {
  test("acquire / release / withMonthLock are refused before anything is held; the main entry works there", async () => {
    const sql = postgresSql(bouncer.target, { ...ORIGINAL_SETTINGS });
    try {
      await assert.rejects(acquireMonthLock(sql, 2074, 1, 1000), refused);
      assert.deepEqual(await lockRows(db.observer), [], "nothing held after a refused acquire");
      assert.equal(await isMonthLocked(sql, 2074, 1), false);
      await assert.rejects(releaseMonthLock(sql, 2074, 1), refused);
      let ran = false;
      await assert.rejects(withMonthLock(sql, 2074, 2, async () => (ran = true), 1000), refused);
      assert.equal(ran, false, "fn did not run");
      assert.deepEqual(await lockRows(db.observer), []);
      assert.equal((await sql`SELECT 1 AS x`)[0].x, 1, "the sql still answers");
      // A reserved sql of the same pooled sql: refused too.
      const reserved = await sql.reserve();
      try {
        await assert.rejects(acquireMonthLock(reserved, 2074, 3, 0), refused);
      } finally {
        reserved.release();
      }
      assert.equal(await withMonthLockMain(sql, { year: 2074, month: 1 }, async () => "done"), "done");
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
