// The extension's schema, looked up once per connection or pool and put into the statements
// of sql.ts in place of `@extschema@`, so that they do not depend on the caller's search_path.
import * as SQL from "./sql.js";

const PLACEHOLDER = "@extschema@";

interface Known {
  schema?: string;
  pending?: Promise<string>;
}
const known = new WeakMap<object, Known>();

/** The extension is not installed in the database the connection is in. */
function notInstalled(): Error {
  return Object.assign(new Error("month-lock: the month_lock extension is not installed in this database (CREATE EXTENSION month_lock)"), {
    code: "42704",
  });
}

/**
 * `text` with the extension's schema in place of `@extschema@`: at once (synchronously, so
 * that statements keep the order they are sent in) once `key`'s schema is known, otherwise
 * after `ask` has run the lookup (one statement, the first time only).
 */
export function qualify(key: object, text: string, ask: (text: string) => PromiseLike<Array<{ schema: string }>>): string | Promise<string> {
  if (!text.includes(PLACEHOLDER)) return text;
  let k = known.get(key);
  if (k === undefined) known.set(key, (k = {}));
  if (k.schema !== undefined) return fill(text, k.schema);
  const entry = k;
  entry.pending ??= Promise.resolve(ask(SQL.EXT_SCHEMA)).then(
    (rows) => {
      if (rows.length === 0) throw notInstalled();
      entry.pending = undefined;
      return (entry.schema = rows[0].schema);
    },
    (error: unknown) => {
      entry.pending = undefined;
      throw error;
    },
  );
  return entry.pending.then((schema) => fill(text, schema));
}

function fill(text: string, schema: string): string {
  return text.split(PLACEHOLDER).join(schema);
}
