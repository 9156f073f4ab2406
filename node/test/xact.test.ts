// The main entry's transaction scope with each driver: withMonthLock, withAnyMonth,
// withAllMonths, the questions, typed errors and SQLSTATEs, as an ordinary role.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import {
  heldByMe, isMonthLocked, listMonthLocks, MonthBusyError, withAllMonths, withAnyMonth, withMonthLock,
  type MonthHold,
} from "month-lock";
import { backendPid, createTestDb, lockRows, pgClient, postgresSql, waitUntilWaiting, type TestDb } from "./support/env.js";
import { DRIVERS, q } from "./support/drivers.js";

let db: TestDb;
let other: pg.Client; // another worker, taking months with plain SQL

before(async () => {
  db = await createTestDb("xact");
  await db.observer.query("CREATE TABLE work (month text, note text)");
  await db.observer.query(`GRANT ALL ON work TO ${db.app.user}`);
  other = await pgClient(db.app, { application_name: "other" });
});
after(async () => {
  await other.end();
  await db.drop();
});

async function otherTakes(year: number, month: number): Promise<void> {
  assert.equal((await other.query("SELECT month_lock_try($1, $2) AS ok", [year, month])).rows[0].ok, true);
}
async function otherReleases(year: number, month: number): Promise<void> {
  assert.equal((await other.query("SELECT month_lock_release($1, $2) AS ok", [year, month])).rows[0].ok, true);
}

