import { describeError } from "../errors/catalogue.js";
import type { ClusterSnapshot, Coordinator, HistoryEvent, LeaderRecord, SwitchoverRequest } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { PromotionKind } from "./events.js";
import type { DataLagPromotion } from "./observation.js";
import { HistoryRecorder } from "./history.js";

/**
 * How this node tells the cluster's story: which kind of takeover a promotion
 * was, and the history events for takeovers, switchovers and fences.
 */
export class Chronicle {
  private readonly recorder: HistoryRecorder;

  constructor(
    private readonly node: string,
    private readonly coordinator: Coordinator,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.recorder = new HistoryRecorder(coordinator, log);
  }

  flush(): Promise<void> {
    return this.recorder.flush();
  }

  event(kind: HistoryEvent["kind"], fields: Partial<HistoryEvent>): HistoryEvent {
    return { kind, at: new Date(this.clock.wallMs()).toISOString(), node: this.node, from: null, to: null, term: null, reason: "", ...fields };
  }

  /** What made this node primary, from the snapshot it campaigned on and the leader it saw before. */
  promotionKind(snapshot: ClusterSnapshot | null, lastLeader: LeaderRecord | null): PromotionKind {
    const sw = snapshot?.switchover;
    if (sw) return sw.kind === "failover" ? "failover_forced" : sw.kind;
    const released = snapshot?.released;
    if (released && released.term === lastLeader?.term) return "handover";
    if (lastLeader !== null && lastLeader.node !== this.node) return "failover";
    return "election";
  }

  /** After winning an election: a failover (vacancy after a death) or a handover (a release). Switchovers are recorded on completion. */
  takeover(term: number, snapshot: ClusterSnapshot | null, lastLeader: LeaderRecord | null, durations: Record<string, number>): void {
    const kind = this.promotionKind(snapshot, lastLeader);
    const released = snapshot?.released;
    if (kind === "handover" && released) {
      this.recorder.record(
        this.event("handover", { from: released.node, to: this.node, term, reason: `${released.node} released the role (${released.why}${released.reason ? `: ${released.reason}` : ""})`, durations }),
        term,
      );
    } else if (kind === "failover") {
      this.recorder.record(this.event("failover", { from: lastLeader!.node, to: this.node, term, reason: `${lastLeader!.node}'s lease expired`, durations }), term);
    }
  }

  /**
   * The new primary confirms a switchover/failback/failover request took effect, records it, and clears
   * it. `servedAtWallMs`: when this node began serving, the handover's end (the record comes later).
   */
  async switchoverDone(sw: SwitchoverRequest, snapshot: ClusterSnapshot | null, term: number, servedAtWallMs?: number): Promise<void> {
    // Cleared first, recorded once cleared: a clear that fails (an etcd blip) leaves the request for
    // the next cycle, which would otherwise record the same move twice.
    const cleared = await this.coordinator.clearSwitchover(term, snapshot?.revision).catch((e: unknown) => {
      this.log.warn({ err: describeError(e) }, "cannot clear the switchover request");
      return false;
    });
    if (!cleared) return;
    const released = snapshot?.released;
    const gap = released && released.node === sw.from ? (servedAtWallMs ?? this.clock.wallMs()) - Date.parse(released.at) : undefined;
    const drain = released && released.node === sw.from ? released.drain : undefined;
    this.recorder.record(
      this.event(sw.kind, {
        from: sw.from,
        to: this.node,
        term,
        reason: sw.reason,
        requestedBy: sw.requestedBy,
        ...requestedAt(sw),
        ...(gap !== undefined || drain ? { durations: { ...(gap !== undefined ? { handover_ms: Math.max(0, Math.round(gap)) } : {}), ...(drain ? { drain_ms: drain.waitedMs } : {}) } } : {}),
        ...(drain ? { counts: { drained: drain.drained, ...(drain.cut !== undefined ? { cut: drain.cut } : {}) } } : {}),
      }),
      term,
    );
  }

  /** `readRevision`: the view the decision was taken on; a request written after it is not this one and stays. */
  async switchoverAborted(sw: SwitchoverRequest | null | undefined, why: string, readRevision?: number): Promise<void> {
    await this.coordinator.cancelSwitchover(readRevision).catch((e: unknown) => this.log.warn({ err: describeError(e) }, "cannot cancel the switchover"));
    if (sw) this.recorder.record(this.event(sw.kind, { from: sw.from, to: sw.to, reason: `not done: ${why}`, requestedBy: sw.requestedBy, ...requestedAt(sw) }), null);
  }

  vetoed(term: number, why: string): void {
    this.recorder.record(this.event("veto", { from: null, to: this.node, term, reason: why }), null);
  }

  stalePromotion(term: number, generation: number, published: { generation: number; source: string }, lagMs: number): void {
    this.recorder.record(
      this.event("stale_promotion", {
        from: published.source,
        to: this.node,
        term,
        reason: `took the leader key with sync generation ${generation} while ${published.source} had published ${published.generation}: files changed on the old primary since then are not here`,
        durations: { lag_ms: Math.round(lagMs) },
      }),
      term,
    );
  }

  /** Promoted while my data lag exceeded data.maximum_data_lag_on_failover (data-gate.ts). */
  dataLagPromotion(term: number, mark: DataLagPromotion): void {
    this.recorder.record(
      this.event("data_lag_promotion", {
        from: mark.progressNode,
        to: this.node,
        term,
        reason: mark.reason,
        ...(mark.lag ? { durations: { lag_ms: Math.round(mark.lag.seconds * 1000) } } : {}),
      }),
      term,
    );
  }

  /** Flap damping took hold: recorded once (until cleared), guarded by the term. Returns the event's time. */
  flapDamped(term: number | null, why: string): string {
    const event = this.event("flap_damped", { from: this.node, to: this.node, term, reason: why });
    this.recorder.record(event, term);
    return event.at;
  }

  fenced(term: number | null, why: string): void {
    this.recorder.record(this.event("fence", { from: this.node, term, reason: `lease deadline passed (${why})` }), null);
  }
}

/** The request's time on its outcome's event (none for a request without one: tests' fixtures). */
function requestedAt(sw: SwitchoverRequest): { requestedAt?: string } {
  return sw.requestedAt !== "" ? { requestedAt: sw.requestedAt } : {};
}
