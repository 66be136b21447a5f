import type { FloatingIp } from "../../src/vip/port.js";

export type FloatingIpMethod = "isHeld" | "add" | "remove" | "announce";

interface Step {
  readonly method: FloatingIpMethod;
  readonly held?: boolean;
  readonly error?: Error;
  readonly gate?: Promise<void>;
}

/**
 * A strict FloatingIp: every call must match the next expectation, in order,
 * and no two calls other than announce() may overlap. The code under test usually catches errors, so
 * violations are recorded as well as thrown, and `done()` reports them.
 */
export class StrictFloatingIp implements FloatingIp {
  readonly address = "198.18.0.100/24";
  readonly calls: FloatingIpMethod[] = [];
  readonly violations: string[] = [];
  /** The options each add() was called with, in order. */
  readonly addOptions: { skipDuplicateCheck?: boolean; notHeld?: boolean }[] = [];
  private readonly queue: Step[] = [];
  private inFlight = 0;

  /** Expect one call; isHeld answers `held`; `gate` holds the call open until it resolves. */
  expect(method: FloatingIpMethod, outcome: { held?: boolean; error?: Error; gate?: Promise<void> } = {}): this {
    this.queue.push({ method, ...outcome });
    return this;
  }

  async isHeld(): Promise<boolean> {
    return (await this.step("isHeld")).held ?? false;
  }
  async add(options: { skipDuplicateCheck?: boolean; notHeld?: boolean } = {}): Promise<void> {
    this.addOptions.push(options);
    await this.step("add");
  }
  async remove(): Promise<void> {
    await this.step("remove");
  }
  async announce(): Promise<void> {
    await this.step("announce");
  }

  private async step(method: FloatingIpMethod): Promise<Step> {
    this.calls.push(method);
    // announce() may run beside other calls (the reconciler does not await the series); nothing else may.
    if (this.inFlight > 0 && method !== "announce") this.fail(`${method} called while another call was in flight`);
    const next = this.queue.shift();
    if (!next) this.fail(`unexpected call: ${method}`);
    else if (next.method !== method) this.fail(`expected ${next.method}, got ${method}`);
    const counted = method !== "announce";
    if (counted) this.inFlight++;
    try {
      if (next!.gate) await next!.gate;
      if (next!.error) throw next!.error;
      return next!;
    } finally {
      if (counted) this.inFlight--;
    }
  }

  private fail(message: string): never {
    this.violations.push(message);
    throw new Error(message);
  }

  done(): void {
    if (this.violations.length > 0) throw new Error(`strict FloatingIp violations: ${this.violations.join("; ")}`);
    if (this.queue.length > 0) throw new Error(`expected calls not made: ${this.queue.map((s) => s.method).join(", ")}`);
  }
}

/** A promise with its resolve function exposed, to hold a fake call open. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
