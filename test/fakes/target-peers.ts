import type { TargetAnswer, TargetPeers } from "../../src/ha/ports.js";
import type { NodeView } from "../../src/ha/events.js";
import type { Clock } from "../../src/platform/clock.js";
import { readyFacts } from "../../src/api/handover-ready.js";

/** What the fake asks for an API address: the agent's view, and whether its process still runs. */
export interface AskedAgent {
  view(): NodeView;
  /** Killed or frozen: no answer before the timeout. */
  silent(): boolean;
}

/**
 * POST /handover/ready between loops on one fake clock (the TargetPeers port): the target's own
 * view judged by the route's rule (readyFacts); a silent agent lets the ask time out on the clock.
 * Strict: an address no agent published is a test bug and says so.
 */
export class FakeTargetPeers implements TargetPeers {
  readonly asked: { node: string; from: string; term: number }[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly agents: ReadonlyMap<string, AskedAgent>,
    private readonly livenessMaxMs = 10_000,
  ) {}

  async ask(target: { node: string; api: string }, from: { node: string; term: number }, timeoutMs: number): Promise<TargetAnswer> {
    this.asked.push({ node: target.node, from: from.node, term: from.term });
    const agent = this.agents.get(target.api);
    if (!agent) throw new Error(`FakeTargetPeers: no agent publishes ${target.api}`);
    if (agent.silent()) {
      await this.clock.sleep(timeoutMs);
      return { kind: "no answer", why: `timed out after ${timeoutMs} ms` };
    }
    const f = readyFacts(agent.view(), this.livenessMaxMs);
    return { kind: "answer", acting: f.acting, healthy: f.healthy, etcdReachable: f.etcd_reachable, loopAlive: f.loop_alive };
  }
}
