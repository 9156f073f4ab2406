// Session scope on a dedicated connection: `await using`, release on error, busy and re-entry
// errors, an aborted wait, and the lost-lock signal when the holder's backend is terminated.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import {
  heldByMe, isMonthLocked, lockMonthSession, withMonthLock, MonthAlreadyHeldError, MonthBusyError, MonthLockLostError,
  withMonthSessionLock,
} from "month-lock";
import { createTestDb, lockRows, pgClient, pgPool, postgresSql, waitUntil, waitUntilWaiting, waitingPids, type TestDb } from "./support/env.js";
import { q } from "./support/drivers.js";

let db: TestDb;
let other: pg.Client;

before(async () => {
  db = await createTestDb("session");
  other = await pgClient(db.app, { application_name: "other" });
});
after(async () => {
  await other.end();
  await db.drop();
});

/** The kinds of dedicated connection session scope takes. */
const CONNECTIONS: Array<{ name: string; open(): Promise<{ conn: any; close(): Promise<void> }> }> = [
  {
    name: "pg Client",
    async open() {
      const c = await pgClient(db.app);
      c.on("error", () => undefined); // as an application must: a terminated backend emits errors
      return { conn: c, close: () => c.end() };
    },
  },
  {
    name: "pg Pool's client",
    async open() {
      const pool = pgPool(db.app, { max: 1 });
      const c = await pool.connect();
      c.on("error", () => undefined); // a terminated backend must not crash the test process
      return { conn: c, close: async () => (c.release(true), await pool.end()) };
    },
  },
  {
    name: "postgres.js sql.reserve()",
    async open() {
      const sql = postgresSql(db.app, { max: 2 });
      const reserved = await sql.reserve();
      return { conn: reserved, close: async () => (reserved.release(), await sql.end({ timeout: 1 })) };
    },
  },
  {
    name: "postgres.js { max: 1 }",
    async open() {
      const sql = postgresSql(db.app, { max: 1 });
      return { conn: sql, close: () => sql.end({ timeout: 1 }) };
    },
  },
];

const HEARTBEAT_MS = 200;

CONNECTIONS.forEach((kind, i) => {
  const year = 2050 + i;
  describe(`session scope on a ${kind.name}`, () => {
    test("`await using` holds the month to the end of the block, across transactions, and releases it", async () => {
      const { conn, close } = await kind.open();
      try {
        {
          await using lock = await lockMonthSession(conn, `${year}-01`, { timeoutMs: 1000 });
          assert.equal(lock.mode, "exclusive");
          assert.equal(typeof lock.token, "bigint");
          assert.equal(lock.lost.aborted, false);
          assert.equal(await heldByMe(conn, `${year}-01`), true);
          assert.equal(await isMonthLocked(other, `${year}-01`), true);
          await q(conn, "BEGIN");
          await q(conn, "ROLLBACK");
          assert.equal(await isMonthLocked(other, `${year}-01`), true, "a ROLLBACK does not release a session lock");
        }
        assert.equal(await isMonthLocked(other, `${year}-01`), false, "released at the end of the block");
      } finally {
        await close();
      }
    });

    test("withMonthSessionLock releases on success and on error; busy, re-entry and abort take nothing", async () => {
      const { conn, close } = await kind.open();
      try {
        assert.equal(await withMonthSessionLock(conn, `${year}-02`, async (lock) => {
          assert.equal(await isMonthLocked(other, lock.month), true);
          return "ok";
        }), "ok");
        assert.equal(await isMonthLocked(other, `${year}-02`), false);
        const failure = new Error("work failed");
        await assert.rejects(withMonthSessionLock(conn, `${year}-02`, () => { throw failure; }), (e) => e === failure);
        assert.equal(await isMonthLocked(other, `${year}-02`), false, "released after an error");

        // Busy: a typed error at the timeout.
        assert.equal((await other.query(`SELECT month_lock_try(${year}, 3) AS ok`)).rows[0].ok, true);
        await assert.rejects(lockMonthSession(conn, `${year}-03`, { timeoutMs: 100 }), MonthBusyError);
        assert.equal(await heldByMe(conn, `${year}-03`), false);

        // An aborted wait: the signal's reason, nothing held, the connection fine.
        const controller = new AbortController();
        const waiting = lockMonthSession(conn, `${year}-03`, { signal: controller.signal });
        let pids: number[] = [];
        await waitUntil("queued", async () => (pids = await waitingPids(db.observer)).length === 1);
        await waitUntilWaiting(db.observer, pids[0]);
        controller.abort();
        await assert.rejects(waiting, { name: "AbortError" });
        assert.equal(await heldByMe(conn, `${year}-03`), false);
        assert.equal((await other.query(`SELECT month_lock_release(${year}, 3) AS ok`)).rows[0].ok, true);
        assert.deepEqual(await lockRows(db.observer), []);

        // Re-entry does not stack: refused, and the first hold stays.
        const first = await lockMonthSession(conn, `${year}-04`, { shared: true });
        assert.equal(first.token, null);
        await assert.rejects(lockMonthSession(conn, `${year}-04`), MonthAlreadyHeldError);
        assert.equal(await heldByMe(conn, `${year}-04`), true);
        assert.equal(await first.release(), true);
        assert.equal(await first.release(), false, "only the first release releases");
        assert.equal(await heldByMe(conn, `${year}-04`), false);
      } finally {
        await close();
      }
    });

    test(`terminating the holder's backend fires lost within the heartbeat bound (${HEARTBEAT_MS} ms)`, async (t) => {
      const { conn, close } = await kind.open();
      try {
        const lock = await lockMonthSession(conn, `${year}-05`, { heartbeatMs: HEARTBEAT_MS });
        const pid = (await q(conn, "SELECT pg_backend_pid() AS pid"))[0].pid;
        const fired = new Promise<number>((resolve) => lock.lost.addEventListener("abort", () => resolve(performance.now())));
        await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 1.5)); // heartbeats so far found it held
        assert.equal(lock.lost.aborted, false);
        const start = performance.now();
        assert.equal((await db.observer.query("SELECT pg_terminate_backend($1) AS ok", [pid])).rows[0].ok, true);
        const elapsed = (await fired) - start;
        t.diagnostic(`lost fired ${elapsed.toFixed(1)} ms after pg_terminate_backend`);
        assert.ok(elapsed < 2 * HEARTBEAT_MS + 500, `lost fired after ${elapsed} ms`);
        assert.ok(lock.lost.reason instanceof MonthLockLostError, String(lock.lost.reason));
        assert.equal(await lock.release(), false, "nothing to release: the session is gone");
        await lock[Symbol.asyncDispose]();
        // The server sends the FATAL before its backend exits and drops its locks: soon, not at once.
        await waitUntil("the server released it with the session", async () => !(await isMonthLocked(other, `${year}-05`)), 5000);
      } finally {
        await close().catch(() => undefined);
      }
    });
  });
});

