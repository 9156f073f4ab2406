// One pg.Client (or a pool's client) given to two transaction-scope calls at once: the second is
// refused with ConnectionInUseError before it sends anything, instead of running its statements
// inside the first call's transaction.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { ConnectionInUseError, withAllMonths, withAnyMonth, withMonthLock } from "month-lock";
import { createTestDb, lockRows, pgClient, pgPool, waitUntil, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("client_in_use")));
after(async () => db.drop());

/** Records every statement sent through the client's `query`. */
function counting(client: pg.Client | pg.PoolClient): string[] {
  const sent: string[] = [];
  const query = client.query.bind(client) as (...a: unknown[]) => unknown;
  (client as unknown as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
    sent.push(typeof text === "string" ? text : String(text));
    return query(text, ...rest);
  };
  return sent;
}

function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

const KINDS: Array<{ name: string; open(): Promise<{ client: pg.Client | pg.PoolClient; close(): Promise<void> }> }> = [
  {
    name: "pg Client",
    async open() {
      const client = await pgClient(db.app);
      return { client, close: () => client.end() };
    },
  },
  {
    name: "pg Pool's client",
    async open() {
      const pool = pgPool(db.app, { max: 1 });
      const client = await pool.connect();
      return { client, close: async () => (client.release(), await pool.end()) };
    },
  },
];

KINDS.forEach((kind, i) => {
  const year = 2050 + i;
  describe(`one ${kind.name}, two calls at once`, () => {
    test("the second call is refused with ConnectionInUseError and sends nothing; the first is unharmed", async () => {
      const { client, close } = await kind.open();
      try {
        const sent = counting(client);
        const inside = gate();
        let entered = false;
        const first = withMonthLock(client, `${year}-01`, async (tx: pg.Client) => {
          entered = true;
          await inside.opened;
          return (await tx.query("SELECT 1 AS one")).rows[0].one;
        });
        await waitUntil("the first call holds the month", async () => entered);
        const before = sent.length;
        for (const call of [
          () => withMonthLock(client, `${year}-02`, () => assert.fail("ran")),
          () => withMonthLock(client, `${year}-01`, () => assert.fail("ran"), { timeoutMs: 0 }),
          () => withAnyMonth(client, [`${year}-03`], () => assert.fail("ran")),
          () => withAllMonths(client, [`${year}-04`], () => assert.fail("ran")),
        ]) {
          await assert.rejects(call(), (e: unknown) => e instanceof ConnectionInUseError && e.code === "55006");
        }
        assert.equal(sent.length, before, `nothing sent: ${sent.slice(before).join(" | ")}`);
        inside.open();
        assert.equal(await first, 1);
        assert.deepEqual(sent.slice(-2), ["SELECT 1 AS one", "COMMIT"], "the first call's work and COMMIT, nothing in between");
        assert.deepEqual(await lockRows(db.observer), []);
        // Free again once the first call has ended.
        assert.equal(await withMonthLock(client, `${year}-02`, () => 2), 2);
      } finally {
        await close();
      }
    });

    test("a call nested in the first call's fn is refused too (it would commit the outer transaction)", async () => {
      const { client, close } = await kind.open();
      try {
        const result = await withMonthLock(client, `${year}-05`, async () => {
          await assert.rejects(withMonthLock(client, `${year}-06`, () => assert.fail("ran")), ConnectionInUseError);
          assert.equal((await client.query("SELECT month_lock_held($1, 5) AS held", [year])).rows[0].held, true);
          return "outer";
        });
        assert.equal(result, "outer");
        assert.deepEqual(await lockRows(db.observer), []);
      } finally {
        await close();
      }
    });

    test("a call whose fn failed frees the client for the next call", async () => {
      const { client, close } = await kind.open();
      try {
        await assert.rejects(withMonthLock(client, `${year}-07`, () => Promise.reject(new Error("x"))), /x/);
        assert.equal(await withMonthLock(client, `${year}-07`, () => 7), 7);
      } finally {
        await close();
      }
    });
  });
});
