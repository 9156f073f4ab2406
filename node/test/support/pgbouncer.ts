// A real PgBouncer in transaction mode in front of the test server, on a free loopback port:
// the stand-in for Cloudflare Hyperdrive and other transaction poolers. A missing binary is a
// test failure, never a skip. PgBouncer refuses to run as root: a root test process starts it
// as the OS user `postgres` (PG_OS_USER). It is started under `setpriv --pdeathsig`, so it
// stops with the test process even if that dies without cleaning up.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Target } from "./env.js";

export function pgbouncerBinary(): string {
  const given = process.env.PGBOUNCER;
  if (given) {
    if (!existsSync(given)) throw new Error(`PGBOUNCER=${given} is not a file`);
    return given;
  }
  const candidates = [
    ...(process.env.PATH ?? "").split(":").map((d) => join(d, "pgbouncer")),
    "/usr/sbin/pgbouncer",
    "/usr/local/sbin/pgbouncer",
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      "pgbouncer binary not found (PGBOUNCER, PATH, /usr/sbin): this test needs a real PgBouncer; " +
        "install it (`apt-get install -y pgbouncer`) or set PGBOUNCER=/path/to/pgbouncer",
    );
  }
  return found;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, "127.0.0.1");
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });
}

export interface PgBouncer {
  /** Where clients connect: the same database and role as `server`, through PgBouncer. */
  target: Target;
  log(): string;
  stop(): Promise<void>;
}

/** Starts PgBouncer (transaction mode, `poolSize` server connections) in front of `server`. */
export async function startPgBouncer(server: Target, poolSize = 4): Promise<PgBouncer> {
  const bin = pgbouncerBinary();
  const dir = mkdtempSync(join(tmpdir(), "month_lock_node_pgbouncer."));
  chmodSync(dir, 0o755);
  const port = await freePort();
  // Clients log in without a password (trust); PgBouncer logs in to the server as the client's
  // role, with the password when the server wants one.
  writeFileSync(join(dir, "userlist.txt"), `"${server.user}" ""\n`, { mode: 0o644 });
  const auth = server.password ? ` user=${server.user} password=${server.password}` : "";
  const ini = [
    "[databases]",
    `* = host=${server.host} port=${server.port}${auth}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = trust",
    `auth_file = ${join(dir, "userlist.txt")}`,
    "pool_mode = transaction",
    `default_pool_size = ${poolSize}`,
    "min_pool_size = 0",
    "reserve_pool_size = 0",
    "max_client_conn = 200",
    "ignore_startup_parameters = extra_float_digits,options",
    "syslog = 0",
    "",
  ].join("\n");
  writeFileSync(join(dir, "pgbouncer.ini"), ini, { mode: 0o644 });

  const args = ["--pdeathsig", "TERM"];
  if (process.getuid?.() === 0) {
    const user = process.env.PG_OS_USER ?? "postgres";
    const uid = execFileSync("id", ["-u", user]).toString().trim();
    const gid = execFileSync("id", ["-g", user]).toString().trim();
    args.push(`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups");
  }
  let log = "";
  const child: ChildProcess = spawn("setpriv", [...args, bin, join(dir, "pgbouncer.ini")], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HOME: "/tmp" },
  });
  child.stdout!.on("data", (d) => (log += d));
  child.stderr!.on("data", (d) => (log += d));
  let exited: string | undefined;
  let stopping = false;
  child.once("exit", (code, signal) => {
    exited = `exit ${code ?? signal}`;
    // Said at once: every later failure of the tests through it follows from this.
    if (!stopping) console.error(`pgbouncer stopped unexpectedly (${exited}); its log:\n${log}`);
  });
  child.once("error", (e) => (exited = String(e)));

  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (exited) throw new Error(`pgbouncer exited at start (${exited}):\n${log}`);
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on ${port}:\n${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const stopAtExit = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stopAtExit);
  return {
    target: { ...server, host: "127.0.0.1", port, password: undefined },
    log: () => log,
    async stop() {
      process.removeListener("exit", stopAtExit);
      stopping = true;
      if (!exited) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
