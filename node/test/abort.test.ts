// An AbortSignal stops a wait in the server's queue and leaves nothing held, with each driver
// (pg: pg_cancel_backend from a second connection; postgres.js: the protocol's cancel).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { withAllMonths, withMonthLock } from "month-lock";
import { createTestDb, lockRows, pgClient, waitUntil, waitUntilWaiting, waitingPids, type TestDb } from "./support/env.js";
import { DRIVERS, q } from "./support/drivers.js";

let db: TestDb;
let other: pg.Client;

before(async () => {
  db = await createTestDb("abort");
  other = await pgClient(db.app, { application_name: "other" });
});
after(async () => {
  await other.end();
  await db.drop();
});

const ROUNDS = 200;

async function take(year: number, month: number) {
  assert.equal((await other.query("SELECT month_lock_try($1, $2) AS ok", [year, month])).rows[0].ok, true);
}
async function release(year: number, month: number) {
  assert.equal((await other.query("SELECT month_lock_release($1, $2) AS ok", [year, month])).rows[0].ok, true);
}
async function theWaiter(): Promise<number> {
  let pids: number[] = [];
  await waitUntil("a waiter is queued", async () => (pids = await waitingPids(db.observer)).length === 1);
  return pids[0];
}

DRIVERS.forEach((driver, i) => {
  const year = 2040 + i;

  describe(`AbortSignal with ${driver.name}`, () => {
    let h: { db: any; close(): Promise<void> };
    before(async () => (h = await driver.open(db.app)));
    after(async () => h.close());

    test("an abort while queued rejects with the signal's reason; the waiter leaves the queue holding nothing", async () => {
      await take(year, 1);
      const controller = new AbortController();
      let ran = false;
      const waiting = withMonthLock(h.db, `${year}-01`, () => (ran = true), { signal: controller.signal });
      const pid = await theWaiter();
      await waitUntilWaiting(db.observer, pid);
      const reason = new Error("shutting down");
      const start = performance.now();
      controller.abort(reason);
      await assert.rejects(waiting, (e) => e === reason);
      const elapsed = performance.now() - start;
      assert.ok(elapsed < 2000, `the abort took ${elapsed} ms`);
      assert.deepEqual(await lockRows(db.observer), [`${year}-01 exclusive granted ${(await q(other, "SELECT pg_backend_pid() AS p"))[0].p}`],
        "the aborted waiter is neither queued nor holding");
      await release(year, 1);
      assert.deepEqual(await lockRows(db.observer), [], "nobody was handed the month");
      assert.equal(ran, false);
      assert.deepEqual(await q(h.db, "SELECT 1 AS one"), [{ one: 1 }], "the connection works afterwards");
    });

    test("an abort of an all-or-nothing wait leaves none of the months held", async () => {
      await take(year, 3);
      const controller = new AbortController();
      const waiting = withAllMonths(h.db, [`${year}-02`, `${year}-03`], () => assert.fail("ran"), { signal: controller.signal });
      await waitUntilWaiting(db.observer, await theWaiter());
      controller.abort();
      await assert.rejects(waiting, { name: "AbortError" });
      await release(year, 3);
      assert.deepEqual(await lockRows(db.observer), []);
    });

    test("an already aborted signal sends nothing and rejects with its reason", async () => {
      const reason = new Error("too late");
      await assert.rejects(withMonthLock(h.db, `${year}-04`, () => assert.fail("ran"), { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    });

    test(`aborts racing the hand-over leave nothing held and no stray cancel (${ROUNDS} rounds)`, async (t) => {
      let granted = 0;
      let aborted = 0;
      for (let round = 0; round < ROUNDS; round++) {
        await take(year, 5);
        const controller = new AbortController();
        let ran = false;
        const waiting = withMonthLock(h.db, `${year}-05`, async (tx) => {
          ran = true;
          // The work's own statement must never be hit by the cancel meant for the wait.
          return (await q(tx, "SELECT pg_sleep(0.001), 7 AS seven"))[0].seven;
        }, { signal: controller.signal });
        const settled = waiting.then((v) => v, (e: unknown) => e); // handled from the start
        await waitUntilWaiting(db.observer, await theWaiter());
        const delay = round % 4; // 0..3 ms between the release and the abort
        await Promise.all([
          release(year, 5),
          new Promise<void>((r) => setTimeout(() => (controller.abort(), r()), delay)),
        ]);
        const outcome = await settled;
        if (outcome === 7) granted++;
        else {
          assert.equal((outcome as Error).name, "AbortError", String(outcome));
          aborted++;
          assert.equal(ran, false, "an aborted hold did not run fn");
        }
        assert.deepEqual(await lockRows(db.observer), [], `round ${round}: nothing held or queued`);
        assert.deepEqual(await q(h.db, "SELECT 1 AS one"), [{ one: 1 }], `round ${round}: no stray cancel`);
      }
      assert.equal(granted + aborted, ROUNDS);
      t.diagnostic(`${granted} rounds got the month before the abort, ${aborted} were aborted`);
      assert.ok(granted > 0 && aborted > 0, "both sides of the race happened");
    });
  });
});
