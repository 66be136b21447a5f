import { describeError } from "../errors/catalogue.js";
import type { Coordinator, MemberRecord } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";

export type MemberBody = Omit<MemberRecord, "updatedAt">;

/**
 * Writes this node's member key, only when something in it changed (or the
 * lease did): the lease keeps the key alive, so an idle cluster writes nothing.
 */
export class MemberPublisher {
  private last = "";

  constructor(
    private readonly coordinator: Coordinator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async publish(body: MemberBody, leaseId: string): Promise<void> {
    const key = JSON.stringify(body) + leaseId;
    if (key === this.last) return;
    const member: MemberRecord = { ...body, updatedAt: new Date(this.clock.wallMs()).toISOString() };
    try {
      await this.coordinator.putMember(member, leaseId);
      this.last = key;
    } catch (e) {
      this.log.debug({ err: describeError(e) }, "member key not written");
    }
  }
}