DRIVERS.forEach((driver, i) => {
  const year = 2030 + i; // each driver works on months of its own

  describe(`withMonthLock with ${driver.name}`, () => {
    let h: { db: any; close(): Promise<void> };
    before(async () => (h = await driver.open(db.app, { application_name: "worker" })));
    after(async () => h.close());

    test("runs fn in a transaction with the month held, commits, and the commit releases it", async () => {
      const result = await withMonthLock(h.db, `${year}-01`, async (tx, hold) => {
        assert.deepEqual(hold.month, { year, month: 1 });
        assert.equal(hold.mode, "exclusive");
        assert.equal(typeof hold.token, "bigint");
        assert.equal(await heldByMe(tx, { year, month: 1 }), true);
        assert.equal(await isMonthLocked(other, `${year}-01`), true);
        const pid = (await q(tx, "SELECT pg_backend_pid() AS pid"))[0].pid;
        assert.deepEqual(await lockRows(db.observer), [`${year}-01 exclusive granted ${pid}`]);
        assert.equal((await q(tx, "SELECT now() = statement_timestamp() AS same"))[0].same, false, "inside a transaction block");
        await q(tx, "INSERT INTO work VALUES ($1, 'committed')", [`${year}-01`]);
        return 42;
      });
      assert.equal(result, 42);
      assert.equal(await isMonthLocked(other, `${year}-01`), false, "released by COMMIT");
      assert.equal((await other.query("SELECT count(*)::int AS n FROM work WHERE month = $1", [`${year}-01`])).rows[0].n, 1);
    });

    test("an error in fn rolls the work back, releases the month, and is passed on unchanged", async () => {
      const failure = new Error("boom");
      await assert.rejects(
        withMonthLock(h.db, { year, month: 2 }, async (tx) => {
          await q(tx, "INSERT INTO work VALUES ($1, 'rolled back')", [`${year}-02`]);
          throw failure;
        }),
        (e) => e === failure,
      );
      assert.equal(await isMonthLocked(other, `${year}-02`), false);
      assert.equal((await other.query("SELECT count(*)::int AS n FROM work WHERE month = $1", [`${year}-02`])).rows[0].n, 0);
      // A server error inside fn keeps its SQLSTATE.
      await assert.rejects(withMonthLock(h.db, `${year}-02`, (tx) => q(tx, "SELECT 1 / 0")), { code: "22012" });
      assert.equal(await isMonthLocked(other, `${year}-02`), false);
    });

    test("a busy month rejects with MonthBusyError at the timeout, fn not run, nothing held", async () => {
      await otherTakes(year, 3);
      let ran = false;
      const start = performance.now();
      const error = await withMonthLock(h.db, `${year}-03`, () => (ran = true), { timeoutMs: 150 }).then(
        () => assert.fail("resolved"), (e: unknown) => e);
      const elapsed = performance.now() - start;
      assert.ok(error instanceof MonthBusyError, String(error));
      assert.equal(error.code, "55P03");
      assert.equal(error.reason, "timeout");
      assert.deepEqual(error.months, [{ year, month: 3 }]);
      assert.ok(elapsed >= 145, `after ${elapsed} ms`);
      assert.equal(ran, false);
      assert.deepEqual(await lockRows(db.observer), [`${year}-03 exclusive granted ${await backendPid(other)}`]);
      // timeoutMs 0: one attempt.
      await assert.rejects(withMonthLock(h.db, `${year}-03`, () => (ran = true), { timeoutMs: 0 }), MonthBusyError);
      await otherReleases(year, 3);
    });

    test("without a timeout it waits in the server's queue and gets the month at the release", async () => {
      await otherTakes(year, 4);
      const waiting = withMonthLock(h.db, `${year}-04`, async (tx, hold) => [(await q(tx, "SELECT pg_backend_pid() AS pid"))[0].pid, hold]);
      const pids = async () => (await db.observer.query("SELECT pid FROM month_locks WHERE NOT granted")).rows;
      let waiter = 0;
      while (waiter === 0) {
        const rows = await pids();
        if (rows.length) waiter = rows[0].pid;
        else await new Promise((r) => setTimeout(r, 5));
      }
      await waitUntilWaiting(db.observer, waiter);
      await otherReleases(year, 4);
      const [pid, hold] = (await waiting) as [number, MonthHold];
      assert.equal(pid, waiter);
      assert.equal(hold.mode, "exclusive");
      assert.equal(await isMonthLocked(other, `${year}-04`), false);
    });

    test("fencing tokens grow with every hold; shared holds have none and overlap", async () => {
      const tokens: bigint[] = [];
      for (let k = 0; k < 3; k++) {
        await withMonthLock(h.db, `${year}-05`, (_tx, hold) => void tokens.push(hold.token!));
      }
      assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2], tokens.join(" < "));
      // { token: false }: still exclusive, no token.
      await withMonthLock(h.db, `${year}-05`, async (_tx, hold) => {
        assert.deepEqual([hold.mode, hold.token], ["exclusive", null]);
        assert.equal((await other.query("SELECT month_lock_try_shared($1, 5) AS ok", [year])).rows[0].ok, false);
      }, { token: false });
      await withMonthLock(h.db, `${year}-05`, (_tx, hold) => void tokens.push(hold.token!));
      assert.ok(tokens[3] > tokens[2], "a hold without a token does not reuse or skip backwards");
      // Two shared holders at once (the other worker shares too); an exclusive one is refused.
      assert.equal((await other.query("SELECT month_lock_try_shared($1, 5) AS ok", [year])).rows[0].ok, true);
      await withMonthLock(h.db, `${year}-05`, async (tx, hold) => {
        assert.equal(hold.mode, "shared");
        assert.equal(hold.token, null);
        assert.equal(await heldByMe(tx, `${year}-05`), true);
        const rows = (await listMonthLocks(tx)).filter((r) => r.year === year && r.month === 5);
        assert.deepEqual(rows.map((r) => [r.mode, r.granted]), [["shared", true], ["shared", true]]);
      }, { shared: true, timeoutMs: 0 });
      await assert.rejects(withMonthLock(h.db, `${year}-05`, () => 1, { timeoutMs: 50 }), MonthBusyError);
      assert.equal((await other.query("SELECT month_lock_release_shared($1, 5) AS ok", [year])).rows[0].ok, true);
    });

    test("listMonthLocks shows holders and waiters with the view's columns", async () => {
      await otherTakes(year, 6);
      const otherPid = await backendPid(other);
      const waiting = withMonthLock(h.db, `${year}-06`, () => "got it", { timeoutMs: 10_000 });
      // Asked on another connection: a pg Client is busy waiting.
      let rows = await listMonthLocks(other);
      while (rows.length < 2) rows = (await new Promise((r) => setTimeout(r, 5)), await listMonthLocks(other));
      assert.deepEqual(rows.map((r) => [r.year, r.month, r.monthStart, r.mode, r.granted]), [
        [year, 6, `${year}-06-01`, "exclusive", true],
        [year, 6, `${year}-06-01`, "exclusive", false],
      ]);
      assert.equal(rows[0].pid, otherPid);
      assert.equal(rows[0].applicationName, "other");
      assert.equal(rows[1].applicationName, "worker");
      assert.equal(rows[0].waitingSince, null);
      assert.ok(rows[1].waitingSince instanceof Date);
      assert.equal(rows[0].usename, db.app.user);
      assert.ok(rows[0].backendStart instanceof Date, "own role's sessions show backend_start");
      await otherReleases(year, 6);
      assert.equal(await waiting, "got it");
      assert.deepEqual(await listMonthLocks(h.db), []);
    });

    test("withAnyMonth claims the first free month in the caller's order, and none free is MonthBusyError", async () => {
      await otherTakes(year, 7);
      const got = await withAnyMonth(h.db, [`${year}-07`, `${year}-09`, `${year}-08`], async (tx, hold) => {
        assert.equal(await heldByMe(tx, hold.month), true);
        return hold;
      });
      assert.deepEqual(got.month, { year, month: 9 });
      assert.equal(typeof got.token, "bigint");
      assert.equal(await isMonthLocked(other, `${year}-09`), false, "released at commit");
      const none = await withAnyMonth(h.db, [`${year}-07`], () => assert.fail("ran")).then(() => undefined, (e: unknown) => e);
      assert.ok(none instanceof MonthBusyError && none.reason === "none-free", String(none));
      await otherReleases(year, 7);
    });

    test("withAllMonths takes every month or none", async () => {
      const quarter = [`${year}-12`, `${year}-10`, `${year}-11`];
      const held = await withAllMonths(h.db, quarter, async (tx, hold) => {
        for (const m of quarter) assert.equal(await heldByMe(tx, m), true);
        return hold;
      }, { timeoutMs: 1000 });
      assert.deepEqual(held.months.map((m) => m.month), [10, 11, 12], "ascending");
      assert.equal(held.tokens.length, 3);
      await otherTakes(year, 12);
      const start = performance.now();
      const error = await withAllMonths(h.db, quarter, () => assert.fail("ran"), { timeoutMs: 200 }).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof MonthBusyError && error.reason === "not-all-free", String(error));
      assert.ok(performance.now() - start >= 195);
      assert.equal(await isMonthLocked(other, `${year}-10`), false, "nothing left of the attempt");
      assert.equal(await isMonthLocked(other, `${year}-11`), false);
      await otherReleases(year, 12);
    });

    test("two holds crossing two months: one gets the deadlock error (40P01), the other finishes", async () => {
      const second = await driver.open(db.app);
      try {
        let inside = 0;
        let bothInside!: () => void;
        const ready = new Promise<void>((r) => (bothInside = r));
        // Each holds its first month, then (inside its transaction) asks for the other's.
        const cross = (d: any, first: number, then: number) => withMonthLock(d, { year, month: first }, async (tx) => {
          if (++inside === 2) bothInside();
          await ready;
          await q(tx, "SELECT month_lock_xact($1::int, $2::int)", [year, then]);
          return "done";
        });
        const outcomes = await Promise.allSettled([cross(h.db, 8, 9), cross(second.db, 9, 8)]);
        const codes = outcomes.map((o) => (o.status === "fulfilled" ? o.value : (o.reason as { code?: string }).code));
        assert.deepEqual([...codes].sort(), ["40P01", "done"], String(codes));
        assert.deepEqual(await lockRows(db.observer), [], "nothing held afterwards");
      } finally {
        await second.close();
      }
    });

    test("a statement_timeout cancelling the wait keeps its SQLSTATE (57014), nothing held", async () => {
      const limited = await driver.open(db.app, driver.name === "postgres.js"
        ? { connection: { statement_timeout: 100 } } : { statement_timeout: 100 });
      try {
        await otherTakes(year, 11);
        await assert.rejects(withMonthLock(limited.db, `${year}-11`, () => assert.fail("ran")), { code: "57014" });
        assert.deepEqual(await lockRows(db.observer), [`${year}-11 exclusive granted ${await backendPid(other)}`]);
        await otherReleases(year, 11);
      } finally {
        await limited.close();
      }
    });
  });
});

