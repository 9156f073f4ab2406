// The README shows the example that CI type-checks, byte for byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("README.md contains examples/hyperdrive-worker.ts verbatim", () => {
  const readme = readFileSync(join(pkgDir, "README.md"), "utf8");
  const example = readFileSync(join(pkgDir, "examples", "hyperdrive-worker.ts"), "utf8");
  assert.ok(readme.includes("```ts\n" + example + "```"), "README and example differ");
});
