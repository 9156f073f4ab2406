// The cost of a hold: one statement beyond the work's own (BEGIN and COMMIT aside), with each
// driver, counted at the driver.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { lockMonthSession, withMonthLock } from "month-lock";
import { createTestDb, pgClient, postgresSql, type TestDb } from "./support/env.js";

let db: TestDb;
before(async () => (db = await createTestDb("roundtrips")));
after(async () => db.drop());

/** A pg Client that records every statement sent through `query`. */
async function countingClient(): Promise<{ client: pg.Client; sent: string[] }> {
  const client = await pgClient(db.app);
  const sent: string[] = [];
  const query = client.query.bind(client) as (...a: unknown[]) => unknown;
  (client as unknown as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
    sent.push(typeof text === "string" ? text : String(text));
    return query(text, ...rest);
  };
  return { client, sent };
}

describe("one statement per acquisition", () => {
  test("pg: BEGIN, the acquisition (with the token), the work, COMMIT", async () => {
    const { client, sent } = await countingClient();
    try {
      // The first call of a connection looks up the extension's schema once.
      await withMonthLock(client, "2070-01", () => 1);
      assert.equal(sent.filter((s) => /pg_extension/.test(s)).length, 1, sent.join("\n"));
      sent.length = 0;
      await withMonthLock(client, "2070-01", (tx: pg.Client) => tx.query("SELECT 1"));
      assert.equal(sent.length, 4, sent.join("\n"));
      assert.equal(sent[0], "BEGIN ISOLATION LEVEL READ COMMITTED", "READ COMMITTED whatever the session's default");
      assert.match(sent[1], /month_lock_try_xact|month_lock_xact/);
      assert.equal(sent[2], "SELECT 1");
      assert.equal(sent[3], "COMMIT");
      sent.length = 0;
      // An AbortSignal costs one more (the backend's pid, for the cancel).
      await withMonthLock(client, "2070-01", () => 1, { signal: new AbortController().signal });
      assert.equal(sent.length, 4, sent.join("\n"));
      sent.length = 0;
      const lock = await lockMonthSession(client, "2070-02", { heartbeatMs: 0 });
      await lock.release();
      assert.equal(sent.length, 2, "session scope: one to take, one to release");
    } finally {
      await client.end();
    }
  });

  test("postgres.js: begin, the acquisition (with the token), the work, commit", async () => {
    const sent: string[] = [];
    const sql = postgresSql(db.app, { max: 2, debug: (_c, text) => sent.push(text) });
    const first = (s: string) => s.trim().split(/\s+/)[0].toLowerCase();
    try {
      // The first call of an sql looks up the extension's schema once.
      await withMonthLock(sql, "2070-03", () => 1, { timeoutMs: 1000 });
      assert.equal(sent.filter((s) => /pg_extension/.test(s)).length, 1, sent.join("\n"));
      sent.length = 0;
      await withMonthLock(sql, "2070-03", (tx) => tx`SELECT 1`, { timeoutMs: 1000 });
      assert.deepEqual(sent.map(first), ["begin", "select", "select", "commit"], sent.join("\n"));
      assert.match(sent[0], /^begin isolation level read committed$/i, "READ COMMITTED whatever the session's default");
      assert.match(sent[1], /month_lock_try_xact/);
      sent.length = 0;
      // An AbortSignal costs one more (the backend's pid, for the cancel).
      await withMonthLock(sql, "2070-03", () => 1, { signal: new AbortController().signal });
      assert.deepEqual(sent.map(first), ["begin", "select", "select", "commit"], sent.join("\n"));
      assert.match(sent[1], /pg_backend_pid/);
    } finally {
      await sql.end();
    }
  });
});
