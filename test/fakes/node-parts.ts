import type { DaemonController, DaemonExit } from "../../src/daemon/port.js";
import type { DaemonHealth, VipControl } from "../../src/ha/ports.js";
import type { ProbeState } from "../../src/probes/port.js";
import type { Clock } from "../../src/platform/clock.js";

/** Shared record of who held the VIP when, to check "at most one holder" over a whole scenario. */
export class VipTimeline {
  readonly events: { t: number; node: string; held: boolean }[] = [];
  private readonly holders = new Set<string>();
  maxHolders = 0;
  /** MAC of a host outside the cluster that answers ARP for the VIP (a duplicate check sees it); null: none. */
  foreignMac: string | null = null;
  constructor(private readonly clock: Clock) {}
  now(): number {
    return this.clock.monotonicMs();
  }
  set(node: string, held: boolean): void {
    if (held) this.holders.add(node);
    else this.holders.delete(node);
    this.maxHolders = Math.max(this.maxHolders, this.holders.size);
    this.events.push({ t: this.clock.monotonicMs(), node, held });
  }
  holder(): string[] {
    return [...this.holders];
  }
}

export class FakeVip implements VipControl {
  held = false;
  desired = false;
  readonly skipped: boolean[] = [];
  /** A local failure of every add on this node (e.g. "US_E_TOOL_MISSING: arping ..."); null: adds work. */
  addFails: string | null = null;
  private missingSinceMs: number | null = null;
  private seenMac: string | null = null;
  private lastError: string | undefined;
  constructor(
    private readonly node: string,
    private readonly timeline: VipTimeline,
  ) {}
  async setDesired(held: boolean, options: { skipDuplicateCheck?: boolean } = {}): Promise<void> {
    if (held) this.skipped.push(options.skipDuplicateCheck === true);
    this.desired = held;
    if (held && !this.held && this.addFails !== null) {
      this.missingSinceMs ??= this.timeline.now();
      this.lastError = this.addFails;
      throw new Error(this.addFails);
    }
    // A host outside the cluster, or another node still holding it, answers for the address: the
    // duplicate check refuses the add (a skipped check would not).
    const answering = this.timeline.foreignMac ?? this.timeline.holder().find((n) => n !== this.node) ?? null;
    if (held && !this.held && answering !== null && options.skipDuplicateCheck !== true) {
      this.missingSinceMs ??= this.timeline.now();
      this.seenMac = answering;
      this.lastError = "US_E_VIP_DUPLICATE";
      throw new Error(`US_E_VIP_DUPLICATE: another host answers ARP for it (${this.seenMac})`);
    }
    this.missingSinceMs = null;
    if (this.held !== held) {
      this.held = held;
      this.timeline.set(this.node, held);
    }
  }
  state() {
    if (this.missingSinceMs === null) return { desired: this.desired, held: this.held, lastError: undefined };
    return { desired: this.desired, held: this.held, lastError: this.lastError, missingSinceMs: this.missingSinceMs, foreignMac: this.seenMac };
  }
  async release(): Promise<void> {
    await this.setDesired(false);
  }
}

export class FakeDaemon implements DaemonController {
  readonly backend = "process" as const;
  running = false;
  starts = 0;
  stops = 0;
  failStarts = false;
  private listeners: ((e: DaemonExit) => void)[] = [];
  async start(): Promise<void> {
    if (this.failStarts) throw new Error("start failed");
    if (!this.running) this.starts++;
    this.running = true;
  }
  async stop(): Promise<void> {
    if (this.running) this.stops++;
    this.running = false;
  }
  async isRunning(): Promise<boolean> {
    return this.running;
  }
  onUnexpectedExit(listener: (exit: DaemonExit) => void): void {
    this.listeners.push(listener);
  }
  /** Simulate a crash. */
  crash(): void {
    this.running = false;
    for (const l of this.listeners) l({ code: 1, signal: null });
  }
  async close(): Promise<void> {}
}

export class FakeHealth implements DaemonHealth {
  up = true;
  private listeners: (() => void)[] = [];
  criticalUp(): boolean {
    return this.up;
  }
  states(): ProbeState[] {
    return [{ name: "sftp", critical: true, up: this.up, lastDetail: "", consecutive: 1 }];
  }
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
  set(up: boolean): void {
    this.up = up;
    for (const l of this.listeners) l();
  }
  async checkNow(): Promise<void> {}
  start(): void {}
  stop(): void {}
}
