// Dispatch: find the command in the one definition (./spec.ts), answer --help
// from it, parse with node:util parseArgs against its options, load the
// command's code only then, and map any error to the exit code table.
import { parseArgs } from "node:util";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import { EXIT, COMMANDS, closest, commandsUnder, topWords, type CommandSpec, type Parsed } from "./spec.js";
import { commandHelp, groupHelp, mainHelp } from "./help.js";
import { printable, type Io } from "./io.js";

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

const wantsHelp = (args: readonly string[]) => {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
};

/** The exit code for an error a command threw (see EXIT in ./spec.ts). */
export function exitCodeFor(e: unknown): number {
  if (!isUnderstudyError(e)) return EXIT.FAILURE.code;
  if (e.code === "US_E_CLI_USAGE" || e.code === "US_E_API_TOKEN" || e.code.startsWith("US_E_CONFIG")) return EXIT.USAGE.code;
  if (e.code === "US_E_API_UNAUTHORIZED") return EXIT.UNAUTHORIZED.code;
  if (e.code === "US_E_API_PRECONDITION" || e.code === "US_E_API_BAD_REQUEST") return EXIT.REFUSED.code;
  if (e.code === "US_E_CLUSTER_UNKNOWN") return EXIT.UNKNOWN_CLUSTER.code;
  return EXIT.FAILURE.code;
}

/** Which command argv names, and the arguments after its name; or a help/usage answer. */
function resolve(argv: readonly string[]): { spec: CommandSpec; rest: readonly string[] } | { text: string; code: number } {
  const [first, second] = argv;
  const two = COMMANDS.find((c) => c.name === `${first} ${second}`);
  if (two) return { spec: two, rest: argv.slice(2) };
  const one = COMMANDS.find((c) => c.name === first);
  if (one) return { spec: one, rest: argv.slice(1) };
  const group = commandsUnder(first!);
  if (group.length > 0) {
    if (second === undefined || second === "--help" || second === "-h") return { text: groupHelp(first!), code: second === undefined ? EXIT.USAGE.code : EXIT.OK.code };
    const guess = closest(
      `${first} ${second}`,
      group.map((c) => c.name),
    );
    throw usage(`unknown ${first} subcommand ${JSON.stringify(second)}${guess ? ` (did you mean \`${guess}\`?)` : ""}`);
  }
  const guess = closest(first!, [...COMMANDS.map((c) => c.name), ...topWords()]);
  throw usage(`unknown command ${JSON.stringify(first)}${guess ? ` (did you mean \`${guess}\`?)` : ""}`);
}

function parse(spec: CommandSpec, args: readonly string[]): Parsed {
  const options = Object.fromEntries(Object.entries(spec.options).map(([n, o]) => [n, { type: o.type }]));
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (e) {
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(describeError(e));
    if (unknown) {
      const guess = closest(unknown[1]!.replace(/^-+/, "").split("=")[0]!, Object.keys(spec.options));
      throw usage(`unknown option ${unknown[1]} for \`understudy ${spec.name}\`${guess ? ` (did you mean --${guess}?)` : ""}`);
    }
    const positional = /Unexpected argument '([^']*)'/.exec(describeError(e));
    if (positional) throw usage(`\`understudy ${spec.name}\` takes no argument ${JSON.stringify(positional[1])}`);
    throw usage(`understudy ${spec.name}: ${describeError(e).replace(/\. To specify.*$/s, "")}`);
  }
  const p = spec.positionals;
  if (p && (parsed.positionals.length < p.min || parsed.positionals.length > p.max)) {
    throw usage(
      `\`understudy ${spec.name}\` takes ${p.min === p.max ? `exactly ${p.min}` : `${p.min} to ${p.max}`} ${spec.args ?? "argument"}${p.max > 1 ? "s" : ""}, got ${parsed.positionals.length}`,
    );
  }
  for (const [n, o] of Object.entries(spec.options)) {
    if (o.required && parsed.values[n] === undefined) throw usage(`\`understudy ${spec.name}\` needs --${n}${o.arg ? ` ${o.arg}` : ""}`);
  }
  return parsed;
}

/**
 * The command and parsed arguments argv names, without running it; throws
 * US_E_CLI_USAGE like main() would. For tests that check the docs' commands.
 */
export function parseCommandLine(argv: readonly string[]): { spec: CommandSpec; parsed: Parsed } | { help: string } {
  if (argv.length === 0 || ["--help", "-h", "--version", "-V"].includes(argv[0]!)) return { help: "main" };
  if (argv[0] === "help") return argv.length === 1 ? { help: "main" } : parseCommandLine([...argv.slice(1), "--help"]);
  const found = resolve(argv);
  if ("text" in found) return { help: found.text };
  if (wantsHelp(found.rest)) return { help: commandHelp(found.spec) };
  return { spec: found.spec, parsed: parse(found.spec, found.rest) };
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const first = argv[0];
  if (first === "--version" || first === "-V") {
    io.out((await import("../version.js")).VERSION);
    return EXIT.OK.code;
  }
  if (first === undefined || first === "--help" || first === "-h" || (first === "help" && argv.length === 1)) {
    const { VERSION } = await import("../version.js");
    (first === undefined ? io.err : io.out)(mainHelp(VERSION));
    return first === undefined ? EXIT.USAGE.code : EXIT.OK.code;
  }
  if (first === "help") return dispatch([...argv.slice(1), "--help"], io);
  const found = resolve(argv);
  if ("text" in found) {
    (found.code === EXIT.OK.code ? io.out : io.err)(found.text);
    return found.code;
  }
  if (wantsHelp(found.rest)) {
    io.out(commandHelp(found.spec));
    return EXIT.OK.code;
  }
  const parsed = parse(found.spec, found.rest);
  const handler = await found.spec.load();
  return handler(parsed, io);
}

/** The whole CLI: argv after `understudy`, to an exit code. Never throws. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    io.err(`understudy: ${printable(describeError(e))}`);
    return exitCodeFor(e);
  }
}
