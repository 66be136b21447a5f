import { checkResult, type CommandRunner } from "../platform/command.js";
import type { SessionGate } from "./port.js";

// A daemon's own way to refuse new sessions (ProFTPD's ftpshut, SFTPGo's
// graceful stop with grace_time): the drain.stop_accepting and
// drain.resume_accepting argv lists, run directly (never through a shell).

const TIMEOUT_MS = 30_000;

export class CommandDrainGate implements SessionGate {
  readonly method: string;

  constructor(
    private readonly runner: CommandRunner,
    private readonly stop: readonly string[],
    /** Empty: nothing to run to accept again (the daemon's own rules bring it back). */
    private readonly resume: readonly string[],
  ) {
    this.method = `the drain.stop_accepting command (${stop[0]})`;
  }

  async stopAccepting(): Promise<void> {
    checkResult(this.stop, await this.runner.run(this.stop, { timeoutMs: TIMEOUT_MS }));
  }

  async resumeAccepting(): Promise<void> {
    if (this.resume.length > 0) checkResult(this.resume, await this.runner.run(this.resume, { timeoutMs: TIMEOUT_MS }));
  }

  async clearLeftover(): Promise<void> {
    // A command gate leaves nothing understudy can see; the resume command is not run at every start.
  }
}
