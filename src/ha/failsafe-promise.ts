import type { Clock } from "../platform/clock.js";
import { answerGrant, campaignHold, type GrantAnswer, type GrantRequest, type GrantView } from "./failsafe.js";

/** What the answering side reads from the HA loop at the moment a request arrives (S1). */
export interface GrantContext {
  readonly acting: "primary" | "standby";
  readonly lastLeader: GrantView["lastLeader"];
}

/**
 * A member's failsafe promises (docs/failsafe-design.md, S4–S6): the time
 * before which it will not campaign, and whether a campaign is in flight.
 * Grants and campaigns both go through this one object on the agent's one
 * event loop, synchronously, so a grant can never slip in between "may I
 * campaign?" and the campaign (S5). Starts with the start-up hold (S6) when
 * failsafe is on. The decision itself is answerGrant's (failsafe.ts).
 */
export class FailsafePromise {
  private untilMs: number;
  private promisedTo_: string | null = null;
  private campaigning = false;

  constructor(
    private readonly clock: Clock,
    private readonly settings: { readonly enabled: boolean; readonly self: string; readonly leaseMs: number; readonly fenceMarginMs: number },
  ) {
    this.untilMs = settings.enabled ? clock.monotonicMs() + settings.leaseMs + settings.fenceMarginMs : -Infinity;
  }

  /** Answer a grant request and record the promise it makes (S1–S4). */
  answer(req: GrantRequest, ctx: GrantContext): GrantAnswer {
    const s = this.settings;
    const d = answerGrant(req, {
      enabled: s.enabled,
      self: s.self,
      acting: ctx.acting,
      campaignInFlight: this.campaigning,
      ownLeaseMs: s.leaseMs,
      fenceMarginMs: s.fenceMarginMs,
      lastLeader: ctx.lastLeader,
      nowMs: this.clock.monotonicMs(),
    });
    if (d.promisedUntilMs !== null && d.promisedUntilMs > this.untilMs) {
      this.untilMs = d.promisedUntilMs;
      this.promisedTo_ = req.node;
    }
    return d.answer;
  }

  /** Why this node may not campaign now (a promise, or the start-up hold), or null. */
  hold(nowMs: number): string | null {
    return campaignHold(this.untilMs, nowMs, this.promisedTo_, this.settings.leaseMs + this.settings.fenceMarginMs);
  }

  /** The primary the running promise was given to; null: none, or only the start-up hold. */
  promisedTo(): string | null {
    return this.promisedTo_;
  }

  /** Monotonic ms before which this node does not campaign (-Infinity: never promised, failsafe off). */
  promisedUntilMs(): number {
    return this.untilMs;
  }

  /** S5: mark a campaign in flight, unless a promise holds now (then false: do not campaign). */
  beginCampaign(): boolean {
    if (this.clock.monotonicMs() < this.untilMs) return false;
    this.campaigning = true;
    return true;
  }

  endCampaign(): void {
    this.campaigning = false;
  }
}
