// `month-lock/compat` holds stack per connection as the original application's raw advisory
// locks did: every true from acquireMonthLock needs its releaseMonthLock, and overlapping
// withMonthLock calls on one connection keep the month until the last one ends. Checked side
// by side with pg_try_advisory_lock / pg_advisory_unlock on a connection of the same kind.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type postgres from "postgres";
import { acquireMonthLock, isMonthLocked, releaseMonthLock, withMonthLock } from "month-lock/compat";
import { createTestDb, lockRows, ORIGINAL_SETTINGS, postgresSql, waitUntil, type TestDb } from "./support/env.js";

let db: TestDb;
const sqls: postgres.Sql[] = [];

before(async () => {
  db = await createTestDb("compat_stacking");
});
after(async () => {
  await Promise.all(sqls.map((s) => s.end({ timeout: 1 })));
  await db.drop();
});

function connect(): postgres.Sql {
  const sql = postgresSql(db.app, ORIGINAL_SETTINGS);
  sqls.push(sql);
  return sql;
}

/** A gate a test opens by hand. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

describe("compat: holds stack per connection, as raw advisory locks do", () => {
  test("the same calls give the same answers as pg_try_advisory_lock / pg_advisory_unlock", async () => {
    const a = connect();
    const raw = connect();
    const observer = connect();
    const key = 999_001;
    const steps: Array<"acquire" | "release"> = ["acquire", "acquire", "release", "release", "release", "acquire", "release"];
    const viaCompat: Array<[boolean, boolean]> = [];
    const viaRaw: Array<[boolean, boolean]> = [];
    for (const step of steps) {
      viaCompat.push([
        step === "acquire" ? await acquireMonthLock(a, 2032, 1, 0) : await releaseMonthLock(a, 2032, 1),
        await isMonthLocked(observer, 2032, 1),
      ]);
      const r = step === "acquire"
        ? (await raw.unsafe("SELECT pg_try_advisory_lock($1::int8) AS ok", [key]))[0].ok
        : (await raw.unsafe("SELECT pg_advisory_unlock($1::int8) AS ok", [key]))[0].ok;
      const locked = (await observer.unsafe(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::int8 AND granted", [key]))[0].n > 0;
      viaRaw.push([r, locked]);
    }
    assert.deepEqual(viaCompat, viaRaw);
    assert.deepEqual(viaCompat.map(([ok]) => ok), [true, true, true, true, false, true, true]);
    assert.deepEqual(await lockRows(db.observer), []);
  });

  test("a second connection cannot take a month the first holds twice until both references are released", async () => {
    const a = connect();
    const b = connect();
    assert.equal(await acquireMonthLock(a, 2032, 2, 0), true);
    assert.equal(await acquireMonthLock(a, 2032, 2, 0), true);
    assert.equal(await releaseMonthLock(a, 2032, 2), true);
    assert.equal(await acquireMonthLock(b, 2032, 2, 50), false, "one reference is left");
    assert.equal(await releaseMonthLock(a, 2032, 2), true);
    assert.equal(await acquireMonthLock(b, 2032, 2, 0), true);
    assert.equal(await releaseMonthLock(b, 2032, 2), true);
  });

  test("overlapping withMonthLock calls for one month on one connection: held until the last one ends", async () => {
    const a = connect();
    const other = connect();
    const first = gate();
    const second = gate();
    let running = 0;
    const one = withMonthLock(a, 2032, 3, async () => (running++, await first.opened, "one"), 1000);
    const two = withMonthLock(a, 2032, 3, async () => (running++, await second.opened, "two"), 1000);
    await waitUntil("both run", async () => running === 2);
    first.open();
    assert.equal(await one, "one");
    assert.equal(await isMonthLocked(other, 2032, 3), true, "still held: the second call still works");
    assert.equal(await acquireMonthLock(other, 2032, 3, 0), false);
    second.open();
    assert.equal(await two, "two");
    assert.equal(await isMonthLocked(other, 2032, 3), false, "released by the last one");
    assert.deepEqual(await lockRows(db.observer), []);
  });

  test("overlapping calls where the inner one fails: the outer still holds the month", async () => {
    const a = connect();
    const other = connect();
    const failure = new Error("inner failed");
    const result = await withMonthLock(a, 2032, 4, async () => {
      await assert.rejects(withMonthLock(a, 2032, 4, () => Promise.reject(failure)), (e) => e === failure);
      assert.equal(await isMonthLocked(other, 2032, 4), true, "the outer hold is intact");
      return 4;
    });
    assert.equal(result, 4);
    assert.equal(await isMonthLocked(other, 2032, 4), false);
  });

  test("a hold that went behind compat's back starts counting again: the next acquire is one reference", async () => {
    // The same answer from the server as after a session that was lost and silently replaced
    // (postgres.js reconnects): the month is not held before the acquisition.
    const a = connect();
    assert.equal(await acquireMonthLock(a, 2032, 5, 0), true);
    assert.equal(await acquireMonthLock(a, 2032, 5, 0), true);
    assert.equal((await a`SELECT month_lock_release_all() AS n`)[0].n, 1);
    assert.equal(await isMonthLocked(a, 2032, 5), false);
    assert.equal(await acquireMonthLock(a, 2032, 5, 0), true);
    assert.equal(await releaseMonthLock(a, 2032, 5), true);
    assert.equal(await isMonthLocked(a, 2032, 5), false, "one release frees the new hold");
    assert.equal(await releaseMonthLock(a, 2032, 5), false);
  });

  test("a released-behind-its-back month answers a stacked release with false, as pg_advisory_unlock would", async () => {
    const a = connect();
    assert.equal(await acquireMonthLock(a, 2032, 6, 0), true);
    assert.equal(await acquireMonthLock(a, 2032, 6, 0), true);
    await a`SELECT month_lock_release_all()`;
    assert.equal(await releaseMonthLock(a, 2032, 6), false, "not held any more");
    assert.equal(await releaseMonthLock(a, 2032, 6), false);
    assert.equal(await acquireMonthLock(a, 2032, 6, 0), true);
    assert.equal(await releaseMonthLock(a, 2032, 6), true);
    assert.deepEqual(await lockRows(db.observer), []);
  });
});
