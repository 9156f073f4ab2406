// Which driver a `db` argument belongs to, told apart by shape (neither driver is imported).
import { isPgClient, isPgPool, pgDriver } from "./pg.js";
import { isPostgresSql, postgresDriver } from "./postgres.js";
import type { Driver } from "./types.js";

export function driverOf(db: unknown): Driver {
  if (isPostgresSql(db)) return postgresDriver(db);
  if (isPgPool(db) || isPgClient(db)) return pgDriver(db);
  throw new TypeError(
    "month-lock: db must be a postgres.js sql, a pg.Pool, a pg.Client or a pool's client",
  );
}