describe("session scope refuses a pool", () => {
  test("a pg.Pool and a postgres.js sql with max > 1 are TypeErrors, nothing sent", async () => {
    const pool = pgPool(db.app);
    const sql = postgresSql(db.app, { max: 4 });
    try {
      await assert.rejects(lockMonthSession(pool, "2024-03"), TypeError);
      await assert.rejects(lockMonthSession(sql, "2024-03"), TypeError);
      assert.equal(pool.totalCount, 0, "no connection was opened");
    } finally {
      await pool.end();
      await sql.end();
    }
  });

  test("transaction scope on sql.reserve(): a TypeError that names the reserved sql, nothing sent", async () => {
    const sent: string[] = [];
    const sql = postgresSql(db.app, { max: 2, debug: (_c, text) => sent.push(text) });
    try {
      const reserved = await sql.reserve();
      try {
        await assert.rejects(withMonthLock(reserved, "2059-03", () => 1), (e) =>
          e instanceof TypeError && /reserved postgres\.js sql \(sql\.reserve\(\)\)/.test(e.message) && /lockMonthSession/.test(e.message));
        assert.deepEqual(sent, []);
      } finally {
        reserved.release();
      }
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test("heartbeats meeting a failed transaction block on the connection do not fire lost", async () => {
    const c = await pgClient(db.app);
    try {
      const lock = await lockMonthSession(c, "2059-02", { heartbeatMs: 20 });
      await c.query("BEGIN");
      await assert.rejects(c.query("SELECT 1 / 0"), { code: "22012" });
      await new Promise((r) => setTimeout(r, 200)); // heartbeats answered 25P02 meanwhile
      assert.equal(lock.lost.aborted, false);
      await c.query("ROLLBACK");
      assert.equal(await heldByMe(c, "2059-02"), true);
      assert.equal(await lock.release(), true);
    } finally {
      await c.end();
    }
  });

  test("a release behind the lock's back fires lost as not-held", async () => {
    const sql = postgresSql(db.app, { max: 1 });
    try {
      const lock = await lockMonthSession(sql, "2059-01", { heartbeatMs: 50 });
      await sql`SELECT month_lock_release_all()`;
      await new Promise((resolve) => lock.lost.addEventListener("abort", resolve));
      assert.equal((lock.lost.reason as MonthLockLostError).why, "not-held");
    } finally {
      await sql.end();
    }
  });
});
