// An abort fired the moment the acquiring statement is written to the socket (postgres.js on a
// direct connection, where the package uses the protocol's CancelRequest): a CancelRequest that
// reaches the backend before it starts the statement is ignored by the server, so the package
// repeats it until the statement has ended. Every such abort stops the wait, and the
// connection's next statement is not cancelled.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import type pg from "pg";
import { lockMonthSession, withMonthLock } from "month-lock";
import { createTestDb, lockRows, pgClient, postgresSql, type TestDb } from "./support/env.js";

let db: TestDb;
let holder: pg.Client;
before(async () => {
  db = await createTestDb("abort_at_send");
  holder = await pgClient(db.app, { application_name: "holder" });
});
after(async () => {
  await holder.end();
  await db.drop();
});

/** Calls `then` right after the next write to any socket that carries `marker`. */
let onSend: { marker: RegExp; then(): void } | undefined;
const write = net.Socket.prototype.write;
net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
  const r = (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  const hook = onSend;
  if (hook && (typeof chunk === "string" || chunk instanceof Uint8Array)
    && hook.marker.test(Buffer.from(chunk as Uint8Array).toString("latin1"))) {
    onSend = undefined;
    hook.then();
  }
  return r;
} as typeof write;

const ROUNDS = 60;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const [name, max, session] of [["{ max: 2 } withMonthLock", 2, false], ["{ max: 1 } lockMonthSession", 1, true]] as const) {
  describe(`postgres.js ${name}: abort at the send`, () => {
    test(`every abort stops the wait, nothing held, the next statement runs (${ROUNDS} rounds)`, async (t) => {
      const sql = postgresSql(db.app, { max, fetch_types: false });
      try {
        await sql`SELECT 1`;
        let slow = 0;
        for (let round = 0; round < ROUNDS; round++) {
          await holder.query("SELECT month_lock(2063, 1)");
          const controller = new AbortController();
          const reason = new Error(`abort ${round}`);
          onSend = { marker: /month_lock(_xact)?\(/, then: () => controller.abort(reason) };
          const start = performance.now();
          const call = session
            ? lockMonthSession(sql, "2063-01", { heartbeatMs: 0, signal: controller.signal }).then((l) => l.release())
            : withMonthLock(sql, "2063-01", () => 1, { signal: controller.signal });
          const outcome = await Promise.race([call.then(() => "resolved", (e) => (e === reason ? "aborted" : e)), sleep(2000).then(() => "stuck")]);
          const elapsed = performance.now() - start;
          if (elapsed > 500) slow++;
          await holder.query("SELECT month_lock_release_all()");
          assert.equal(outcome, "aborted", `round ${round}: ${String(outcome)}`);
          assert.equal((await sql`SELECT 1 AS x`)[0].x, 1, `round ${round}: the next statement is not cancelled`);
          assert.deepEqual(await lockRows(db.observer), [], `round ${round}`);
        }
        t.diagnostic(`${slow} aborts took more than 500 ms`);
      } finally {
        onSend = undefined;
        await sql.end({ timeout: 1 });
      }
    });
  });
}
