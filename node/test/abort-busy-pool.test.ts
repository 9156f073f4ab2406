// Aborts when the pool is busy: a call still waiting for a pool connection rejects at once (its
// transaction never runs fn, and the connection goes back when it comes), and a wait in the
// server's queue is cancelled without needing a free connection of the pool on a direct
// connection (pg: a connection of its own; postgres.js: its CancelRequest on a socket of its own).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { withMonthLock } from "month-lock";
import { createTestDb, lockRows, pgClient, pgPool, postgresSql, waitUntil, waitUntilWaiting, waitingPids, type TestDb } from "./support/env.js";
import { q } from "./support/drivers.js";

let db: TestDb;
let other: pg.Client;

before(async () => {
  db = await createTestDb("abort_busy");
  other = await pgClient(db.app, { application_name: "other" });
});
after(async () => {
  await other.end();
  await db.drop();
});

function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/** Pools of one connection, so that one call keeps every connection busy. */
const FULL = [
  {
    name: "pg Pool { max: 1 }",
    open() {
      const pool = pgPool(db.app, { max: 1 });
      return { db: pool, idle: () => pool.idleCount === 1 && pool.waitingCount === 0, close: () => pool.end() };
    },
  },
  {
    name: "postgres.js { max: 1 }",
    open() {
      const sql = postgresSql(db.app, { max: 1 });
      return { db: sql, idle: () => true, close: () => sql.end({ timeout: 1 }) };
    },
  },
];

FULL.forEach((kind, i) => {
  const year = 2080 + i;
  describe(`abort with ${kind.name} busy`, () => {
    test("a call waiting for the pool's connection rejects at once with the signal's reason; fn never runs, nothing held", async () => {
      const h = kind.open();
      try {
        const inside = gate();
        let entered = false;
        const first = withMonthLock(h.db, `${year}-01`, async () => ((entered = true), await inside.opened, 1));
        await waitUntil("the first call holds the pool's connection", async () => entered);
        const controller = new AbortController();
        let ran = false;
        const queued = withMonthLock(h.db, `${year}-02`, () => (ran = true), { signal: controller.signal });
        const reason = new Error("client went away");
        const start = performance.now();
        controller.abort(reason);
        await assert.rejects(queued, (e) => e === reason);
        const elapsed = performance.now() - start;
        assert.ok(elapsed < 500, `rejected after ${elapsed} ms while the pool was still busy`);
        assert.equal(entered, true);
        inside.open();
        assert.equal(await first, 1);
        assert.equal(ran, false);
        await waitUntil("the pool's connection is back", async () => h.idle());
        assert.deepEqual(await lockRows(db.observer), []);
        assert.equal(await withMonthLock(h.db, `${year}-02`, () => 2), 2, "the pool works afterwards");
      } finally {
        await h.close();
      }
    });
  });
});

describe("a wait in the server's queue is aborted while every connection of the pool is busy", () => {
  test("pg Pool { max: 1 }: the cancel uses a connection of its own", async () => {
    const pool = pgPool(db.app, { max: 1 });
    try {
      assert.equal((await other.query("SELECT month_lock_try(2083, 1) AS ok")).rows[0].ok, true);
      const controller = new AbortController();
      const waiting = withMonthLock(pool, "2083-01", () => assert.fail("ran"), { signal: controller.signal });
      await waitUntilWaiting(db.observer, (await waitUntilOneWaiter()));
      const start = performance.now();
      controller.abort();
      await assert.rejects(waiting, { name: "AbortError" });
      assert.ok(performance.now() - start < 2000);
      assert.equal((await other.query("SELECT month_lock_release(2083, 1) AS ok")).rows[0].ok, true);
      assert.deepEqual(await lockRows(db.observer), []);
    } finally {
      await pool.end();
    }
  });

  test("postgres.js { max: 2 } on a direct connection: the other connection busy, the abort still takes effect at once", async () => {
    const sql = postgresSql(db.app, { max: 2 });
    try {
      assert.equal((await other.query("SELECT month_lock_try(2083, 2) AS ok")).rows[0].ok, true);
      const controller = new AbortController();
      const waiting = withMonthLock(sql, "2083-02", () => assert.fail("ran"), { signal: controller.signal });
      await waitUntilWaiting(db.observer, await waitUntilOneWaiter());
      let sleepDone = false;
      const sleeping = sql`SELECT pg_sleep(3)`.then(() => (sleepDone = true));
      await waitUntil("the other connection sleeps", async () => (await db.observer.query(
        "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)' AND state = 'active'")).rowCount === 1);
      const start = performance.now();
      controller.abort();
      await assert.rejects(waiting, { name: "AbortError" });
      const elapsed = performance.now() - start;
      assert.equal(sleepDone, false, "rejected while the other connection was still busy");
      assert.ok(elapsed < 2000, `${elapsed} ms`);
      assert.equal((await other.query("SELECT month_lock_release(2083, 2) AS ok")).rows[0].ok, true);
      assert.deepEqual(await lockRows(db.observer), []);
      await sleeping;
      assert.deepEqual(await q(sql, "SELECT 1 AS one"), [{ one: 1 }]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

async function waitUntilOneWaiter(): Promise<number> {
  let pids: number[] = [];
  await waitUntil("a waiter is queued", async () => (pids = await waitingPids(db.observer)).length === 1);
  return pids[0];
}
