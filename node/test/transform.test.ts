// postgres.js with a `transform` (postgres.camel, a value transform): the package's own
// statements read their rows as the server sends them, so every field is there.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import postgres from "postgres";
import { listMonthLocks, lockMonthSession, withAllMonths, withAnyMonth, withMonthLock, heldByMe, isMonthLocked } from "month-lock";
import { acquireMonthLock, getAllAdvisoryLocks, releaseMonthLock } from "month-lock/compat";
import { createTestDb, lockRows, postgresSql, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("transform")));
after(async () => db.drop());

const TRANSFORMS: Array<[string, any]> = [
  ["postgres.camel", postgres.camel],
  ["postgres.toCamel", postgres.toCamel],
  ["a value transform to strings", { value: { from: (v: unknown) => (v === null ? v : String(v)) } }],
];

describe("postgres.js transform", () => {
  TRANSFORMS.forEach(([name, transform], i) => {
    test(`${name}: every API answers in full`, async () => {
      const sql = postgresSql(db.app, { max: 2, transform });
      const one = postgresSql(db.app, { max: 1, transform });
      const year = 2075 + i;
      try {
        const token = await withMonthLock(sql, { year, month: 1 }, (_tx, hold) => hold.token);
        assert.equal(typeof token, "bigint");
        assert.deepEqual(await withAnyMonth(sql, [{ year, month: 2 }], (_tx, hold) => hold.month), { year, month: 2 });
        assert.equal(await withAllMonths(sql, [{ year, month: 2 }, { year, month: 3 }], (_tx, hold) => hold.tokens.length), 2);
        const rows = await withMonthLock(sql, { year, month: 4 }, async () => listMonthLocks(sql));
        const row = rows.find((r) => r.year === year && r.month === 4);
        assert.ok(row, JSON.stringify(rows));
        assert.equal(row.monthStart, `${year}-04-01`);
        assert.equal(row.granted, true);
        assert.equal(typeof row.pid, "number");
        assert.ok(row.backendStart instanceof Date);
        assert.equal(typeof row.usename, "string");
        assert.equal(await isMonthLocked(sql, { year, month: 4 }), false);
        const lock = await lockMonthSession(one, { year, month: 5 }, { heartbeatMs: 20 });
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(lock.lost.aborted, false, String(lock.lost.reason));
        assert.equal(await heldByMe(one, { year, month: 5 }), true);
        assert.equal(await lock.release(), true);
        assert.equal(await acquireMonthLock(one, year, 6, 100), true);
        const all = await getAllAdvisoryLocks(one);
        assert.equal(all[0].month_start instanceof Date || typeof all[0].month_start === "string", true, JSON.stringify(all[0]));
        assert.equal(all[0].year, year);
        assert.equal(await releaseMonthLock(one, year, 6), true);
        assert.deepEqual(await lockRows(db.observer), []);
      } finally {
        await sql.end({ timeout: 1 });
        await one.end({ timeout: 1 });
      }
    });
  });
});