describe("input is checked before any query", () => {
  test("months, timeouts, signals and fn are rejected with typed errors and nothing sent", async () => {
    let sent = 0;
    const counting = { query: () => (sent++, Promise.reject(new Error("sent"))), connect: () => (sent++, Promise.reject(new Error("sent"))), totalCount: 0 };
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => withMonthLock(counting, "2024-13", () => 1), /month must be a "YYYY-MM" string such as "2024-03" \(year 0001\.\.9999, month 01\.\.12\), got "2024-13"/],
      [() => withMonthLock(counting, "2024-3", () => 1), /month must be a "YYYY-MM" string/],
      [() => withMonthLock(counting, { year: 2024, month: 0 }, () => 1), /month\.month must be an integer 1\.\.12, got 0/],
      [() => withMonthLock(counting, { year: 0, month: 1 }, () => 1), /month\.year must be an integer 1\.\.9999/],
      [() => withMonthLock(counting, new Date(Number.NaN), () => 1), /month must be a valid Date in the years 1\.\.9999, got Invalid Date/],
      [() => withMonthLock(counting, 202403 as never, () => 1), /month must be a "YYYY-MM" string, \{ year, month \} or a Date/],
      [() => withMonthLock(counting, "2024-03", () => 1, { timeoutMs: -1 }), /timeoutMs must be an integer/],
      [() => withMonthLock(counting, "2024-03", () => 1, { timeoutMs: 1.5 }), /timeoutMs must be an integer/],
      [() => withMonthLock(counting, "2024-03", () => 1, { timeoutMs: 2 ** 31 }), /timeoutMs must be an integer/],
      [() => withMonthLock(counting, "2024-03", () => 1, { signal: {} as AbortSignal }), /signal must be an AbortSignal/],
      [() => withMonthLock(counting, "2024-03", undefined as never), /fn must be a function/],
      [() => withAllMonths(counting, [], () => 1), /months must be at least one month/],
      [() => withAllMonths(counting, ["2024-01", "2024-14"], () => 1), /months\[1\] must be a "YYYY-MM" string.*got "2024-14"/],
      [() => withAnyMonth(counting, "2024-01" as never, () => 1), /months must be an array of months/],
      [() => isMonthLocked(counting, "March"), /month must be a "YYYY-MM" string/],
      [() => heldByMe(counting, { year: 2024, month: 12.5 }), /month\.month must be an integer/],
      [() => withMonthLock({}, "2024-03", () => 1), /db must be a postgres\.js sql, a pg\.Pool/],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(call(), (e: unknown) => e instanceof Error && message.test(e.message), String(message));
    }
    assert.equal(sent, 0);
    // A Date is its UTC month.
    await assert.rejects(withMonthLock(counting, new Date("2024-03-31T23:30:00-02:00"), () => 1), /sent/);
    assert.equal(sent, 1, "a valid month reaches the driver");
  });
});

