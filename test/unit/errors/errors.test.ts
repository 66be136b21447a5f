// Keeps the error catalogue (src/errors/catalogue.ts) and docs/errors.md in step,
// both ways, and checks how UnderstudyError renders its template.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ERROR_CATALOGUE, UnderstudyError, describeError, isUnderstudyError, type ErrorCode } from "../../../src/errors/catalogue.js";

const DOC = fileURLToPath(new URL("../../../docs/errors.md", import.meta.url));
const SRC = fileURLToPath(new URL("../../../src/", import.meta.url));
const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

interface DocRow {
  readonly code: string;
  readonly transient: string;
  readonly template: string;
  readonly meaning: string;
  readonly action: string;
  readonly line: number;
}

/** Strip one Markdown code span: `x` or `` x `` (the form used when x itself holds a backtick). */
function unCode(cell: string): string {
  const double = /^``(.*)``$/.exec(cell);
  if (double) {
    const inner = double[1]!;
    return inner.startsWith(" ") && inner.endsWith(" ") && inner.trim() !== "" ? inner.slice(1, -1) : inner;
  }
  const single = /^`([^`]*)`$/.exec(cell);
  return single ? single[1]! : cell;
}

/** Split a Markdown table row into cells, leaving `|` inside code spans alone. */
function cells(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let fence = 0; // length of the backtick run that opened the current code span
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "`") {
      let run = 1;
      while (line[i + run] === "`") run++;
      if (fence === 0) fence = run;
      else if (fence === run) fence = 0;
      cur += "`".repeat(run);
      i += run - 1;
    } else if (ch === "|" && fence === 0) {
      out.push(cur.trim());
      cur = "";
    } else {
      cur += ch;
    }
  }
  out.push(cur.trim());
  // A row "| a | b |" splits to ["", "a", "b", ""].
  return out.slice(1, -1);
}

function docRows(): DocRow[] {
  const rows: DocRow[] = [];
  readFileSync(DOC, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (!line.startsWith("| `US_E_")) return;
      const c = cells(line);
      assert.equal(c.length, 5, `docs/errors.md line ${i + 1} should have 5 columns, has ${c.length}: ${line}`);
      rows.push({ code: unCode(c[0]!), transient: c[1]!, template: unCode(c[2]!), meaning: c[3]!, action: c[4]!, line: i + 1 });
    });
  return rows;
}

test("every catalogue code is named US_E_ plus upper-case words", () => {
  assert.ok(CODES.length > 0, "CODES.length > 0");
  for (const code of CODES) assert.match(code, /^US_E_[A-Z_]+$/, code);
});

test("every catalogue entry has a non-empty template and a boolean transient flag", () => {
  for (const code of CODES) {
    const spec = ERROR_CATALOGUE[code];
    assert.equal(typeof spec.transient, "boolean", code);
    assert.ok(spec.message.trim().length > 0, code);
  }
});

test("docs/errors.md documents every catalogue code with its exact template and transient flag", () => {
  const rows = new Map(docRows().map((r) => [r.code, r]));
  const missing = CODES.filter((c) => !rows.has(c));
  assert.deepEqual(missing, [], `codes missing from docs/errors.md: ${missing.join(", ")}`);
  for (const code of CODES) {
    const row = rows.get(code)!;
    const spec = ERROR_CATALOGUE[code];
    assert.equal(row.template, spec.message, `${code}: template in docs/errors.md (line ${row.line}) differs from the catalogue`);
    assert.equal(row.transient, spec.transient ? "yes" : "no", `${code}: transient column (line ${row.line})`);
    assert.ok(row.meaning.length >= 20, `${code}: say what it means for an operator (line ${row.line})`);
    assert.ok(row.action.length >= 10, `${code}: say what to do (line ${row.line})`);
  }
});

