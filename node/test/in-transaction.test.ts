// A connection inside a transaction where the package needs one outside: refused with a typed
// error (InTransactionError, 25001) before anything is sent. And pg's COMMIT answered with
// ROLLBACK (an error swallowed in fn) is a typed error too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { acquireMonthLock, releaseMonthLock } from "month-lock/compat";
import {
  InTransactionError, lockMonthSession, TransactionRolledBackError, withAllMonths, withAnyMonth, withMonthLock,
} from "month-lock";
import { createTestDb, lockRows, pgClient, pgPool, postgresSql, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("in_transaction")));
after(async () => db.drop());

/** Every statement a postgres.js sql sends, as debug sees it. */
function counted(max: number): { sql: any; sent: string[] } {
  const sent: string[] = [];
  const sql = postgresSql(db.app, { max, debug: (_c: unknown, text: string) => void sent.push(text) } as any);
  return { sql, sent };
}

function isInTransaction(e: unknown): boolean {
  return e instanceof InTransactionError && e.code === "25001";
}

describe("a transaction's sql (postgres.js)", () => {
  test("session scope on it is refused before anything is sent", async () => {
    const { sql, sent } = counted(2);
    try {
      await sql.begin(async (tx: any) => {
        const before = sent.length;
        await assert.rejects(lockMonthSession(tx, "2072-01"), isInTransaction);
        assert.equal(sent.length, before, "nothing sent");
      });
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("withMonthLock / withAnyMonth / withAllMonths on it are refused before anything is sent", async () => {
    const { sql, sent } = counted(3);
    try {
      await withMonthLock(sql, "2072-02", async (tx) => {
        const before = sent.length;
        await assert.rejects(withMonthLock(tx, "2072-03", () => "inner"), isInTransaction);
        await assert.rejects(withAnyMonth(tx, ["2072-03"], () => "inner"), isInTransaction);
        await assert.rejects(withAllMonths(tx, ["2072-03"], () => "inner"), isInTransaction);
        assert.equal(sent.length, before, "nothing sent");
      });
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("compat on a transaction's sql is refused before anything is sent (max: 4 and max: 1)", async () => {
    const { sql, sent } = counted(4);
    const one = postgresSql(db.app, { max: 1 });
    try {
      await sql.begin(async (tx: any) => {
        const before = sent.length;
        await assert.rejects(acquireMonthLock(tx, 2072, 4, 100), isInTransaction);
        await assert.rejects(releaseMonthLock(tx, 2072, 4), isInTransaction);
        assert.equal(sent.length, before, "nothing sent");
      });
      assert.deepEqual(await lockRows(db.observer), []);
      await one.begin(async (tx: any) => {
        await assert.rejects(acquireMonthLock(tx, 2072, 5, 100), isInTransaction);
      });
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await sql.end({ timeout: 1 });
      await one.end({ timeout: 1 });
    }
  });
});

describe("pg", () => {
  test("withMonthLock on a client inside a transaction block is refused before anything is sent", async () => {
    const c = await pgClient(db.app);
    try {
      await c.query("BEGIN");
      await assert.rejects(withMonthLock(c, "2072-06", () => "x"), isInTransaction);
      assert.equal((await c.query("SELECT 1 AS x")).rows[0].x, 1, "the caller's transaction goes on");
      assert.equal((await c.query("COMMIT")).command, "COMMIT");
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await c.end();
    }
  });

  test("an error swallowed in fn: the COMMIT answered ROLLBACK rejects with TransactionRolledBackError (25P02)", async () => {
    const pool = pgPool(db.app, { max: 2 });
    try {
      await assert.rejects(
        withMonthLock(pool, "2072-07", async (tx: any) => {
          await tx.query("SELECT 1/0").catch(() => undefined);
          return "done";
        }),
        (e: unknown) => e instanceof TransactionRolledBackError && e.code === "25P02",
      );
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await pool.end();
    }
  });
});
