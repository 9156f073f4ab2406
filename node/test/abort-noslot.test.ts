// pg: an abort's cancel goes through a second connection. When that connection is refused
// (the role's CONNECTION LIMIT reached: 53300), it is tried again until the statement ends, so
// the abort takes effect once a slot frees.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { withMonthLock } from "month-lock";
import { createTestDb, lockRows, pgConfig, waitUntilWaiting, backendPid, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => {
  db = await createTestDb("abort_noslot");
  await db.observer.query(`ALTER ROLE ${db.app.user} CONNECTION LIMIT 2`);
});
after(async () => db.drop());

async function connect(): Promise<pg.Client> {
  const c = new pg.Client(pgConfig(db.app));
  c.on("error", () => undefined);
  await c.connect();
  return c;
}

describe("pg abort without a free connection slot", () => {
  test("the cancel connection is retried: the abort takes effect once a slot frees (5 rounds)", async () => {
    for (let round = 0; round < 5; round++) {
      await db.observer.query("SELECT month_lock(2073, 1)");
      const waiter = await connect();
      const other = await connect(); // the role's last slot
      try {
        const pid = await backendPid(waiter);
        const ac = new AbortController();
        const outcome = withMonthLock(waiter, "2073-01", () => "fn ran", { signal: ac.signal }).then(
          (v) => `resolved ${v}`, (e: unknown) => (e === ac.signal.reason ? "aborted" : `rejected ${String(e)}`));
        await waitUntilWaiting(db.observer, pid);
        ac.abort(new Error("abort"));
        await new Promise((r) => setTimeout(r, 300)); // the first cancel connection is refused meanwhile
        await other.end();
        const settled = await Promise.race([outcome, new Promise((r) => setTimeout(() => r("still waiting 5 s after the slot freed"), 5_000))]);
        assert.equal(settled, "aborted", `round ${round}`);
      } finally {
        await db.observer.query("SELECT month_lock_release(2073, 1)");
        await waiter.end();
        await other.end().catch(() => undefined);
      }
      assert.deepEqual(await lockRows(db.observer), [], `round ${round}`);
    }
  });
});