test("docs/errors.md documents only codes that exist, each once", () => {
  const rows = docRows();
  const unknown = rows.map((r) => r.code).filter((c) => !(c in ERROR_CATALOGUE));
  assert.deepEqual(unknown, [], `docs/errors.md lists codes that are not in the catalogue: ${unknown.join(", ")}`);
  const seen = new Set<string>();
  const dupes = rows.map((r) => r.code).filter((c) => (seen.has(c) ? true : (seen.add(c), false)));
  assert.deepEqual(dupes, [], `docs/errors.md lists codes twice: ${dupes.join(", ")}`);
  for (const r of rows) assert.match(r.code, /^US_E_[A-Z_]+$/, `line ${r.line}`);
});

test("the table parser copes with a template holding backticks and pipes", () => {
  assert.deepEqual(cells("| `A` | no | `` x `y` `` | m | `a|b` c |"), ["`A`", "no", "`` x `y` ``", "m", "`a|b` c"]);
  assert.equal(unCode("`` {problem}; see `understudy --help` ``"), "{problem}; see `understudy --help`");
  assert.equal(unCode("`plain`"), "plain");
});

test("UnderstudyError renders the template from details and keeps code, transient and details", () => {
  const details = { file: "/etc/understudy/understudy.yaml", path: "election.ttl", problem: "must be at least 1s", value: "500ms" };
  const e = new UnderstudyError("US_E_CONFIG_TIMING", details);
  assert.ok(e instanceof Error, "e instanceof Error");
  assert.equal(e.name, "UnderstudyError");
  assert.equal(e.code, "US_E_CONFIG_TIMING");
  assert.equal(e.transient, false);
  assert.deepEqual(e.details, details);
  assert.equal(e.message, "US_E_CONFIG_TIMING: config file /etc/understudy/understudy.yaml: election.ttl: must be at least 1s (got 500ms)");
  assert.equal(describeError(e), e.message);
});

test("UnderstudyError renders numbers and booleans, and leaves unknown placeholders visible", () => {
  const e = new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: "arping", timeout_ms: 300 });
  assert.equal(e.message, "US_E_COMMAND_TIMEOUT: command arping did not finish within 300 ms");
  assert.equal(e.transient, true);
  const partial = new UnderstudyError("US_E_VIP_ADD", { address: "198.18.0.100/24" });
  assert.equal(partial.message, "US_E_VIP_ADD: cannot add 198.18.0.100/24 to {interface}: {cause}");
  assert.deepEqual(new UnderstudyError("US_E_ETCD_UNREACHABLE").details, {});
});

test("UnderstudyError keeps its cause", () => {
  const cause = new Error("ECONNREFUSED");
  const e = new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "http://198.18.0.2:2379", cause: "ECONNREFUSED" }, { cause });
  assert.equal(e.cause, cause);
  assert.equal(e.message, "US_E_ETCD_UNREACHABLE: etcd is unreachable at http://198.18.0.2:2379: ECONNREFUSED");
});

