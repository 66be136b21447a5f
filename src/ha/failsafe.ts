// Failsafe mode (docs/failsafe-design.md): the pure decisions, each with a
// reason sentence. The rule ids (P…, S…, E…) are the design's. No I/O, no
// clock reads: times come in as monotonic ms.

/** What a primary asks each member (POST /failsafe/grant). */
export interface GrantRequest {
  readonly node: string;
  /** The member asked: a request is only ever answered by it (a capture replayed to another member is refused). */
  readonly to: string;
  readonly term: number;
  /** The lease period the grant is for: the requester's election.ttl. */
  readonly leaseMs: number;
  /** Fresh per request; echoed and covered by the answer's MAC. */
  readonly nonce: string;
  /**
   * Strictly increasing over the requester's requests, started at its wall clock in ms (so a
   * restarted agent goes on above its last run): a member refuses one that is not above the
   * last it answered from that node in that term (S7), so a captured request cannot be replayed.
   */
  readonly seq: number;
}

/** A member's answer, before the MAC is added (the API signs it). */
export interface GrantAnswer {
  readonly node: string;
  readonly granted: boolean;
  readonly leaseMs: number;
  readonly nonce: string;
  /** Granted: how long from receipt this member will not campaign (leaseMs + its fence margin). */
  readonly promisedForMs: number;
  readonly reason: string;
}

/** What the answering member knows (S1). */
export interface GrantView {
  readonly enabled: boolean;
  readonly self: string;
  readonly acting: "primary" | "standby";
  /** A campaign of this node is in flight (S5). */
  readonly campaignInFlight: boolean;
  /** This node's own election.ttl and fence margin. */
  readonly ownLeaseMs: number;
  readonly fenceMarginMs: number;
  /** The last leader this node read from etcd; null: none seen (vacant, or etcd not read since start). */
  readonly lastLeader: { readonly node: string; readonly term: number } | null;
  /** The newest request this member answered from req.node (S7); null: none. */
  readonly answered: AnsweredRequest | null;
  readonly nowMs: number;
}

/** The newest request a member answered from one requester (S7). */
export interface AnsweredRequest {
  readonly node: string;
  readonly term: number;
  readonly seq: number;
}

/** S7: why this request is not newer than the last one answered from its sender, or null. */
export function staleRequest(req: Pick<GrantRequest, "node" | "term" | "seq">, answered: AnsweredRequest | null): string | null {
  if (answered === null || answered.node !== req.node) return null;
  if (req.term < answered.term) return `a request of ${req.node} for term ${req.term}, older than the term ${answered.term} already answered (a replay?)`;
  if (req.term === answered.term && req.seq <= answered.seq) return `request ${req.seq} of ${req.node} is not newer than request ${answered.seq} already answered in term ${req.term} (a replay?)`;
  return null;
}

/** The answer and, when granted, the promise to record (S4): no campaign before promisedUntilMs. */
export interface GrantDecision {
  readonly answer: GrantAnswer;
  readonly promisedUntilMs: number | null;
  /** S7: the sender's new mark when this request moves it (a request for this node, not stale), granted or refused; else null. */
  readonly mark: AnsweredRequest | null;
}

/** S1–S4 and S7: grant or refuse a primary's request. */
export function answerGrant(req: GrantRequest, v: GrantView): GrantDecision {
  // Decided first: a refused request moves the mark too, so it is stale if replayed when it might be granted.
  const mark = req.to === v.self && staleRequest(req, v.answered) === null ? { node: req.node, term: req.term, seq: req.seq } : null;
  const refuse = (why: string): GrantDecision => ({
    answer: { node: v.self, granted: false, leaseMs: req.leaseMs, nonce: req.nonce, promisedForMs: 0, reason: `refused: ${why}` },
    promisedUntilMs: null,
    mark,
  });
  if (!v.enabled) return refuse("failsafe is off on this node (election.failsafe)");
  if (req.to !== v.self) return refuse(`the request is for ${req.to}, not for this node (${v.self})`);
  if (req.node === v.self) return refuse(`the request names this node (${v.self}) as its sender`);
  const stale = staleRequest(req, v.answered);
  if (stale !== null) return refuse(stale);
  if (v.acting === "primary") return refuse(`${v.self} acts as primary`);
  if (v.campaignInFlight) return refuse(`${v.self} is campaigning for the leader key`);
  if (req.leaseMs !== v.ownLeaseMs) return refuse(`the requested lease of ${req.leaseMs}ms differs from this node's election.ttl (${v.ownLeaseMs}ms)`);
  const known = v.lastLeader;
  if (known && known.node !== req.node) return refuse(`the leader key last named ${known.node} (term ${known.term}), not ${req.node}`);
  if (known && known.term > req.term) return refuse(`${req.node} asks for term ${req.term}, but term ${known.term} is newer`);
  const forMs = req.leaseMs + v.fenceMarginMs;
  const following = known ? `following ${known.node} (term ${known.term})` : "seeing no leader key in etcd";
  return {
    answer: { node: v.self, granted: true, leaseMs: req.leaseMs, nonce: req.nonce, promisedForMs: forMs, reason: `granted: I am a standby ${following}; no campaign for ${forMs}ms` },
    promisedUntilMs: v.nowMs + forMs,
    mark,
  };
}

