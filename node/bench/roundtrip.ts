// `make node-bench`: the cost of a hold with each driver, side by side with the same SQL sent
// by hand. Each method takes and releases a free month (transaction scope) on one connection;
// a bare BEGIN/COMMIT is the baseline. Writes a markdown table to the path given (the repo's
// bench/node-results.md) and prints it.
import { writeFileSync, readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import type pg from "pg";
import type postgres from "postgres";
import { withMonthLock } from "month-lock";
// The statement the package sends (not exported; compiled along with the bench).
import * as SQL from "../src/sql.js";
// Unqualified here: the bench database has the extension on its search_path.
const XACT_TRY = SQL.XACT_TRY.replaceAll("@extschema@.", "");
import { createTestDb, pgClient, postgresSql } from "../test/support/env.js";

const N = Number(process.env.MONTH_LOCK_BENCH_N ?? 3000);
const BLOCK = 100; // methods take turns every BLOCK holds, so drift hits all alike
const WARMUP = 300;

interface Method {
  driver: string;
  name: string;
  hold(i: number): Promise<unknown>;
  sent: () => number; // statements sent so far
  samples: number[];
}

const month = (i: number) => ({ year: 2000 + (i % 50), month: 1 + (i % 12) });

function counting(client: pg.Client): () => number {
  let n = 0;
  const query = client.query.bind(client) as (...a: unknown[]) => unknown;
  (client as unknown as { query: unknown }).query = (...a: unknown[]) => (n++, query(...a));
  return () => n;
}

async function main(out: string) {
  const db = await createTestDb("bench");
  const clients: pg.Client[] = [];
  const sqls: postgres.Sql[] = [];
  const methods: Method[] = [];
  const pgMethod = async (name: string, hold: (c: pg.Client, i: number) => Promise<unknown>) => {
    const c = await pgClient(db.app);
    clients.push(c);
    const sent = counting(c);
    methods.push({ driver: "pg", name, hold: (i) => hold(c, i), sent, samples: [] });
  };
  const pjsMethod = (name: string, hold: (s: postgres.Sql, i: number) => Promise<unknown>) => {
    let n = 0;
    const s = postgresSql(db.app, { max: 1, fetch_types: false, debug: () => n++ });
    sqls.push(s);
    methods.push({ driver: "postgres.js", name, hold: (i) => hold(s, i), sent: () => n, samples: [] });
  };
  const RAW = "SELECT month_lock_try_xact($1::int4, $2::int4, 0) AS ok";
  await pgMethod("BEGIN/COMMIT only (baseline)", async (c) => { await c.query("BEGIN"); await c.query("COMMIT"); });
  await pgMethod("raw SQL: BEGIN, month_lock_try_xact, COMMIT", async (c, i) => {
    await c.query("BEGIN");
    await c.query(RAW, [month(i).year, month(i).month]);
    await c.query("COMMIT");
  });
  await pgMethod("raw SQL: the same with month_lock_token", async (c, i) => {
    await c.query("BEGIN");
    await c.query(XACT_TRY, [month(i).year, month(i).month, 0]);
    await c.query("COMMIT");
  });
  await pgMethod("withMonthLock (with fencing token)", (c, i) => withMonthLock(c, month(i), () => undefined, { timeoutMs: 0 }));
  await pgMethod("withMonthLock { token: false }", (c, i) => withMonthLock(c, month(i), () => undefined, { timeoutMs: 0, token: false }));
  pjsMethod("sql.begin only (baseline)", (s) => s.begin(async () => undefined));
  pjsMethod("raw SQL: sql.begin + month_lock_try_xact", (s, i) =>
    s.begin((tx) => tx.unsafe(RAW, [month(i).year, month(i).month])));
  pjsMethod("raw SQL: the same with month_lock_token", (s, i) =>
    s.begin((tx) => tx.unsafe(XACT_TRY, [month(i).year, month(i).month, 0])));
  pjsMethod("withMonthLock (with fencing token)", (s, i) => withMonthLock(s, month(i), () => undefined, { timeoutMs: 0 }));
  pjsMethod("withMonthLock { token: false }", (s, i) => withMonthLock(s, month(i), () => undefined, { timeoutMs: 0, token: false }));

  for (const m of methods) for (let i = 0; i < WARMUP; i++) await m.hold(i);
  const sentBefore = methods.map((m) => m.sent());
  const started = Date.now();
  const load0 = loadavg();
  for (let block = 0; block < N / BLOCK; block++) {
    for (const m of methods) {
      for (let k = 0; k < BLOCK; k++) {
        const i = block * BLOCK + k;
        const t = process.hrtime.bigint();
        await m.hold(i);
        m.samples.push(Number(process.hrtime.bigint() - t) / 1000);
      }
    }
  }
  const load1 = loadavg();
  const seconds = (Date.now() - started) / 1000;
  const server = (await db.observer.query("SELECT version() AS v")).rows[0].v as string;
  await Promise.all([...clients.map((c) => c.end()), ...sqls.map((s) => s.end())]);
  await db.drop();

  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const ver = (name: string) => JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), "utf8")).version;
  const lines = [
    "# month-lock (npm) benchmark: the cost of a hold",
    "",
    `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, ${availableParallelism()} CPU cores, ${server.split(",")[0]}; ` +
      `Node ${process.version}, pg ${ver("pg")}, postgres.js ${ver("postgres")}; throwaway cluster on a Unix socket, client on the same machine. ` +
      `${N} holds per method after ${WARMUP} warm-up holds, methods taking turns every ${BLOCK}; ${seconds.toFixed(1)} s. ` +
      `Load average (1 min) ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after. Produced by \`make node-bench\` (node/bench/roundtrip.ts).`,
    "",
    "Each hold takes a free month in transaction scope and ends the transaction; the lock's cost is the difference to the baseline of the same driver.",
    "",
    "| driver | method | statements per hold | µs per hold p50 | p95 | lock's cost over the baseline, p50 (µs) |",
    "|---|---|---|---|---|---|",
  ];
  methods.forEach((m, k) => {
    const base = methods.find((b) => b.driver === m.driver)!;
    const stmts = (m.sent() - sentBefore[k]) / N;
    const p50 = q(m.samples, 0.5);
    lines.push(`| ${m.driver} | ${m.name} | ${stmts} | ${p50.toFixed(0)} | ${q(m.samples, 0.95).toFixed(0)} | ${m === base ? "—" : (p50 - q(base.samples, 0.5)).toFixed(0)} |`);
  });
  const text = lines.join("\n") + "\n";
  writeFileSync(out, text);
  process.stdout.write(text);
}

main(process.argv[2] ?? "node-results.md").catch((e) => {
  console.error(e);
  process.exit(1);
});
