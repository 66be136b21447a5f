import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
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
    /**
     * A file that exists while the stop command may be in force (written before it runs, removed
     * after a resume that worked): at start, a crashed run's refusal is undone by running resume.
     * Null: no marker (tests).
     */
    private readonly marker: string | null = null,
  ) {
    this.method = `the drain.stop_accepting command (${stop[0]})`;
  }

  async stopAccepting(): Promise<void> {
    if (this.marker && this.resume.length > 0) await writeFile(this.marker, `${this.stop.join(" ")}\n`, { mode: 0o600 });
    checkResult(this.stop, await this.runner.run(this.stop, { timeoutMs: TIMEOUT_MS }));
  }

  async resumeAccepting(): Promise<void> {
    if (this.resume.length === 0) return;
    checkResult(this.resume, await this.runner.run(this.resume, { timeoutMs: TIMEOUT_MS }));
    if (this.marker) await rm(this.marker, { force: true });
  }

  async clearLeftover(): Promise<void> {
    if (this.marker && existsSync(this.marker)) await this.resumeAccepting();
  }
}