/**
 * S4/S6: why this node may not campaign now (a promise or the start-up hold), or null. The
 * sentence does not count down: it is published in the member key, and a reason that changed
 * every cycle would rewrite the key every cycle (and wake every watcher) for the whole hold.
 */
export function campaignHold(promisedUntilMs: number, nowMs: number, promisedTo: string | null, forMs: number): string | null {
  if (nowMs >= promisedUntilMs) return null;
  if (promisedTo === null) return `not campaigning: failsafe start-up hold, ${forMs}ms from the agent's start (a promise given before it may still run)`;
  return `not campaigning: I promised ${promisedTo} (failsafe) not to campaign within ${forMs}ms of its last grant request`;
}

/** A member the primary can ask: its API URL from its member key. */
export interface FailsafeMember {
  readonly node: string;
  readonly api: string | null;
}

/** What the primary knows when a round is due (P1, P2). */
export interface RoundView {
  readonly enabled: boolean;
  readonly self: string;
  readonly acting: "primary" | "standby";
  readonly term: number | null;
  /** The last renewal did not reach etcd, or the cycle could not read etcd. */
  readonly etcdFailing: boolean;
  /** Members of the last snapshot, this node included or not. */
  readonly members: readonly FailsafeMember[];
  /** failsafe/members as last read (E1); null: never written. */
  readonly listed: { readonly term: number; readonly nodes: readonly string[] } | null;
  readonly roundInFlight: boolean;
}

export type RoundPlan =
  { readonly ask: true; readonly targets: readonly { readonly node: string; readonly api: string }[]; readonly reason: string } | { readonly ask: false; readonly reason: string };

/** P1/P2: whether a round runs now and whom it asks. A member that cannot be asked makes the round pointless: fence as today. */
export function planRound(v: RoundView): RoundPlan {
  if (!v.enabled) return { ask: false, reason: "failsafe is off" };
  if (v.acting !== "primary" || v.term === null) return { ask: false, reason: "not acting as primary" };
  if (!v.etcdFailing) return { ask: false, reason: "etcd answers: the lease is renewed" };
  if (v.roundInFlight) return { ask: false, reason: "a round is still running" };
  // E1: only with a membership written in this term, so no node outside it can campaign (E2).
  if (v.listed === null || v.listed.term !== v.term) return { ask: false, reason: `failsafe cannot hold: failsafe/members was not written in my term (${v.term})` };
  // P2: M = observed members plus every listed one (asking more is always safe; a listed node never seen has no URL).
  const seen = new Set(v.members.map((m) => m.node));
  const everyone = [...v.members, ...v.listed.nodes.filter((n) => !seen.has(n)).map((node) => ({ node, api: null }))];
  const others = everyone.filter((m) => m.node !== v.self);
  const unreachable = others.filter((m) => m.api === null).map((m) => m.node);
  if (unreachable.length > 0) {
    return { ask: false, reason: `failsafe cannot hold: ${unreachable.join(", ")} publish${unreachable.length === 1 ? "es" : ""} no API URL to ask` };
  }
  const targets = others.map((m) => ({ node: m.node, api: m.api! }));
  return { ask: true, targets, reason: targets.length === 0 ? "asking nobody: I am the only member" : `asking ${targets.map((t) => t.node).join(", ")} for a failsafe grant` };
}

/** One finished round, as the primary saw it (answers already MAC-checked by the adapter). */
export interface RoundResult {
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
  readonly leaseMs: number;
  readonly asked: readonly string[];
  /** Per asked member: its verified answer, or why there is none (timeout, bad MAC, HTTP error). */
  readonly answers: ReadonlyMap<string, { readonly granted: true } | { readonly granted: false; readonly why: string }>;
}

