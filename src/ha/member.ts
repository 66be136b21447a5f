import { describeError } from "../errors/catalogue.js";
import type { Coordinator, MemberRecord } from "../coordinator/port.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";

export type MemberBody = Omit<MemberRecord, "updatedAt" | "lease">;

/**
 * How long a change of the decision text alone waits before it is written. A
 * move changes every node's decision two to four times within ~100 ms ("waiting",
 * "switchover…", "following n1"), and each write is a watch event that wakes a
 * cycle on every agent, on the cores the new primary's daemon needs (8 member
 * writes in one switchover, 2 of them carrying a fact other than the text).
 * The text is for operators (`status`, a drain's progress): a second is soon enough.
 */
export const DECISION_ONLY_DELAY_MS = 1000;

/**
 * Writes this node's member key, only when something in it changed (or the
 * lease did): the lease keeps the key alive, so an idle cluster writes nothing.
 * A change in any field other than `decision` is written at once (with the
 * current decision); a change of the decision alone is written
 * DECISION_ONLY_DELAY_MS later, the latest text then. Writes never overlap.
 */
export class MemberPublisher {
  /** What the key holds (body and lease), as last written. */
  private written = "";
  /** The same without the decision. */
  private writtenFacts = "";
  /** The generation and lease of the last write that succeeded; null before one did. */
  private writtenGen: { generation: number; leaseId: string } | null = null;
  private deferred: { body: MemberBody; leaseId: string } | undefined;
  private timer: TimerHandle | undefined;
  private writes: Promise<void> = Promise.resolve();
  /** Writes queued and not yet settled: `written` does not show them yet. */
  private queued = 0;
  private stopped = false;

  constructor(
    private readonly coordinator: Coordinator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  publish(body: MemberBody, leaseId: string): Promise<void> {
    if (this.stopped) return this.writes;
    const key = JSON.stringify(body) + leaseId;
    if (key === this.written) {
      this.cancelDeferred();
      // A write in flight may be about to replace what the key holds: put this body back after it.
      return this.queued > 0 ? this.write(body, leaseId) : this.writes;
    }
    if (facts(body, leaseId) === this.writtenFacts) {
      this.deferred = { body, leaseId };
      this.timer ??= this.clock.setTimer(DECISION_ONLY_DELAY_MS, () => {
        this.timer = undefined;
        const d = this.deferred;
        this.deferred = undefined;
        if (d) void this.write(d.body, d.leaseId);
      });
      return this.writes;
    }
    this.cancelDeferred();
    return this.write(body, leaseId);
  }

  /** Whether the last write that succeeded put this generation on this lease (a key on another lease died with it). */
  shows(generation: number, leaseId: string): boolean {
    return this.writtenGen?.generation === generation && this.writtenGen.leaseId === leaseId;
  }

  /** The agent is stopping: drop a deferred write, write nothing more. */
  stop(): void {
    this.stopped = true;
    this.cancelDeferred();
  }

  private cancelDeferred(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.deferred = undefined;
  }

  private write(body: MemberBody, leaseId: string): Promise<void> {
    this.queued++;
    this.writes = this.writes.then(async () => {
      const key = JSON.stringify(body) + leaseId;
      try {
        if (key === this.written || this.stopped) return;
        const member: MemberRecord = { ...body, lease: leaseId, updatedAt: new Date(this.clock.wallMs()).toISOString() };
        await this.coordinator.putMember(member, leaseId);
        this.written = key;
        this.writtenFacts = facts(body, leaseId);
        this.writtenGen = { generation: body.generation, leaseId };
      } catch (e) {
        this.log.debug({ err: describeError(e) }, "member key not written");
      } finally {
        this.queued--;
      }
    });
    return this.writes;
  }
}

function facts(body: MemberBody, leaseId: string): string {
  const { decision: _decision, ...rest } = body;
  return JSON.stringify(rest) + leaseId;
}
