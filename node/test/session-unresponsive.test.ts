// A session lock whose link stalls (no FIN or RST reaches the client) while the server ends the
// holder and another session takes the month: `lost` fires with why "unresponsive" within the
// heartbeat bound, the connection is closed, and release() settles at once with false. And no
// false loss: a statement of the caller's that runs longer than the heartbeat timeout on the
// same connection does not fire `lost` (pg: no beat is sent while it runs; postgres.js: the
// beat's deadline counts from when the server starts on it).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { lockMonthSession, MonthLockLostError } from "month-lock";
import { createTestDb, pgConfig, postgresSql, waitUntil, type TestDb } from "./support/env.js";
import { startStallingProxy } from "./support/proxy.js";

let db: TestDb;
before(async () => (db = await createTestDb("session_unresponsive")));
after(async () => db.drop());

const HEARTBEAT_MS = 50;
const TIMEOUT_MS = 400;
/** `lost` must have fired by then after the stall (the bound plus slack for a loaded machine). */
const BOUND_MS = HEARTBEAT_MS * 3 + TIMEOUT_MS + 2_000;

const KINDS = ["pg Client", "postgres.js sql.reserve()", "postgres.js { max: 1 }"] as const;

async function open(kind: (typeof KINDS)[number], target: typeof db.app): Promise<{ conn: any; close(): Promise<void> }> {
  if (kind === "pg Client") {
    const c = new pg.Client(pgConfig(target));
    c.on("error", () => undefined);
    await c.connect();
    return { conn: c, close: () => Promise.race([c.end().catch(() => undefined), sleep(500)]).then(() => undefined) };
  }
  const sql = postgresSql(target, { max: kind === "postgres.js { max: 1 }" ? 1 : 2, connect_timeout: 2 });
  const conn = kind === "postgres.js { max: 1 }" ? sql : await sql.reserve();
  return { conn, close: () => Promise.race([sql.end({ timeout: 0 }).catch(() => undefined), sleep(500)]).then(() => undefined) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function holderPid(year: number, month: number): Promise<number> {
  return (await db.observer.query("SELECT pid FROM month_locks WHERE year = $1 AND month = $2 AND granted", [year, month])).rows[0].pid;
}

describe("session lock on a stalled link", () => {
  KINDS.forEach((kind, i) => {
    test(`${kind}: lost fires 'unresponsive', release() settles false at once`, async () => {
      const proxy = await startStallingProxy(db.app);
      const { conn, close } = await open(kind, proxy.target);
      const other = new pg.Client(pgConfig(db.app));
      await other.connect();
      try {
        const lock = await lockMonthSession(conn, { year: 2071, month: i + 1 }, { heartbeatMs: HEARTBEAT_MS, heartbeatTimeoutMs: TIMEOUT_MS });
        await sleep(HEARTBEAT_MS * 5);
        assert.equal(lock.lost.aborted, false, "beats answered while the link works");
        const pid = await holderPid(2071, i + 1);
        proxy.stall();
        const stalledAt = Date.now();
        // The server ends the holder (as an idle or keepalive timeout would); the month is free.
        await db.observer.query("SELECT pg_terminate_backend($1)", [pid]);
        const took = (await other.query("SELECT month_lock_try(2071, $1::int, 5000) AS ok", [i + 1])).rows[0].ok;
        assert.equal(took, true, "another session took the month");
        await waitUntil("lost fires", async () => lock.lost.aborted, BOUND_MS);
        const reason = lock.lost.reason as MonthLockLostError;
        assert.ok(reason instanceof MonthLockLostError);
        assert.equal(reason.why, "unresponsive");
        assert.ok(Date.now() - stalledAt >= TIMEOUT_MS, "not before the timeout");
        const started = Date.now();
        const released = await Promise.race([lock.release(), sleep(2_000).then(() => "release() did not settle")]);
        assert.equal(released, false);
        assert.ok(Date.now() - started < 1_000, "release() settles at once");
      } finally {
        await other.end();
        await close();
        await proxy.close();
      }
    });
  });

  test("pg Client: a statement of the caller's longer than the heartbeat timeout fires nothing", async () => {
    const c = new pg.Client(pgConfig(db.app));
    c.on("error", () => undefined);
    await c.connect();
    try {
      const lock = await lockMonthSession(c, "2071-07", { heartbeatMs: 20, heartbeatTimeoutMs: 200 });
      await c.query("SELECT pg_sleep(1)");
      await sleep(100);
      assert.equal(lock.lost.aborted, false, String(lock.lost.reason));
      assert.equal(await lock.release(), true);
    } finally {
      await c.end();
    }
  });

  for (const kind of ["postgres.js sql.reserve()", "postgres.js { max: 1 }"] as const) {
    test(`${kind}: a statement of the caller's longer than the heartbeat timeout fires nothing`, async () => {
      const { conn, close } = await open(kind, db.app);
      try {
        const lock = await lockMonthSession(conn, kind.includes("reserve") ? "2071-08" : "2071-09", { heartbeatMs: 20, heartbeatTimeoutMs: 200 });
        await conn`SELECT pg_sleep(1)`;
        await sleep(100);
        assert.equal(lock.lost.aborted, false, String(lock.lost.reason));
        assert.equal(await lock.release(), true);
      } finally {
        await close();
      }
    });
  }
});
