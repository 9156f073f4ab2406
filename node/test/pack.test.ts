// The tarball `npm pack` makes, installed into a new project the way a user installs it, runs
// the original application's cases and the other compat suites (compat*.test.js, unchanged)
// and type-checks a consumer of every entry point against the declarations it ships. That project uses postgres.js 3 (the
// major the original application was written against); the rest of the suite runs the
// devDependency, postgres.js 4.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url)); // build/test
const pkgDir = join(here, "..", "..");
let project: string;

const version = (name: string) => JSON.parse(readFileSync(join(pkgDir, "node_modules", name, "package.json"), "utf8")).version;
/** The postgres.js 3 release the new project installs. */
const POSTGRES_3 = "3.4.10";
const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

before(() => {
  project = mkdtempSync(join(tmpdir(), "month_lock_node_pack."));
});
after(() => rmSync(project, { recursive: true, force: true }));

test("npm pack → npm install in a new project → the original application's cases pass from the tarball", () => {
  // dist/ is built by `npm test` before the suites run; --ignore-scripts keeps prepack from
  // rewriting it while other test files load it.
  const packed = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", project], pkgDir))[0];
  const files: string[] = packed.files.map((f: { path: string }) => f.path);
  for (const f of ["package.json", "README.md", "dist/index.js", "dist/compat.js", "dist/compat.d.ts", "dist/pg.d.ts", "dist/postgres.d.ts"]) {
    assert.ok(files.includes(f), `the tarball has ${f}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("build/") || f.startsWith("node_modules/")), files.join(" "));
  // The license ships, the same text as the repository's; every relative link of the README
  // points into the tarball.
  assert.ok(files.includes("LICENSE"), "the tarball has LICENSE");
  assert.equal(readFileSync(join(pkgDir, "LICENSE"), "utf8"), readFileSync(join(pkgDir, "..", "LICENSE"), "utf8"), "node/LICENSE is the repository's");
  const links = [...readFileSync(join(pkgDir, "README.md"), "utf8").matchAll(/\]\(([^)#][^)]*)\)/g)].map((m) => m[1])
    .filter((l) => !/^[a-z]+:/.test(l));
  for (const l of links) assert.ok(files.includes(l), `README links to ${l}, which the tarball lacks`);

  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "uses-month-lock", private: true, type: "module" }));
  npm(["install", "--no-audit", "--no-fund", "--prefer-offline", `./${packed.filename}`,
    `postgres@${POSTGRES_3}`, `pg@${version("pg")}`, `@types/pg@${version("@types/pg")}`,
    `@types/node@${version("@types/node")}`], project);
  assert.ok(existsSync(join(project, "node_modules", "month-lock", "dist", "compat.js")));
  assert.equal(JSON.parse(readFileSync(join(project, "node_modules", "postgres", "package.json"), "utf8")).version, POSTGRES_3);
  assert.equal(JSON.parse(readFileSync(join(project, "node_modules", "month-lock", "package.json"), "utf8")).dependencies, undefined,
    "no runtime dependency");

  // The compat cases, byte for byte the files the suite runs (the original application's eight,
  // statement_timeout, stacking), importing "month-lock/compat".
  mkdirSync(join(project, "test", "support"), { recursive: true });
  const compatFiles = readdirSync(here).filter((f) => /^compat.*\.test\.js$/.test(f));
  assert.ok(compatFiles.includes("compat.test.js"), compatFiles.join(" "));
  for (const f of compatFiles) copyFileSync(join(here, f), join(project, "test", f));
  for (const f of readdirSync(join(here, "support")).filter((f) => f.endsWith(".js"))) {
    copyFileSync(join(here, "support", f), join(project, "test", "support", f));
  }
  // A run of its own, not a subtest of this runner (NODE_TEST_CONTEXT would make it one).
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const run = spawnSync(process.execPath, ["--test", "--test-reporter=tap", ...compatFiles.map((f) => `test/${f}`)], { cwd: project, encoding: "utf8", env });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const passed = Number(/# pass (\d+)/.exec(run.stdout)?.[1]);
  assert.ok(passed >= 8, `${passed} cases passed from the tarball:\n${run.stdout}`);
  assert.match(run.stdout, /# fail 0/);
});

test("the shipped declarations type-check a consumer of every entry", () => {
  assert.ok(existsSync(join(project, "node_modules", "month-lock")), "installed by the previous test");
  writeFileSync(join(project, "consumer.ts"), [
    'import { withMonthLock, MonthBusyError, type MonthHold } from "month-lock";',
    'import * as viaPg from "month-lock/pg";',
    'import * as viaPostgres from "month-lock/postgres";',
    'import { acquireMonthLock, getAllAdvisoryLocks } from "month-lock/compat";',
    'import pg from "pg";',
    'import postgres from "postgres";',
    "const pool = new pg.Pool();",
    "const sql = postgres({ max: 1, fetch_types: false, prepare: false });",
    "export const a: Promise<number> = viaPg.withMonthLock(pool, \"2024-03\", async (tx, hold: MonthHold) => (await tx.query(\"SELECT 1\")).rowCount ?? 0);",
    "export const b: Promise<string> = viaPostgres.withMonthLock(sql, { year: 2024, month: 3 }, async (tx) => String((await tx`SELECT 1 AS x`)[0].x));",
    "export const c: Promise<boolean> = acquireMonthLock(sql, 2024, 3, 1000);",
    "export const d = getAllAdvisoryLocks(sql).then((rows) => rows.map((r) => [r.year, r.month, r.granted, r.pid]));",
    "export const e: unknown = withMonthLock(pool, new Date(), () => 1).catch((x) => x instanceof MonthBusyError && x.code);",
    "",
  ].join("\n"));
  const tsc = join(pkgDir, "node_modules", "typescript", "bin", "tsc");
  const run = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
    "--target", "es2022", "--types", "node", "consumer.ts"], { cwd: project, encoding: "utf8" });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  // The older resolution (moduleResolution node10, which ignores "exports") finds the subpaths'
  // declarations through typesVersions.
  writeFileSync(join(project, "consumer10.ts"), [
    'import { withMonthLock } from "month-lock";',
    'import * as viaPg from "month-lock/pg";',
    'import * as viaPostgres from "month-lock/postgres";',
    'import { acquireMonthLock } from "month-lock/compat";',
    "export const f: unknown[] = [withMonthLock, viaPg.withMonthLock, viaPostgres.withMonthLock, acquireMonthLock];",
    "",
  ].join("\n"));
  const run10 = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--module", "esnext", "--moduleResolution", "node10",
    "--target", "es2022", "--types", "node", "--skipLibCheck", "consumer10.ts"], { cwd: project, encoding: "utf8" });
  assert.equal(run10.status, 0, run10.stdout + run10.stderr);
});