/** P4: the deadline a round gives (null: none), and the sentence saying why. */
export function extensionAfterRound(r: RoundResult, currentDeadlineMs: number, fenceMarginMs: number): { extendToMs: number | null; reason: string } {
  const missing = r.asked.filter((n) => r.answers.get(n)?.granted !== true);
  if (missing.length > 0) {
    const why = missing.map((n) => {
      const a = r.answers.get(n);
      return `${n}: ${a && !a.granted ? a.why : "no answer"}`;
    });
    return { extendToMs: null, reason: `no failsafe extension: ${missing.length} of ${r.asked.length} member(s) did not grant (${why.join("; ")}); fencing at the deadline` };
  }
  if (r.finishedAtMs >= currentDeadlineMs) {
    return { extendToMs: null, reason: `no failsafe extension: the round finished ${Math.round(r.finishedAtMs - currentDeadlineMs)}ms after the deadline it meant to extend` };
  }
  const to = r.startedAtMs + r.leaseMs - fenceMarginMs;
  if (to <= currentDeadlineMs) return { extendToMs: null, reason: "no failsafe extension needed: the deadline held is already later" };
  const who = r.asked.length === 0 ? "no other member to ask" : `${r.asked.length} of ${r.asked.length} member(s) granted`;
  return { extendToMs: to, reason: `failsafe: ${who}; deadline moved to round start + ${r.leaseMs}ms - ${fenceMarginMs}ms` };
}

/** E3: what a primary that held on failsafe does on the first cycle that reads etcd again. */
export type Return = { readonly kind: "keep_term"; readonly reason: string } | { readonly kind: "campaign_new_term"; readonly reason: string } | { readonly kind: "fence"; readonly reason: string };

export function onEtcdReturn(v: {
  readonly self: string;
  readonly term: number;
  readonly leaseAlive: boolean;
  readonly leader: { readonly node: string; readonly term: number } | null;
  readonly failsafeDeadlineHolds: boolean;
}): Return {
  const l = v.leader;
  if (l && l.node === v.self && l.term === v.term && v.leaseAlive)
    return { kind: "keep_term", reason: `etcd is back and the leader key still names me (term ${v.term}): the lease takes over from failsafe` };
  if (l) return { kind: "fence", reason: `etcd is back and the leader key names ${l.node} (term ${l.term}), not me (term ${v.term}): fencing` };
  if (!v.failsafeDeadlineHolds) return { kind: "fence", reason: "etcd is back, my leader key is gone and my failsafe deadline passed: fencing" };
  return { kind: "campaign_new_term", reason: `etcd is back and my leader key (term ${v.term}) expired while I held on failsafe: campaigning for a new term before anything else` };
}

/**
 * E1: the failsafe/members record a primary should write now, "delete" to remove a stale one
 * (failsafe off here: its newcomers must not be held by an old list), or null when it is right.
 */
export function membershipToPublish(v: {
  readonly enabled: boolean;
  readonly self: string;
  readonly term: number;
  readonly observed: readonly string[];
  readonly listed: { readonly term: number; readonly nodes: readonly string[] } | null;
  /** The key is present but does not decode (it stops every campaign until rewritten or removed). */
  readonly invalid?: boolean;
}): { readonly term: number; readonly nodes: readonly string[] } | "delete" | null {
  if (!v.enabled) return v.listed === null && !v.invalid ? null : "delete";
  const nodes = [...new Set([v.self, ...v.observed])].sort();
  const same = v.listed !== null && v.listed.term === v.term && v.listed.nodes.length === nodes.length && [...v.listed.nodes].sort().every((n, i) => n === nodes[i]);
  return same ? null : { term: v.term, nodes };
}

/**
 * E2' (the way out of a stale list): with the leader key vacant, a listed node that is bound by
 * no promise or start-up hold may add the members it sees to failsafe/members. Safe because a
 * failsafe primary holds only on a grant of every listed node within ttl + margin, and this one
 * gave none: no such primary exists. Without it, a list written by a primary that then fenced
 * (or from a snapshot missing members) kept a better-placed unlisted node out for good.
 * The nodes to write, or null (nothing to add, or not for this node to do).
 */
export function listToWiden(listed: readonly string[] | null, self: string, observed: readonly string[]): readonly string[] | null {
  if (listed === null || !listed.includes(self)) return null;
  const missing = observed.filter((n) => !listed.includes(n));
  return missing.length === 0 ? null : [...new Set([...listed, ...missing])].sort();
}

/** E2: whether the written failsafe membership lets this node campaign. */
export function listedForCampaign(listed: readonly string[] | null, self: string): string | null {
  if (listed === null || listed.includes(self)) return null;
  return `not campaigning: failsafe/members (${listed.join(", ")}) does not list me, so a failsafe primary never asked me`;
}

/** The string the answer's MAC covers (the API signs it with the token; the primary checks it). */
export function grantMacInput(a: Pick<GrantAnswer, "node" | "granted" | "leaseMs" | "nonce">): string {
  return `understudy-failsafe-v1|${a.node}|${a.granted ? 1 : 0}|${a.leaseMs}|${a.nonce}`;
}
