// A stall of the Node process itself (a synchronous loop) while a heartbeat is on its way: the
// server answers at once, the answer waits unread in the socket until the stall ends, and the
// first timer tick afterwards finds the beat overdue by the clock. That is no loss: `lost` does
// not fire and the connection stays open (before, the first tick declared "unresponsive" and
// closed a healthy holder).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lockMonthSession } from "month-lock";
import { createTestDb, pgClient, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("session_stall")));
after(async () => db.drop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HEARTBEAT_MS = 100;
const TIMEOUT_MS = 500;
/** The process's own stall: three times the heartbeat timeout. */
const STALL_MS = TIMEOUT_MS * 3;
const ROUNDS = 5;

/** Waits (from the check phase, as an I/O callback's follow-up would) until `inFlight`, then blocks the thread. */
function stallWhile(inFlight: () => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      if (inFlight()) {
        const t = Date.now();
        while (Date.now() - t < STALL_MS) { /* the process's own stall */ }
        resolve(true);
      } else if (Date.now() - t0 > 10_000) resolve(false);
      else setImmediate(tick);
    };
    setImmediate(tick);
  });
}

describe("session lock: a stall of the process with a beat in flight", () => {
  test(`pg Client: no false 'unresponsive' (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const c = await pgClient(db.app);
      c.on("error", () => undefined);
      try {
        const lock = await lockMonthSession(c, { year: 2076, month: round + 1 }, { heartbeatMs: HEARTBEAT_MS, heartbeatTimeoutMs: TIMEOUT_MS });
        // pg's statement on its way (not public): a beat, as nothing else is sent.
        const stalled = await stallWhile(() => (c as unknown as { activeQuery?: unknown }).activeQuery != null);
        assert.equal(stalled, true, "a beat was sent");
        await sleep(HEARTBEAT_MS * 5);
        assert.equal(lock.lost.aborted, false, `round ${round}: lost fired (${(lock.lost.reason as Error | undefined)?.message})`);
        assert.equal((await c.query("SELECT 1 AS x")).rows[0].x, 1, "the connection still answers");
        assert.equal(await lock.release(), true, "still held");
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  });
});
