// The server the tests run against, a fresh database per test file with the extension created
// by a superuser, and an ordinary role the tests act as.
//
// The server comes from DATABASE_URL, or from the libpq variables PGHOST (a host or a Unix
// socket directory), PGPORT, PGUSER, PGPASSWORD, PGDATABASE; that role must be a superuser
// (it runs CREATE EXTENSION month_lock). Without a server every test fails: nothing skips.
import pg from "pg";
import postgres from "postgres";
import { randomBytes } from "node:crypto";

export interface Target {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
}

export function serverTarget(): Target {
  const url = process.env.DATABASE_URL;
  if (url) {
    const u = new URL(url);
    const socket = u.searchParams.get("host");
    return {
      host: socket ?? (decodeURIComponent(u.hostname) || "localhost"),
      port: Number(u.port || 5432),
      user: decodeURIComponent(u.username || process.env.PGUSER || "postgres"),
      password: u.password ? decodeURIComponent(u.password) : process.env.PGPASSWORD,
      database: decodeURIComponent(u.pathname.slice(1)) || "postgres",
    };
  }
  if (!process.env.PGHOST || !process.env.PGPORT) {
    throw new Error(
      "no server: set DATABASE_URL (a superuser's URL) or PGHOST/PGPORT/PGUSER/PGDATABASE; " +
        "`make node-test` starts a throwaway one",
    );
  }
  return {
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    user: process.env.PGUSER ?? "postgres",
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE ?? "postgres",
  };
}

/** A pg client config for a target. */
export function pgConfig(t: Target, extra: pg.ClientConfig = {}): pg.ClientConfig {
  return { host: t.host, port: t.port, user: t.user, password: t.password, database: t.database, ...extra };
}

export async function pgClient(t: Target, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client(pgConfig(t, extra));
  await c.connect();
  return c;
}

export function pgPool(t: Target, extra: pg.PoolConfig = {}): pg.Pool {
  return new pg.Pool({ ...pgConfig(t), max: 4, ...extra });
}

/** A postgres.js sql; notices are not printed. */
export function postgresSql(t: Target, extra: postgres.Options<{}> = {}): postgres.Sql {
  return postgres({
    host: t.host, port: t.port, user: t.user, pass: t.password, database: t.database,
    onnotice: () => undefined, ...extra,
  });
}

/** The original application's postgres.js settings. */
export const ORIGINAL_SETTINGS = { max: 1, fetch_types: false, prepare: false } as const;

export interface TestDb {
  /** As the ordinary role. */
  app: Target;
  /** As the superuser, in the test database. */
  admin: Target;
  /** A superuser client in the test database, for checks behind the tests' back. */
  observer: pg.Client;
  /** Drops the database and the role. */
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file, with `CREATE EXTENSION month_lock` run by the
 * superuser, and an ordinary role (no superuser, no CREATEROLE) that owns nothing but may
 * use and create in schema public.
 */
export async function createTestDb(name: string): Promise<TestDb> {
  const server = serverTarget();
  const suffix = `${name}_${process.pid}_${randomBytes(3).toString("hex")}`.toLowerCase();
  const database = `mln_${suffix}`;
  const role = `mln_app_${suffix}`;
  const password = randomBytes(12).toString("hex");
  const root = await pgClient(server);
  try {
    await root.query(`CREATE DATABASE ${database}`);
    await root.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`);
  } finally {
    await root.end();
  }
  const admin = { ...server, database };
  const setup = await pgClient(admin);
  try {
    await setup.query("CREATE EXTENSION month_lock");
    await setup.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
  } finally {
    await setup.end();
  }
  const observer = await pgClient(admin, { application_name: "observer" });
  return {
    app: { ...server, database, user: role, password },
    admin,
    observer,
    async drop() {
      await observer.end().catch(() => undefined);
      const c = await pgClient(server);
      try {
        await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        await c.query(`DROP ROLE IF EXISTS ${role}`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Resolves once `check` returns true; fails after `ms`. Polls every 5 ms. */
export async function waitUntil(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until backend `pid` is queued for a month lock (a `month_locks` row with granted = false). */
export async function waitUntilWaiting(observer: pg.Client, pid: number): Promise<void> {
  await waitUntil(`pid ${pid} waits for a month`, async () =>
    (await observer.query("SELECT 1 FROM month_locks WHERE pid = $1 AND NOT granted", [pid])).rowCount === 1);
}

/** Backends of the test database's ordinary role that wait for a month lock. */
export async function waitingPids(observer: pg.Client): Promise<number[]> {
  return (await observer.query("SELECT pid FROM month_locks WHERE NOT granted ORDER BY waiting_since")).rows.map((r) => r.pid);
}

/** Every month lock row, "YYYY-MM mode granted|waiting pid". */
export async function lockRows(observer: pg.Client): Promise<string[]> {
  const { rows } = await observer.query(
    "SELECT format('%s-%s %s %s %s', year, lpad(month::text, 2, '0'), mode, CASE WHEN granted THEN 'granted' ELSE 'waiting' END, pid) AS r FROM month_locks",
  );
  return rows.map((r) => r.r);
}

export async function backendPid(c: pg.Client | pg.PoolClient): Promise<number> {
  return (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
}
