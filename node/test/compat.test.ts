// The original application's eight cases, through `month-lock/compat` and postgres.js with the
// application's settings ({ max: 1, fetch_types: false, prepare: false }), as an ordinary role.
// The pack test runs this file unchanged against the package installed from its tarball.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  acquireMonthLock, getAllAdvisoryLocks, InvalidArgumentError, isMonthLocked, MonthBusyError,
  releaseMonthLock, withMonthLock,
} from "month-lock/compat";
import { createTestDb, lockRows, ORIGINAL_SETTINGS, postgresSql, waitUntil, type TestDb } from "./support/env.js";

let db: TestDb;
const sqls: postgres.Sql[] = [];
const notices: unknown[] = [];

/** A connection as the original application made it. */
function connect(): postgres.Sql {
  const sql = postgresSql(db.app, { ...ORIGINAL_SETTINGS, onnotice: (n) => notices.push(n) });
  sqls.push(sql);
  return sql;
}

async function pidOf(sql: postgres.Sql): Promise<number> {
  return (await sql`SELECT pg_backend_pid() AS pid`)[0].pid;
}

before(async () => {
  db = await createTestDb("compat");
});
after(async () => {
  await Promise.all(sqls.map((s) => s.end({ timeout: 1 })));
  await db.drop();
});

