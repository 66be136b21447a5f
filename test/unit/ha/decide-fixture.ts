import type { Observation } from "../../../src/ha/observation.js";
import type { SwitchoverRequest } from "../../../src/coordinator/port.js";
import type { PromotionGates } from "../../../src/ha/promotion.js";
import { member } from "../../fakes/member.js";

// Observations for the pure planners' tests (decide.test.ts, handover.test.ts).

export const NOW = 100_000;
export const WALL = Date.UTC(2026, 10, 22, 12, 0, 0);

export function obs(over: Partial<Observation> = {}, cluster: Partial<NonNullable<Observation["cluster"]>> | null = {}): Observation {
  return {
    nowMs: NOW,
    wallNowMs: WALL,
    self: { name: "n1", priority: 100, nofailover: false, generation: 0 },
    mode: "cold",
    acting: "standby",
    term: null,
    servingSinceMs: null,
    lease: { id: "a1", deadlineMs: NOW + 4000 },
    cluster: cluster === null ? null : { revision: 10, leader: null, members: [member("n1")], paused: false, switchover: null, released: null, bans: [], sync: null, ...cluster },
    etcdError: cluster === null ? "partitioned" : null,
    vacantSinceMs: NOW,
    daemon: { running: false, probesUp: true, recentRestarts: 0 },
    restartsBeforeHandover: 1,
    rankingDelayMs: 500,
    coolDownUntilMs: 0,
    coolDownMs: 10_000,
    notReady: null,
    failback: { policy: "manual", preferred: null, delayMs: 300_000 },
    preferredReadySinceMs: null,
    switchoverWaitMs: 1500,
    sync: { enabled: true, behindSinceMs: null, maximumLagMs: 60_000 },
    ...over,
  };
}

export const primary = (over: Partial<Observation> = {}, cluster: Partial<NonNullable<Observation["cluster"]>> | null = {}) =>
  obs(
    { acting: "primary", term: 7, daemon: { running: true, probesUp: true, recentRestarts: 0 }, ...over },
    cluster === null ? null : { leader: { node: "n1", term: 7, lease: "a1", acquiredAt: "" }, members: [member("n1", { role: "primary" }), member("n2")], ...cluster },
  );

export const sw = (over: Partial<SwitchoverRequest> = {}): SwitchoverRequest => ({
  kind: "switchover",
  from: "n1",
  to: "n2",
  at: null,
  force: false,
  requestedBy: "ops",
  reason: "patching n1",
  requestedAt: "",
  ...over,
});

/** A promotion under way (term 9, won on lease a1), its gates as answered so far. */
export const gates = (over: Partial<PromotionGates> = {}): Partial<Observation> => ({
  promotionBudgetMs: 1000,
  promotion: {
    term: 9,
    via: "won",
    leaseId: "a1",
    prePromoteConfigured: false,
    prePromote: undefined,
    watchdogMode: "off",
    watchdogDevice: "/dev/watchdog",
    guardPresent: false,
    watchdog: undefined,
    lastLeaderTerm: null,
    ...over,
  },
});