test("every code renders with all placeholders filled and carries its catalogue transient flag", () => {
  for (const code of CODES) {
    const spec = ERROR_CATALOGUE[code];
    const names = [...spec.message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const details = Object.fromEntries(names.map((n) => [n, `<${n}>`]));
    const e = new UnderstudyError(code, details);
    assert.equal(e.code, code);
    assert.equal(e.transient, spec.transient, code);
    assert.ok(e.message.startsWith(`${code}: `), code);
    assert.doesNotMatch(e.message, /\{\w+\}/, `${code}: unfilled placeholder in ${e.message}`);
    for (const n of names) assert.ok(e.message.includes(`<${n}>`), `${code}: ${n}`);
  }
});

test("isUnderstudyError matches by type and, optionally, by code", () => {
  const e = new UnderstudyError("US_E_CONFIG_READ", { file: "x", cause: "ENOENT" });
  assert.equal(isUnderstudyError(e), true);
  assert.equal(isUnderstudyError(e, "US_E_CONFIG_READ"), true);
  assert.equal(isUnderstudyError(e, "US_E_CONFIG_PARSE"), false);
  assert.equal(isUnderstudyError(new Error("US_E_CONFIG_READ")), false);
  assert.equal(isUnderstudyError("US_E_CONFIG_READ"), false);
});

/** Every .ts file under src/, as [path relative to src/, text]. */
function sources(): [string, string][] {
  return (readdirSync(SRC, { recursive: true, encoding: "utf8" }) as string[])
    .filter((f) => f.endsWith(".ts"))
    .sort()
    .map((f) => [f.split("\\").join("/"), readFileSync(`${SRC}${f}`, "utf8")]);
}

test("every US_E_ code named in src/ is in the catalogue (so in docs/errors.md), and every catalogue code is used in src/", () => {
  const used = new Map<string, string>();
  for (const [file, text] of sources()) {
    if (file === "errors/catalogue.ts") continue;
    for (const m of text.matchAll(/\bUS_E_[A-Z]+(?:_[A-Z]+)*\b/g)) if (!used.has(m[0])) used.set(m[0], file);
  }
  // A family prefix (`e.code.startsWith("US_E_CONFIG")`, "US_E_CONFIG_*" in a comment) is not a code.
  const family = (name: string) => CODES.some((c) => c.startsWith(`${name}_`));
  const unknown = [...used].filter(([c]) => !(c in ERROR_CATALOGUE) && !family(c)).map(([c, f]) => `${c} (src/${f})`);
  assert.deepEqual(unknown, [], `codes used in src/ but not in the catalogue nor docs/errors.md: ${unknown.join(", ")}`);
  const unused = CODES.filter((c) => !used.has(c));
  assert.deepEqual(unused, [], `codes in the catalogue and docs/errors.md that src/ never uses: ${unused.join(", ")}`);
});

/**
 * Files under src/ allowed a bare `new Error(` (or TypeError, RangeError, SyntaxError), with how many and why. Everything
 * else throws UnderstudyError with a catalogue code.
 */
const BARE_ERROR_ALLOWED: ReadonlyMap<string, { count: number; why: string }> = new Map([
  ["platform/exit-backstop.ts", { count: 1, why: "never thrown: captures a stack" }],
  // parseVipAddress guards values the config schema already refused (a unit test asserts the TypeError);
  // heldPrefixes' TypeError is wrapped into US_E_COMMAND_FAILED by the adapter's observe().
  ["vip/ip.ts", { count: 2, why: "argument guards under a coded boundary (config schema, US_E_COMMAND_FAILED)" }],
  // The worker thread runs plain JS and cannot import the catalogue; what it throws crosses back as errno-style
  // text, and buildManifest (manifest.ts) reports it as US_E_SYNC_UNREADABLE with the root and path.
  ["sync/hasher.ts", { count: 2, why: "worker-side ENOTFILE, the internal too-large marker (manifest.ts reports it coded)" }],
  ["api/validate.ts", { count: 1, why: "a route registered with a JSON schema: fails the API's start (a programming error), never a request" }],
  ["sync/listing.ts", { count: 1, why: "workerError: a worker's errno error re-created (manifest.ts reports it as US_E_SYNC_UNREADABLE)" }],
]);

test("src/ throws no bare `new Error(` outside the named allowlist, and the allowlist is not stale", () => {
  const found = new Map<string, number>();
  for (const [file, text] of sources()) {
    const n = [...text.matchAll(/\bnew (?:Type|Range|Syntax)?Error\(|(?<![\w.])(?:Type|Range|Syntax)?Error\(/g)].length;
    if (n > 0) found.set(file, n);
  }
  const extra = [...found].filter(([f, n]) => n > (BARE_ERROR_ALLOWED.get(f)?.count ?? 0)).map(([f, n]) => `src/${f} (${n})`);
  assert.deepEqual(extra, [], `bare Error in src/: throw new UnderstudyError("US_E_...") with a code in src/errors/catalogue.ts and docs/errors.md instead: ${extra.join(", ")}`);
  const stale = [...BARE_ERROR_ALLOWED].filter(([f, a]) => (found.get(f) ?? 0) < a.count).map(([f, a]) => `src/${f} (allowed ${a.count}, found ${found.get(f) ?? 0})`);
  assert.deepEqual(stale, [], `lower or drop these BARE_ERROR_ALLOWED entries: ${stale.join(", ")}`);
});
