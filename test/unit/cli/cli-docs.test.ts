// The CLI's one definition (src/cli/spec.ts) against what users read: every
// command's --help, docs/cli.md (generated: `npm run docs:cli`), and every
// `understudy ...` command line quoted in README.md and docs/*.md, which must
// parse with the real parser. Exit codes are documented once, in docs/cli.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { COMMANDS, EXIT, closest, distance } from "../../../src/cli/spec.js";
import { commandHelp, reference } from "../../../src/cli/help.js";
import { parseCommandLine } from "../../../src/cli/run.js";
import { cli } from "./cli-helpers.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const read = (f: string) => readFileSync(`${ROOT}${f}`, "utf8");

test("docs/cli.md is rendered from the definition (run `npm run docs:cli` after changing src/cli/spec.ts)", () => {
  assert.equal(read("docs/cli.md"), reference());
});

test("`understudy CMD --help`, `understudy help CMD` and `-h` print the command's help, exit 0", async () => {
  for (const c of COMMANDS) {
    const words = c.name.split(" ");
    for (const argv of [
      [...words, "--help"],
      ["help", ...words],
      [...words, "-h"],
      [...words, "--json", "--help"],
    ]) {
      if (argv.includes("--json") && !("json" in c.options)) continue;
      const r = await cli(argv);
      assert.equal(r.code, 0, `${argv.join(" ")}: ${r.err}`);
      assert.equal(r.out, commandHelp(c), argv.join(" "));
    }
    for (const [name, o] of Object.entries(c.options)) assert.ok(commandHelp(c).includes(`--${name}${o.arg ? ` ${o.arg}` : ""}`), `${c.name} --help shows --${name}`);
  }
});

test("`understudy --help` lists every command and every exit code; a group lists its subcommands", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0);
  for (const c of COMMANDS) assert.match(r.out, new RegExp(`^  ${c.name} +${c.summary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  for (const e of Object.values(EXIT)) assert.ok(r.out.includes(`  ${e.code}  ${e.meaning}`), `exit ${e.code}`);
  const g = await cli(["sync", "--help"]);
  assert.equal(g.code, 0);
  for (const c of COMMANDS.filter((x) => x.name.startsWith("sync "))) assert.ok(g.out.includes(c.name), "g.out.includes(c.name)");
});

/** Shell-like words of a command line (double quotes only), comment and synopsis brackets dropped. */
function words(line: string): string[] {
  return [
    ...line
      .replace(/\s#.*$/, "")
      .replace(/[[\]]/g, "")
      .replace(/<[^>]*>/g, "PLACEHOLDER")
      .matchAll(/"([^"]*)"|(\S+)/g),
  ].map((m) => m[1] ?? m[2]!);
}

function quotedCommands(text: string): string[] {
  const found: string[] = [];
  let fenced = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    else if (fenced && /^\s*understudy /.test(line)) found.push(line.trim());
    else if (!fenced) for (const m of line.matchAll(/`(understudy [^`]+)`/g)) found.push(m[1]!);
  }
  // Alternatives ("a | b"), elisions ("..."), placeholders (COMMAND) and help lines ("understudy x: ...") are prose.
  return found.filter((c) => !/[|…]|\.\.\.|[A-Z]{4,} --help|^understudy [^ ]+( [^ -][^ ]*)?:/.test(c) && !/^understudy COMMAND/.test(c));
}

test("every `understudy ...` command line in README.md and docs/*.md parses with the real parser", () => {
  const files = [
    "README.md",
    ...readdirSync(`${ROOT}docs`)
      .filter((f) => f.endsWith(".md") && f !== "cli.md")
      .map((f) => `docs/${f}`),
  ];
  let checked = 0;
  for (const f of files) {
    for (const line of quotedCommands(read(f))) {
      const argv = words(line).slice(1);
      checked++;
      // A bare name in prose (`understudy vip release`) names a command; a line with arguments must parse.
      if (COMMANDS.some((c) => c.name === argv.join(" "))) continue;
      try {
        parseCommandLine(argv);
      } catch (e) {
        assert.fail(`${f}: \`${line}\` does not parse: ${String(e)}`);
      }
    }
  }
  assert.ok(checked >= 20, `checked ${checked} command lines`);
});

test("exit codes are listed once: README and docs/operations.md point to docs/cli.md#exit-codes", () => {
  for (const f of ["README.md", "docs/operations.md"]) {
    const text = read(f);
    assert.match(text, /cli\.md#exit-codes/, `${f} links the table`);
    assert.doesNotMatch(text, /Exit codes: 0 /, `${f} does not keep its own copy`);
  }
});

test("did-you-mean: swaps count as one edit; nothing is suggested when nothing is close", () => {
  assert.equal(distance("swtichover", "switchover"), 1);
  assert.equal(distance("lba", "lab"), 1);
  assert.equal(distance("kitten", "sitting"), 3);
  assert.equal(closest("swtichover", ["switchover", "failover"]), "switchover");
  assert.equal(closest("b", ["a"]), undefined, "one letter is no evidence");
  assert.equal(
    closest(
      "frobnicate",
      COMMANDS.map((c) => c.name),
    ),
    undefined,
  );
});
