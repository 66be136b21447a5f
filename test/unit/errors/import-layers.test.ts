// Imports run downhill (docs/architecture.md, "Layers"): every import in src/
// goes to a lower layer, to its own folder, or along one of the few sideways
// edges listed here with their reason. The HA core imports only the port files
// of the adapter folders, never an adapter. Static imports, `export ... from`
// and dynamic import() all count, type-only imports too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../../src/", import.meta.url));

/** Lowest first. A unit is a top-level folder of src/, or a file directly in src/ (without .ts). */
const LAYERS: readonly (readonly string[])[] = [
  ["errors", "version"],
  ["platform"],
  ["config"],
  ["coordinator", "vip", "daemon", "probes", "hooks", "fence", "sync", "data", "tools", "drain"],
  ["ha"],
  ["api"],
  ["agent"],
  ["cli"],
];

/** Imports between units of the same layer that are allowed, and why. */
const SIDEWAYS: Readonly<Record<string, string>> = {
  "sync->coordinator": "the primary publishes generations through the Coordinator port",
  "tools->daemon": "tool readiness is a Readiness (daemon/port.ts)",
  "tools->vip": "tool checks find arping the way the vip adapter does",
  "data->sync": "data batches use the sync transport's ssh argv and value checks (transport-ssh.ts, transport-values.ts)",
  "data->coordinator": "data reports through the Coordinator port's records (member data summary, data/progress)",
};

/** Units whose imports from the adapter layer must be port files (ha/ imports ports only). */
const PORTS_ONLY = new Set(["ha"]);
const PORT_FILE = /\/ports?\.ts$/;

const layerOf = new Map<string, number>(LAYERS.flatMap((units, i) => units.map((u) => [u, i] as const)));
const ADAPTER_LAYER = layerOf.get("coordinator")!;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** "ha" for src/ha/loop.ts, "agent" for src/agent.ts. */
function unitOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0]! : rel[0]!.replace(/\.ts$/, "");
}

/** Relative module specifiers: `import ... from "x"`, `export ... from "x"`, `import "x"`, `import("x")`. */
function relativeImports(text: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\b[^;'"]*?\bfrom\s*["'](\.[^"']+)["']/g, /\bimport\s*["'](\.[^"']+)["']/g, /\bimport\(\s*["'](\.[^"']+)["']\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1]!);
  return found;
}

interface Edge {
  readonly file: string;
  readonly from: string;
  readonly to: string;
  readonly target: string;
}

function edges(): Edge[] {
  return sourceFiles(SRC).flatMap((file) =>
    relativeImports(readFileSync(file, "utf8")).map((spec) => {
      const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, ".ts");
      return { file: path.relative(SRC, file), from: unitOf(file), to: unitOf(target), target: path.relative(SRC, target) };
    }),
  );
}

test("the import scanner sees every form of import", () => {
  const text = [
    'import { a } from "../x/a.js";',
    'import type { B } from "./b.js";',
    'export { c } from "../c/c.js";',
    'export * from "./d.js";',
    'import "./side.js";',
    'const { e } = await import("../e/e.js");',
    'import {\n  f,\n  g,\n} from "../f/f.js";',
    'import { h } from "node:fs";',
  ].join("\n");
  assert.deepEqual(relativeImports(text).sort(), ["../c/c.js", "../e/e.js", "../f/f.js", "../x/a.js", "./b.js", "./d.js", "./side.js"]);
});

test("every unit of src/ has a layer", () => {
  const units = new Set(sourceFiles(SRC).map(unitOf));
  const missing = [...units].filter((u) => !layerOf.has(u));
  assert.deepEqual(missing, [], `add these to LAYERS in test/unit/import-layers.test.ts and docs/architecture.md: ${missing.join(", ")}`);
});

test("imports run downhill", () => {
  const all = edges();
  assert.ok(all.length > 100, `expected to scan the imports of src/, found ${all.length}`);
  const wrong = all
    .filter((e) => e.from !== e.to)
    .filter((e) => {
      const a = layerOf.get(e.from);
      const b = layerOf.get(e.to);
      if (a === undefined || b === undefined) return true;
      if (b < a) return false;
      return !(b === a && `${e.from}->${e.to}` in SIDEWAYS);
    })
    .map((e) => `${e.file} imports ${e.target} (${e.from} -> ${e.to}: ${layerOf.get(e.to)! > layerOf.get(e.from)! ? "uphill" : "sideways, not listed"})`);
  assert.deepEqual(wrong, [], `imports that do not run downhill:\n${wrong.join("\n")}`);
});

test("the HA core imports only the ports of the adapter folders", () => {
  const wrong = edges()
    .filter((e) => PORTS_ONLY.has(e.from) && layerOf.get(e.to) === ADAPTER_LAYER && !PORT_FILE.test(`/${e.target}`))
    .map((e) => `${e.file} imports ${e.target}: import the folder's port.ts instead`);
  assert.deepEqual(wrong, [], wrong.join("\n"));
});
