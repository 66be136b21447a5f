// Help text and the docs/cli.md reference, rendered from the one definition in ./spec.ts.
import { COMMANDS, EXIT, commandsUnder, type CommandSpec } from "./spec.js";

const TAGLINE = "high availability for file-transfer servers";

function usageLine(c: CommandSpec): string {
  const required = Object.entries(c.options)
    .filter(([, o]) => o.required)
    .map(([n, o]) => `--${n} ${o.arg ?? ""}`.trimEnd());
  const optional = Object.values(c.options).some((o) => !o.required) ? ["[options]"] : [];
  return ["understudy", c.name, ...(c.args ? [c.args] : []), ...required, ...optional].join(" ");
}

function optionLines(c: CommandSpec): string[] {
  const rows: [string, string][] = Object.entries(c.options).map(([n, o]) => [`--${n}${o.arg ? ` ${o.arg}` : ""}`, `${o.help}${o.required ? " (required)" : ""}`]);
  rows.push(["-h, --help", "show this help"]);
  const w = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, h]) => `  ${l.padEnd(w)}  ${h}`);
}

/** `understudy COMMAND --help`. */
export function commandHelp(c: CommandSpec): string {
  return [
    `understudy ${c.name}: ${c.summary}`,
    "",
    `Usage: ${usageLine(c)}`,
    "",
    "Options:",
    ...optionLines(c),
    ...(c.notes?.length ? ["", ...c.notes] : []),
    "",
    "Exit codes: `understudy --help` lists them.",
  ].join("\n");
}

function commandList(list: readonly CommandSpec[]): string[] {
  const w = Math.max(...list.map((c) => c.name.length));
  return list.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`);
}

/** `understudy sync --help`: the commands of a group. */
export function groupHelp(word: string): string {
  return [`understudy ${word}: commands`, "", ...commandList(commandsUnder(word)), "", `\`understudy ${word} COMMAND --help\` shows a command's options.`].join("\n");
}

export function exitLines(): string[] {
  return Object.values(EXIT).map((e) => `  ${e.code}  ${e.meaning}`);
}

/** `understudy --help`. */
export function mainHelp(version: string): string {
  return [
    `understudy ${version}: ${TAGLINE}`,
    "",
    "Usage: understudy COMMAND [options]      `understudy COMMAND --help` shows its options",
    "       understudy --version",
    "",
    "Commands:",
    ...commandList(COMMANDS),
    "",
    "Exit codes:",
    ...exitLines(),
  ].join("\n");
}

/** docs/cli.md: every command's help and the exit code table (test/unit/cli/cli-docs.test.ts keeps the file equal to this). */
export function reference(): string {
  const out = [
    "# Command-line reference",
    "",
    "<!-- Generated from src/cli/spec.ts by `npm run docs:cli`; test/unit/cli/cli-docs.test.ts fails when it drifts. -->",
    "",
    "Every command prints this with `understudy COMMAND --help`; `understudy --help` lists them.",
    "",
    "## Exit codes",
    "",
    "One table for every command.",
    "",
    "| code | meaning |",
    "|---|---|",
    ...Object.values(EXIT).map((e) => `| ${e.code} | ${e.meaning.replace(/\|/g, "\\|")} |`),
    "",
    "## Commands",
    "",
  ];
  for (const c of COMMANDS) out.push(`### understudy ${c.name}`, "", "```text", commandHelp(c), "```", "");
  return out.join("\n");
}
