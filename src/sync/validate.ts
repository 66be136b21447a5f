// Runs a root's validator (e.g. `sshd -t -f {staged}/sshd_config`) against the
// staged copy, so a broken config from the primary never goes live here.
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { CommandRunner } from "../platform/command.js";
import { STAGED_TOKEN, substitutePlaceholders } from "./placeholders.js";

export { STAGED_TOKEN };

// Enough of stderr to say what is wrong without flooding a log line.
const STDERR_LINES = 5;
const STDERR_CHARS = 500;

/** Replace every literal `{staged}` inside each argv element; no shell, so no quoting concerns. */
export function substituteStaged(argv: readonly string[], stagedDir: string): string[] {
  return argv.map((a) => a.split(STAGED_TOKEN).join(stagedDir));
}

/**
 * Throws US_E_SYNC_VALIDATOR_FAILED unless the validator exits 0 within `timeoutMs`.
 * `named` resolves `{staged:NAME}` (placeholders.ts); without it such an argument is refused.
 */
export async function runValidator(argv: readonly string[], stagedDir: string, runner: CommandRunner, timeoutMs: number, named?: (root: string) => string | undefined): Promise<void> {
  const fail = (code: string | number, stderr: string, cause?: unknown) =>
    new UnderstudyError("US_E_SYNC_VALIDATOR_FAILED", { argv0: argv[0] ?? "(none)", staged: stagedDir, code, stderr: firstLines(stderr) }, cause === undefined ? undefined : { cause });
  if (argv.length === 0 || argv[0] === "") throw fail("not run", "empty validator command");
  let result;
  try {
    result = await runner.run(substitutePlaceholders(argv, stagedDir, named), { timeoutMs });
  } catch (e) {
    if (isUnderstudyError(e, "US_E_COMMAND_TIMEOUT")) throw fail("timeout", `no answer within ${timeoutMs} ms`, e);
    throw fail("not run", describeError(e), e);
  }
  // Both streams: some checkers print their verdict on stdout and the reason on stderr (proftpd -t).
  if (result.code !== 0) throw fail(result.code ?? `signal ${result.signal}`, [result.stderr, result.stdout].filter((x) => x.trim() !== "").join("\n"));
}

function firstLines(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l !== "");
  const head = lines.slice(0, STDERR_LINES).join(" | ");
  return head.length > STDERR_CHARS ? `${head.slice(0, STDERR_CHARS)}…` : head;
}
