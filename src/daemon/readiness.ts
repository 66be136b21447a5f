import { describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import type { Readiness } from "./port.js";

// The Readiness port, ALWAYS_READY and allReady live in port.ts (the HA core imports ports only).

/**
 * A standby's answer to "could you serve if promoted?", from a user command
 * such as `sshd -t -f /etc/ssh/sshd_config` run every check_interval. With no
 * command configured the node is always ready. Pacemaker calls this a monitor.
 */
export class ReadinessCheck implements Readiness {
  private last: string | null = null;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly argv: readonly string[] | undefined,
    private readonly intervalMs: number,
    private readonly deps: { runner: CommandRunner; clock: Clock; log: Logger; onChange: () => void },
  ) {}

  problem(): string | null {
    return this.last;
  }

  start(): void {
    if (!this.argv || this.timer) return;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private async run(): Promise<void> {
    const argv = this.argv!;
    let problem: string | null;
    try {
      const r = await this.deps.runner.run(argv, { timeoutMs: Math.min(this.intervalMs, 30_000) });
      problem = r.code === 0 ? null : `${argv[0]} exited ${r.code ?? r.signal}: ${r.stderr.trim().split("\n")[0] ?? ""}`.trim();
    } catch (e) {
      problem = `${argv[0]}: ${describeError(e)}`;
    }
    if (this.stopped) return;
    if (problem !== this.last) {
      if (problem) this.deps.log.warn({ problem }, "readiness check failing: this standby will not campaign");
      else this.deps.log.info("readiness check passes");
      this.last = problem;
      this.deps.onChange();
    }
    this.timer = this.deps.clock.setTimer(this.intervalMs, () => void this.run());
  }
}
