import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { TargetPeers } from "./ports.js";
import { judgeAnswer, TARGET_ASK_TIMEOUT_MS, type TargetCheckView, type TargetVerdict } from "./target-check.js";

// The executor side of asking a planned move's target whether it is ready
// (target-check.ts decides when to ask and what the answer means). One ask at
// a time; a cycle never waits for it: the answer wakes the loop.

/** An ask still unsettled this long after its timeout counts as failed (a hung token read, a lost callback). */
const UNSETTLED_MS = TARGET_ASK_TIMEOUT_MS + 1000;

export class TargetCheckRun {
  private asking: { node: string; requestedAt: string; sinceMs: number; seq: number } | null = null;
  private last: TargetVerdict | null = null;
  private failingSinceMs: number | null = null;
  /** The request the refusals below belong to, and each node's "not ready" why (its last answer). */
  private refused: { requestedAt: string; nodes: Map<string, string> } | null = null;
  private seq = 0;

  constructor(
    private readonly peers: TargetPeers,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Run a cycle now (the loop's trigger). */
    private readonly wake: (why: string) => void,
  ) {}

  view(): TargetCheckView {
    const a = this.asking;
    if (a && this.clock.monotonicMs() - a.sinceMs > UNSETTLED_MS) this.settle(a, { outcome: "not ready", why: `the ask did not settle within ${UNSETTLED_MS} ms` });
    const asking = this.asking ? { node: this.asking.node, requestedAt: this.asking.requestedAt } : null;
    const refused = this.refused && this.refused.nodes.size > 0 ? { refused: { requestedAt: this.refused.requestedAt, nodes: [...this.refused.nodes].map(([node, why]) => ({ node, why })) } } : {};
    return { asking, last: this.last, failingSinceMs: this.failingSinceMs, ...refused };
  }

  /** Ask `target` (unless an ask is in flight); the verdict is judged with `forced` and the loop woken. */
  start(target: { node: string; api: string; requestedAt: string; forced: boolean }, self: { node: string; term: number }): void {
    if (this.asking) return;
    const a = { node: target.node, requestedAt: target.requestedAt, sinceMs: this.clock.monotonicMs(), seq: ++this.seq };
    this.asking = a;
    void this.peers
      .ask({ node: target.node, api: target.api }, self, TARGET_ASK_TIMEOUT_MS)
      .catch((e: unknown) => ({ kind: "no answer" as const, why: `the ask failed: ${String(e)}` }))
      .then((answer) => this.settle(a, judgeAnswer(answer, target.forced)));
  }

  /** The verdict of ask `a`, unless it was already settled (as unsettled, by view()). */
  private settle(a: NonNullable<TargetCheckRun["asking"]>, judged: Pick<TargetVerdict, "outcome" | "why">): void {
    if (this.asking?.seq !== a.seq) return;
    const atMs = this.clock.monotonicMs();
    const key = { node: a.node, requestedAt: a.requestedAt };
    const same = this.last?.node === key.node && this.last.requestedAt === key.requestedAt;
    this.failingSinceMs = judged.outcome !== "not ready" ? null : same && this.failingSinceMs !== null ? this.failingSinceMs : atMs;
    this.last = { ...key, atMs, ...judged };
    if (this.refused?.requestedAt !== key.requestedAt) this.refused = { requestedAt: key.requestedAt, nodes: new Map() };
    if (judged.outcome === "not ready") this.refused.nodes.set(key.node, judged.why);
    else this.refused.nodes.delete(key.node);
    this.asking = null;
    const fields = { target: key.node, requested_at: key.requestedAt, outcome: judged.outcome, took_ms: Math.round(atMs - a.sinceMs) };
    this.log[judged.outcome === "not ready" ? "warn" : "info"](fields, `switchover target ${key.node}: ${judged.outcome === "ready" ? "ready" : judged.outcome}: ${judged.why}`);
    this.wake(`${key.node} answered`);
  }
}
