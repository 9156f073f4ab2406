// Through a real PgBouncer in transaction mode (the Hyperdrive stand-in): workers of both
// drivers hold contended months in transaction scope and record each hold's interval, measured
// by the server inside the hold; no two holds of one month overlap. A run of the same workload
// without the lock shows that the overlap check does find overlaps.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { withMonthLock } from "month-lock";
import { createTestDb, lockRows, ORIGINAL_SETTINGS, pgPool, postgresSql, waitUntil, waitingPids, type TestDb } from "./support/env.js";
import { startPgBouncer, type PgBouncer } from "./support/pgbouncer.js";
import { q } from "./support/drivers.js";

let db: TestDb;
let bouncer: PgBouncer;
const closers: Array<() => Promise<unknown>> = [];

before(async () => {
  db = await createTestDb("pgbouncer");
  await db.observer.query("CREATE TABLE holds (id bigserial, run text, month text, worker text, started timestamptz, ended timestamptz)");
  await db.observer.query(`GRANT ALL ON holds, holds_id_seq TO ${db.app.user}`);
  bouncer = await startPgBouncer(db.app, 4);
});
after(async () => {
  await Promise.all(closers.map((c) => c()));
  await bouncer?.stop();
  await db.drop();
});

/** Workers through PgBouncer: half pg Pools, half postgres.js (prepare: false, as PgBouncer 1.18 needs). */
function workers(n: number): Array<{ name: string; db: any }> {
  return Array.from({ length: n }, (_, k) => {
    if (k % 2 === 0) {
      const pool = pgPool(bouncer.target, { max: 2 });
      closers.push(() => pool.end());
      return { name: `pg-${k}`, db: pool };
    }
    const sql = postgresSql(bouncer.target, { max: 2, prepare: false, fetch_types: false });
    closers.push(() => sql.end({ timeout: 1 }));
    return { name: `postgres-${k}`, db: sql };
  });
}

// One statement: the interval runs from the hold's first statement to its end, at least 2 ms.
const RECORD =
  "INSERT INTO holds (run, month, worker, started, ended) " +
  "SELECT $1, $2, $3, s.t, pg_catalog.clock_timestamp() FROM (SELECT pg_catalog.clock_timestamp() AS t, pg_catalog.pg_sleep(0.002)) s";

async function overlaps(run: string): Promise<number> {
  const { rows } = await db.observer.query(
    "SELECT count(*)::int AS n FROM holds a JOIN holds b ON a.run = b.run AND a.month = b.month AND a.id < b.id " +
      "AND tstzrange(a.started, a.ended) && tstzrange(b.started, b.ended) WHERE a.run = $1",
    [run],
  );
  return rows[0].n;
}

describe("through PgBouncer in transaction mode", () => {
  test("contended transaction-scope holds from 8 workers of both drivers never overlap", async (t) => {
    const crew = workers(8);
    const months = ["2060-01", "2060-02"];
    const perWorker = 40;
    const inFlight = new Map<string, number>();
    let maxInFlight = 0;
    await Promise.all(crew.map(async (w, k) => {
      for (let i = 0; i < perWorker; i++) {
        const month = months[(i + k) % months.length];
        inFlight.set(month, (inFlight.get(month) ?? 0) + 1);
        maxInFlight = Math.max(maxInFlight, inFlight.get(month)!);
        try {
          await withMonthLock(w.db, month, (tx) => q(tx, RECORD, ["locked", month, w.name]), { timeoutMs: 60_000 });
        } finally {
          inFlight.set(month, inFlight.get(month)! - 1);
        }
      }
    }));
    const { rows } = await db.observer.query("SELECT count(*)::int AS n FROM holds WHERE run = 'locked'");
    assert.equal(rows[0].n, crew.length * perWorker, "every hold recorded");
    assert.ok(maxInFlight >= 4, `contended: up to ${maxInFlight} workers wanted one month at once`);
    assert.equal(await overlaps("locked"), 0, "no two holds of one month overlap");
    assert.deepEqual(await lockRows(db.observer), [], "nothing held afterwards");
    t.diagnostic(`${rows[0].n} holds, up to ${maxInFlight} workers contending for one month, 0 overlaps`);
  });

  test("the same workload without the lock does overlap (the check can fail)", async () => {
    const crew = workers(4);
    await Promise.all(crew.map(async (w) => {
      for (let i = 0; i < 5; i++) await q(w.db, RECORD, ["unlocked", "2060-03", w.name]);
    }));
    assert.ok((await overlaps("unlocked")) > 0);
  });

  test("an AbortSignal cancels a wait through PgBouncer with both drivers, nothing held", async () => {
    const [pgWorker, pjsWorker, holder] = workers(3);
    for (const w of [pgWorker, pjsWorker]) {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const holding = withMonthLock(holder.db, "2060-04", () => released);
      try {
        await waitUntil("held", async () => (await lockRows(db.observer)).length === 1);
        const controller = new AbortController();
        const waiting = withMonthLock(w.db, "2060-04", () => assert.fail("ran"), { signal: controller.signal });
        await waitUntil("queued", async () => (await waitingPids(db.observer)).length === 1);
        controller.abort();
        await assert.rejects(waiting, { name: "AbortError" }, `${w.name}; PgBouncer's log:\n${bouncer.log()}`);
        assert.equal((await lockRows(db.observer)).length, 1, `${w.name}: only the holder is left`);
      } finally {
        release();
        await holding;
      }
      assert.deepEqual(await lockRows(db.observer), []);
    }
  });

  test("postgres.js tells PgBouncer from a direct connection by the pid its BackendKeyData names", async () => {
    // What decides an abort's cancel: never a CancelRequest through the pooler (pgbouncer#847).
    const [, viaBouncer] = workers(2);
    const through = await viaBouncer.db.unsafe("SELECT pg_backend_pid() AS pid");
    assert.notEqual(through.state?.pid, through[0].pid, "a pooler's own key");
    const direct = postgresSql(db.app, { max: 2 });
    closers.push(() => direct.end({ timeout: 1 }));
    const straight = await direct.unsafe("SELECT pg_backend_pid() AS pid");
    assert.equal(straight.state?.pid, straight[0].pid, "the server's key");
  });

  test("the compat API's statements pass through PgBouncer with the original settings", async () => {
    // Session scope is not pooler-safe (the next transaction may run elsewhere); this only checks
    // that postgres.js with the application's settings talks to PgBouncer at all.
    const sql = postgresSql(bouncer.target, ORIGINAL_SETTINGS);
    closers.push(() => sql.end({ timeout: 1 }));
    const { isMonthLocked, getAllAdvisoryLocks } = await import("month-lock/compat");
    assert.equal(await isMonthLocked(sql, 2060, 5), false);
    assert.deepEqual(await getAllAdvisoryLocks(sql), []);
  });
});
