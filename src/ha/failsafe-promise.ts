import type { Clock } from "../platform/clock.js";
import { answerGrant, campaignHold, type AnsweredRequest, type GrantAnswer, type GrantRequest, type GrantView } from "./failsafe.js";
import type { PromiseLedger } from "./ports.js";

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
 * failsafe is on. Remembers the newest request answered per requester (S7).
 * The decision itself is answerGrant's (failsafe.ts).
 */
export class FailsafePromise {
  private untilMs: number;
  private promisedTo_: string | null = null;
  private campaigning = false;
  /** S7: per requester, the newest request answered (seeded from the ledger). */
  private readonly answered = new Map<string, AnsweredRequest>();

  /** Why the last run's promise could not be read (then only this run's own start-up hold applies). */
  readonly ledgerProblem: string | null;

  constructor(
    private readonly clock: Clock,
    private readonly settings: { readonly enabled: boolean; readonly self: string; readonly leaseMs: number; readonly fenceMarginMs: number },
    private readonly ledger?: PromiseLedger,
  ) {
    const now = clock.monotonicMs();
    this.untilMs = settings.enabled ? now + settings.leaseMs + settings.fenceMarginMs : -Infinity;
    // S6 across restarts whatever this run's settings: a promise of the last run (failsafe may be
    // off now, or ttl/fence_margin smaller) holds to its end; after a reboot, for its length.
    const last = ledger?.load();
    this.ledgerProblem = last?.problem ?? null;
    const r = last?.record;
    const own = settings.leaseMs + settings.fenceMarginMs;
    // S7 across restarts (and reboots: seq is the requester's wall clock): a request captured before is still stale.
    for (const a of r?.answered ?? []) this.answered.set(a.node, a);
    if (r) {
      const left = r.untilSystemMs === null ? r.forMs : Math.min(r.forMs, r.untilSystemMs - clock.systemMonotonicMs());
      if (left > 0) {
        this.untilMs = Math.max(this.untilMs, now + left);
        // A running promise is written down only by grants: the hold is a promise of the last run (S4 applies, not just S6).
        this.promisedTo_ = "a primary (a grant of the previous run)";
      }
    } else if (this.ledgerProblem !== null) {
      // Unreadable: the last run may have granted. Fail closed for this run's ttl + margin, whatever its settings.
      this.untilMs = Math.max(this.untilMs, now + own);
      this.promisedTo_ = "a primary (the promise record is unreadable)";
    }
  }

  /**
   * Answer a grant request and record the promise it makes (S1–S4). The decision and the
   * in-memory promise are taken synchronously (S5); the answer waits for the ledger.
   */
  async answer(req: GrantRequest, ctx: GrantContext): Promise<GrantAnswer> {
    const s = this.settings;
    const d = answerGrant(req, {
      enabled: s.enabled,
      self: s.self,
      acting: ctx.acting,
      campaignInFlight: this.campaigning,
      ownLeaseMs: s.leaseMs,
      fenceMarginMs: s.fenceMarginMs,
      lastLeader: ctx.lastLeader,
      answered: this.answered.get(req.node) ?? null,
      nowMs: this.clock.monotonicMs(),
    });
    // S7: the planner says whether this request moves its sender's mark (a grant always does).
    if (d.mark !== null) this.answered.set(d.mark.node, d.mark);
    if (d.promisedUntilMs !== null && d.promisedUntilMs > this.untilMs) {
      this.untilMs = d.promisedUntilMs;
      this.promisedTo_ = req.node;
    }
    if (d.mark !== null && this.ledger) {
      // Durable before the answer leaves: a restart must not forget the promise (S6) or the marks (S7).
      try {
        await this.ledger.save(this.record(d.promisedUntilMs !== null ? d.answer.promisedForMs : 0));
      } catch (e) {
        // A grant that cannot be recorded is refused (the hold stays in memory all the same); a refusal stands as it is.
        if (d.answer.granted) return { ...d.answer, granted: false, promisedForMs: 0, reason: `refused: cannot record the promise durably (${e instanceof Error ? e.message : String(e)})` };
      }
    }
    return d.answer;
  }

  /** What the ledger keeps: the running promise (none: forMs 0) and every requester's mark. */
  private record(grantForMs: number): { untilSystemMs: number; forMs: number; answered: AnsweredRequest[] } {
    const left = this.promisedTo_ !== null ? Math.max(0, Math.ceil(this.untilMs - this.clock.monotonicMs())) : 0;
    return { untilSystemMs: this.clock.systemMonotonicMs() + left, forMs: Math.max(grantForMs, left), answered: [...this.answered.values()] };
  }

  /**
   * S7 and etcd's history: a leader key read from etcd names `node` in `term`. A mark of that node
   * in a later term cannot come from this etcd history (terms never go back in one): etcd was
   * rebuilt, or the mark was forged by a holder of the key. Dropped, or it would refuse that
   * node's every request from now on.
   */
  observeLeader(node: string, term: number): void {
    const m = this.answered.get(node);
    if (m !== undefined && m.term > term) this.answered.delete(node);
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
