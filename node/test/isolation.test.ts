// Transaction scope under a role whose default_transaction_isolation is REPEATABLE READ or
// SERIALIZABLE: the work must see what the previous holder committed. Each hold reads the
// month's largest n and inserts n + 1; with mutual exclusion and fresh reads every n is unique.
// (Begun at the session's default, the acquiring statement would take the snapshot before the
// wait, and contended holds would read stale rows: duplicates.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { withAllMonths, withAnyMonth, withMonthLock } from "month-lock";
import { createTestDb, type TestDb } from "./support/env.js";
import { DRIVERS, q } from "./support/drivers.js";

let db: TestDb;
before(async () => {
  db = await createTestDb("isolation");
  await db.observer.query("CREATE TABLE ledger (run text, n int)");
  await db.observer.query(`GRANT ALL ON ledger TO ${db.app.user}`);
});
after(async () => db.drop());

const WORKERS = 4;
const ROUNDS = 25;

const FORMS = {
  withMonthLock: (d: any, body: (tx: any) => Promise<void>) => withMonthLock(d, "2024-03", body, { timeoutMs: 30_000 }),
  "withMonthLock with a signal": (d: any, body: (tx: any) => Promise<void>) =>
    withMonthLock(d, "2024-03", body, { timeoutMs: 30_000, signal: new AbortController().signal }),
  // Claim any never waits: a busy month is retried.
  withAnyMonth: async (d: any, body: (tx: any) => Promise<void>) => {
    for (;;) {
      try {
        return await withAnyMonth(d, ["2024-03"], body);
      } catch (e) {
        if ((e as { code?: string }).code !== "55P03") throw e;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  },
  withAllMonths: (d: any, body: (tx: any) => Promise<void>) => withAllMonths(d, ["2024-03", "2024-04"], body, { timeoutMs: 30_000 }),
};

for (const isolation of ["repeatable read", "serializable"]) {
  describe(`role default ${isolation}`, () => {
    before(async () => db.observer.query(`ALTER ROLE ${db.app.user} SET default_transaction_isolation = '${isolation}'`));
    for (const driver of DRIVERS.filter((d) => d.name !== "pg Client")) {
      for (const [form, hold] of Object.entries(FORMS)) {
        test(`${driver.name}, ${form}: every hold reads the previous holder's row (0 duplicates)`, async () => {
          const { db: d, close } = await driver.open(db.app, { max: WORKERS });
          const run = `${isolation}/${driver.name}/${form}`;
          try {
            assert.equal((await q(d, "SHOW default_transaction_isolation"))[0].default_transaction_isolation, isolation);
            await Promise.all(Array.from({ length: WORKERS }, async () => {
              for (let r = 0; r < ROUNDS; r++) {
                await hold(d, async (tx) => {
                  assert.equal((await q(tx, "SHOW transaction_isolation"))[0].transaction_isolation, "read committed");
                  const [{ m }] = await q(tx, "SELECT coalesce(max(n), 0)::int AS m FROM ledger WHERE run = $1", [run]);
                  await q(tx, "INSERT INTO ledger (run, n) VALUES ($1, $2)", [run, m + 1]);
                });
              }
            }));
          } finally {
            await close();
          }
          const { rows: [s] } = await db.observer.query(
            "SELECT count(*)::int AS holds, count(DISTINCT n)::int AS distinct_n FROM ledger WHERE run = $1", [run]);
          assert.equal(s.holds, WORKERS * ROUNDS);
          assert.equal(s.holds - s.distinct_n, 0, `duplicate reads: ${s.holds - s.distinct_n} of ${s.holds}`);
        });
      }
    }
  });
}
