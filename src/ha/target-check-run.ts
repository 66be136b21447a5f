import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { TargetPeers } from "./ports.js";
import { judgeAnswer, TARGET_ASK_TIMEOUT_MS, type TargetCheckView, type TargetVerdict } from "./target-check.js";

// The executor side of asking a planned move's target whether it is ready
// (target-check.ts decides when to ask and what the answer means). One ask at
// a time; a cycle never waits for it: the answer wakes the loop.

export class TargetCheckRun {
  private asking: { node: string; requestedAt: string } | null = null;
  private last: TargetVerdict | null = null;
  private failingSinceMs: number | null = null;

  constructor(
    private readonly peers: TargetPeers,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Run a cycle now (the loop's trigger). */
    private readonly wake: (why: string) => void,
  ) {}

  view(): TargetCheckView {
    return { asking: this.asking, last: this.last, failingSinceMs: this.failingSinceMs };
  }

  /** Ask `target` (unless an ask is in flight); the verdict is judged with `forced` and the loop woken. */
  start(target: { node: string; api: string; requestedAt: string; forced: boolean }, self: { node: string; term: number }): void {
    if (this.asking) return;
    const key = { node: target.node, requestedAt: target.requestedAt };
    this.asking = key;
    const t0 = this.clock.monotonicMs();
    void this.peers
      .ask({ node: target.node, api: target.api }, self, TARGET_ASK_TIMEOUT_MS)
      .catch((e: unknown) => ({ kind: "no answer" as const, why: `the ask failed: ${String(e)}` }))
      .then((answer) => {
        const atMs = this.clock.monotonicMs();
        const judged = judgeAnswer(answer, target.forced);
        const same = this.last?.node === key.node && this.last.requestedAt === key.requestedAt;
        this.failingSinceMs = judged.outcome !== "not ready" ? null : same && this.failingSinceMs !== null ? this.failingSinceMs : atMs;
        this.last = { ...key, atMs, ...judged };
        this.asking = null;
        const fields = { target: key.node, requested_at: key.requestedAt, outcome: judged.outcome, took_ms: Math.round(atMs - t0) };
        this.log[judged.outcome === "not ready" ? "warn" : "info"](fields, `switchover target ${key.node}: ${judged.outcome === "ready" ? "ready" : judged.outcome}: ${judged.why}`);
        this.wake(`${key.node} answered`);
      });
  }
}
