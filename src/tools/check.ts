// Checks the programs toolNeeds() lists on this host: `config check` prints
// every problem; the agent turns them into "not ready" (readiness) so a node
// that cannot hold the VIP or run its daemon never campaigns.
import type { Config } from "../config/load.js";
import type { Readiness } from "../daemon/port.js";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { findProgram, notExecutable } from "../platform/programs.js";
import { ProbingArpingLocator, type ArpingLocator, type ArpingTool } from "../vip/arping.js";
import { packageFor, toolNeeds, type ToolNeed } from "./needs.js";

export interface ToolReport {
  readonly problems: UnderstudyError[];
  /** The arping found, when the config needs one. */
  readonly arping: ArpingTool | null;
}

/** `arping`: a locator kept across checks (ToolReadiness), so an unchanged binary is not run again every recheck. */
export async function checkTools(config: Config, runner: CommandRunner, pathEnv: string | undefined = process.env.PATH, arping?: ArpingLocator): Promise<ToolReport> {
  const problems: UnderstudyError[] = [];
  let found: ArpingTool | null = null;
  for (const need of toolNeeds(config)) {
    if (need.kind === "arping") {
      try {
        found = await (arping ?? new ProbingArpingLocator(runner, config.vip?.arping, pathEnv)).locate();
      } catch (e) {
        problems.push(isUnderstudyError(e) ? e : missing(need, `cannot be checked: ${describeError(e)}`));
      }
      continue;
    }
    const problem = programProblem(need.program, pathEnv);
    if (problem) problems.push(missing(need, problem));
  }
  return { problems, arping: found };
}

function programProblem(program: string, pathEnv: string | undefined): string | null {
  if (program.startsWith("/")) return notExecutable(program);
  return findProgram(program, pathEnv) === null ? "is not on PATH, /usr/sbin or /usr/bin" : null;
}

function missing(need: ToolNeed, problem: string): UnderstudyError {
  return new UnderstudyError("US_E_TOOL_MISSING", { program: need.program, setting: need.setting, problem, package: packageFor(need.program) });
}

/** How often a node re-checks its tools: installing the missing package makes it ready within this. */
export const TOOL_RECHECK_MS = 30_000;
/** Every this many rechecks (10 min) arping is run again although its file did not change. */
export const ARPING_REPROBE_EVERY = 20;

/** Readiness from the tool check: the first problem, re-checked every TOOL_RECHECK_MS. */
export class ToolReadiness implements Readiness {
  private last: string | null = null;
  private timer: TimerHandle | undefined;
  private stopped = false;
  private arping: ArpingLocator;
  private runs = 0;

  constructor(
    private readonly config: Config,
    private readonly deps: { runner: CommandRunner; clock: Clock; log: Logger; onChange: () => void },
    initial: ToolReport,
  ) {
    this.last = initial.problems[0]?.message ?? null;
    this.arping = new ProbingArpingLocator(deps.runner, config.vip?.arping);
  }

  problem(): string | null {
    return this.last;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = this.deps.clock.setTimer(TOOL_RECHECK_MS, () => void this.run());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    // An unchanged arping is not run again at every recheck, but every ARPING_REPROBE_EVERY-th one
    // runs it: a binary broken by a removed library keeps its file identity.
    if (++this.runs % ARPING_REPROBE_EVERY === 0) this.arping = new ProbingArpingLocator(this.deps.runner, this.config.vip?.arping);
    const report = await checkTools(this.config, this.deps.runner, process.env.PATH, this.arping).catch((e: unknown) => ({
      problems: [new UnderstudyError("US_E_TOOL_MISSING", { program: "(tool check)", setting: "(all)", problem: describeError(e), package: "-" })],
      arping: null,
    }));
    if (this.stopped) return;
    const problem = report.problems[0]?.message ?? null;
    if (problem !== this.last) {
      if (problem) this.deps.log.error({ err: problem }, "a needed program is missing: this node is not ready");
      else this.deps.log.info("every needed program is installed again: ready");
      this.last = problem;
      this.deps.onChange();
    }
    this.timer = this.deps.clock.setTimer(TOOL_RECHECK_MS, () => void this.run());
  }
}