describe("month-lock/compat: the original application's cases", () => {
  test("1. acquireMonthLock takes a free month and others see it", async () => {
    const a = connect();
    const other = connect();
    assert.equal(await acquireMonthLock(a, 2024, 1, 1000), true);
    assert.equal(await isMonthLocked(other, 2024, 1), true);
    assert.deepEqual(await lockRows(db.observer), [`2024-01 exclusive granted ${await pidOf(a)}`]);
    assert.equal(await releaseMonthLock(a, 2024, 1), true);
  });

  test("2. a second acquire of a held month resolves false at its timeout, not sooner, holding nothing", async () => {
    const a = connect();
    const b = connect();
    assert.equal(await acquireMonthLock(a, 2024, 2, 0), true);
    const start = performance.now();
    const got = await acquireMonthLock(b, 2024, 2, 200);
    const elapsed = performance.now() - start;
    assert.equal(got, false);
    assert.ok(elapsed >= 195, `returned after ${elapsed} ms`);
    assert.ok(elapsed < 5000, `returned after ${elapsed} ms`);
    assert.deepEqual(await lockRows(db.observer), [`2024-02 exclusive granted ${await pidOf(a)}`]);
    assert.equal(await acquireMonthLock(b, 2024, 2, 0), false, "one attempt, still busy");
    assert.equal(await releaseMonthLock(a, 2024, 2), true);
  });

  test("3. releaseMonthLock frees the month for the next worker", async () => {
    const a = connect();
    const b = connect();
    assert.equal(await acquireMonthLock(a, 2024, 3, 0), true);
    assert.equal(await acquireMonthLock(b, 2024, 3, 0), false);
    assert.equal(await releaseMonthLock(a, 2024, 3), true);
    assert.equal(await acquireMonthLock(b, 2024, 3, 0), true);
    assert.equal(await acquireMonthLock(a, 2024, 3, 0), false);
    assert.equal(await releaseMonthLock(b, 2024, 3), true);
  });

  test("4. releaseMonthLock of a month not held resolves false, quietly", async () => {
    const a = connect();
    const b = connect();
    const before = notices.length;
    assert.equal(await releaseMonthLock(a, 2024, 4), false, "never taken");
    assert.equal(await acquireMonthLock(b, 2024, 4, 0), true);
    assert.equal(await releaseMonthLock(a, 2024, 4), false, "held by another connection");
    assert.equal(await isMonthLocked(a, 2024, 4), true, "and it stays held");
    assert.equal(await releaseMonthLock(b, 2024, 4), true);
    assert.equal(await releaseMonthLock(b, 2024, 4), false, "released twice");
    assert.equal(notices.length, before, "no WARNING or NOTICE");
  });

  test("5. withMonthLock releases on success and on error", async () => {
    const a = connect();
    const other = connect();
    const result = await withMonthLock(a, 2024, 5, async () => {
      assert.equal(await isMonthLocked(other, 2024, 5), true, "held while fn runs");
      assert.equal(await acquireMonthLock(other, 2024, 5, 0), false);
      return "done";
    }, 1000);
    assert.equal(result, "done");
    assert.equal(await isMonthLocked(other, 2024, 5), false, "released after success");

    const failure = new Error("backfill failed");
    await assert.rejects(
      withMonthLock(a, 2024, 5, async () => {
        assert.equal(await isMonthLocked(other, 2024, 5), true);
        throw failure;
      }),
      (e) => e === failure,
    );
    assert.equal(await isMonthLocked(other, 2024, 5), false, "released after an error");

    // A busy month: fn does not run, a typed rejection, nothing held by the caller.
    assert.equal(await acquireMonthLock(other, 2024, 5, 0), true);
    let ran = false;
    await assert.rejects(withMonthLock(a, 2024, 5, () => (ran = true), 100), MonthBusyError);
    assert.equal(ran, false);
    assert.deepEqual(await lockRows(db.observer), [`2024-05 exclusive granted ${await pidOf(other)}`]);
    assert.equal(await releaseMonthLock(other, 2024, 5), true);
  });

  test("6. isMonthLocked before, during and after a hold", async () => {
    const a = connect();
    const observer = connect();
    assert.equal(await isMonthLocked(observer, 2024, 6), false, "before");
    assert.equal(await acquireMonthLock(a, 2024, 6, 0), true);
    assert.equal(await isMonthLocked(observer, 2024, 6), true, "during");
    assert.equal(await isMonthLocked(a, 2024, 6), true, "during, the holder asking");
    assert.equal(await isMonthLocked(observer, 2024, 7), false, "another month");
    assert.equal(await releaseMonthLock(a, 2024, 6), true);
    assert.equal(await isMonthLocked(observer, 2024, 6), false, "after");
  });

  test("7. getAllAdvisoryLocks lists the holder and the waiter", async () => {
    const a = connect();
    const b = connect();
    const observer = connect();
    assert.deepEqual(await getAllAdvisoryLocks(observer), []);
    assert.equal(await acquireMonthLock(a, 2024, 8, 0), true);
    const [pidA, pidB] = [await pidOf(a), await pidOf(b)];
    const waiter = acquireMonthLock(b, 2024, 8, 10_000);
    await waitUntil("b waits", async () => (await getAllAdvisoryLocks(observer)).length === 2);
    const rows = await getAllAdvisoryLocks(observer);
    assert.deepEqual(
      rows.map((r) => [r.year, r.month, r.mode, r.granted, r.pid]),
      [[2024, 8, "exclusive", true, pidA], [2024, 8, "exclusive", false, pidB]],
    );
    assert.equal(rows[0].waiting_since, null);
    assert.ok(rows[1].waiting_since instanceof Date);
    assert.equal(rows[0].usename, db.app.user);
    assert.equal(await releaseMonthLock(a, 2024, 8), true);
    assert.equal(await waiter, true, "the waiter is handed the month");
    assert.deepEqual((await getAllAdvisoryLocks(observer)).map((r) => [r.pid, r.granted]), [[pidB, true]]);
    assert.equal(await releaseMonthLock(b, 2024, 8), true);
  });

  test("8. a bad month or year is a rejected promise with a clear message, nothing held, nothing sent", async () => {
    const sent: string[] = [];
    const a = postgresSql(db.app, { ...ORIGINAL_SETTINGS, debug: (_c, text) => sent.push(text) });
    sqls.push(a);
    const bad: Array<[unknown, unknown, RegExp]> = [
      [2024, 13, /month must be an integer 1\.\.12, got 13/],
      [2024, 0, /month must be an integer 1\.\.12, got 0/],
      [2024, 2.5, /month must be/],
      [0, 3, /year must be an integer 1\.\.9999, got 0/],
      [10000, 3, /year must be/],
      ["2024", 3, /year must be an integer 1\.\.9999, got "2024"/],
      [2024, null, /month must be/],
      [Number.NaN, 3, /year must be/],
    ];
    for (const [year, month, message] of bad) {
      const y = year as number;
      const m = month as number;
      for (const call of [
        () => acquireMonthLock(a, y, m, 100),
        () => releaseMonthLock(a, y, m),
        () => isMonthLocked(a, y, m),
        () => withMonthLock(a, y, m, () => assert.fail("fn must not run"), 100),
      ]) {
        await assert.rejects(call(), (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message));
      }
    }
    await assert.rejects(acquireMonthLock(a, 2024, 3, -1), /timeoutMs must be an integer/);
    assert.deepEqual(sent, [], "rejected before any query");
    assert.deepEqual(await getAllAdvisoryLocks(a), [], "nothing held");
    assert.deepEqual(await lockRows(db.observer), []);
  });
});
