import type { CommandOptions, CommandResult, CommandRunner } from "../../src/platform/command.js";

export interface Expectation {
  readonly argv: readonly string[];
  readonly result?: Partial<CommandResult>;
  readonly error?: Error;
}

/**
 * A strict CommandRunner: every call must match the next expectation exactly,
 * in order, or the test fails. `done()` asserts nothing was left unconsumed.
 */
export class StrictCommandRunner implements CommandRunner {
  readonly calls: { argv: readonly string[]; options?: CommandOptions }[] = [];
  private readonly queue: Expectation[] = [];

  expect(argv: readonly string[], result: Partial<CommandResult> = {}): this {
    this.queue.push({ argv, result });
    return this;
  }
  expectError(argv: readonly string[], error: Error): this {
    this.queue.push({ argv, error });
    return this;
  }
  async run(argv: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    this.calls.push({ argv, ...(options ? { options } : {}) });
    const next = this.queue.shift();
    if (!next) throw new Error(`unexpected command: ${JSON.stringify(argv)}`);
    if (JSON.stringify(next.argv) !== JSON.stringify(argv)) {
      throw new Error(`expected command ${JSON.stringify(next.argv)}, got ${JSON.stringify(argv)}`);
    }
    if (next.error) throw next.error;
    return { code: 0, signal: null, stdout: "", stderr: "", ...next.result };
  }
  done(): void {
    if (this.queue.length > 0) throw new Error(`expected commands not run: ${JSON.stringify(this.queue.map((q) => q.argv))}`);
  }
}