// Months come back as ISO dates whatever DateStyle the session uses (a role or database
// default, or the client's startup options).
describe("months under a non-ISO DateStyle", () => {
  test("withAnyMonth reports the month it claimed, listMonthLocks its first day, with each driver", async () => {
    for (const [i, open] of [
      () => pgClient(db.app, { options: "-c DateStyle=SQL,DMY" }),
      async () => postgresSql(db.app, { connection: { DateStyle: "German" } }),
    ].entries()) {
      const year = 2040 + i;
      const conn: any = await open();
      try {
        await otherTakes(year, 1);
        const got = await withAnyMonth(conn, [`${year}-01`, `${year}-05`], async (tx) => {
          const rows = await listMonthLocks(tx);
          assert.ok(rows.some((r) => r.monthStart === `${year}-05-01`), JSON.stringify(rows.map((r) => r.monthStart)));
          return (await q(tx, "SELECT current_setting('DateStyle') AS s"))[0].s;
        });
        assert.notEqual(got, "ISO, MDY");
        const again = await withAnyMonth(conn, [`${year}-01`, `${year}-03`], async (_tx, hold) => hold.month);
        assert.deepEqual(again, { year, month: 3 });
        await otherReleases(year, 1);
      } finally {
        await conn.end();
      }
    }
  });
});
