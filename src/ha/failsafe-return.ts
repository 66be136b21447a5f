import { describeError } from "../errors/catalogue.js";
import type { ClusterSnapshot, Coordinator } from "../coordinator/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { onEtcdReturn } from "./failsafe.js";
import type { SessionLease } from "./lease.js";

/**
 * What the first cycle that reads etcd after a failsafe hold did (E3). "retry": the new-term
 * campaign met an etcd error (not a loss) while the failsafe deadline holds; the hold stays and
 * the next cycle that reads etcd tries again (the deadline still fences if none succeeds).
 */
export type ReturnOutcome = "continue" | "retry" | { readonly newTerm: number } | { readonly fence: string };

/**
 * E3 (docs/failsafe-design.md): a primary that held on failsafe decides on the
 * first snapshot etcd answers again, before any other rule. The decision is
 * onEtcdReturn's; this runs it. A surviving key (the quorum-loss case: etcd's
 * new raft leader extends every lease) keeps its term; a key that expired while
 * the failsafe deadline still holds is won back with a new lease under a new
 * term (the old deadline stays armed meanwhile, so a slow campaign still fences
 * on time); anything else fences. "continue": let decide() run as usual.
 */
export async function afterFailsafeHold(p: {
  readonly snapshot: ClusterSnapshot;
  readonly self: string;
  readonly term: number;
  readonly lease: SessionLease;
  readonly coordinator: Pick<Coordinator, "campaign">;
  readonly clock: Clock;
  readonly log: Logger;
}): Promise<ReturnOutcome> {
  const { snapshot, self, term, lease, clock, log } = p;
  const held = lease.state();
  const leader = snapshot.leader ? { node: snapshot.leader.node, term: snapshot.leader.term } : null;
  const plan = onEtcdReturn({
    self,
    term,
    leaseAlive: held !== null && snapshot.leader?.lease === held.id,
    leader,
    failsafeDeadlineHolds: held !== null && clock.monotonicMs() < held.deadlineMs,
  });
  if (plan.kind === "keep_term") {
    log.info({ term }, plan.reason);
    return "continue";
  }
  if (plan.kind === "fence") return { fence: plan.reason };
  log.warn({ term }, plan.reason);
  let newTerm = 0;
  let error: string | null = null;
  const won = await lease
    .takeNew(async (leaseId) => {
      const r = await p.coordinator.campaign(self, leaseId, new Date(clock.wallMs()).toISOString(), snapshot.revision);
      if (r.won) newTerm = r.leader!.term;
      else log.warn({ leader: r.leader?.node ?? null, term: r.leader?.term ?? null }, "failsafe: the new-term campaign lost");
      return r.won;
    })
    .catch((e: unknown) => {
      error = describeError(e);
      return false;
    });
  // An etcd error is not a lost campaign: the first requests after a partition heals can time out
  // while the channel reconnects. The failsafe deadline still fences if no retry succeeds in time.
  if (error !== null) {
    const holds = clock.monotonicMs() < (lease.state()?.deadlineMs ?? 0);
    log.warn({ err: error, term }, holds ? "failsafe: the new-term campaign failed; the failsafe deadline holds, retrying at the next cycle" : "failsafe: the new-term campaign failed");
    if (holds) return "retry";
  }
  if (!won || newTerm === 0) return { fence: `etcd is back, my leader key (term ${term}) had expired and I could not win it back: fencing` };
  log.info({ term: newTerm, previous_term: term }, `failsafe: re-acquired the leader key under a new term (${newTerm}, was ${term}) before anything else`);
  return { newTerm };
}
