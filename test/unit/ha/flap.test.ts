import assert from "node:assert/strict";
import { test } from "node:test";
import type { HistoryEvent } from "../../../src/coordinator/port.js";
import { flapView, isDamped } from "../../../src/ha/flap.js";

const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const ev = (kind: HistoryEvent["kind"], s: number, reason = ""): HistoryEvent => ({ kind, at: at(s), node: "n1", from: null, to: null, term: null, reason });
const handover = (s: number) => ev("handover", s, "n2 released the role (handover)");
const settings = { maxMoves: 3, windowMs: 600_000 };

test("flap: health-driven handovers within the window are counted, cluster-wide from history", () => {
  const events = [handover(0), handover(100), ev("switchover", 150, "planned"), ev("handover", 160, "n1 released the role (switchover)"), ev("failover", 170), handover(200)];
  const v = flapView(events, T0 + 300_000, settings);
  assert.equal(v.moves, 3, "switchovers, failovers and other releases do not count");
  assert.ok(isDamped(v), "isDamped(v)");
  assert.equal(flapView(events, T0 + 700_000 + 1, settings).moves, 1, "older than the window: aged out");
});

test("flap: a flap_damped event holds until a flap_clear, whatever the window", () => {
  const events = [handover(0), handover(10), handover(20), ev("flap_damped", 30, "3 moves")];
  const later = flapView(events, T0 + 3_600_000, settings);
  assert.equal(later.moves, 0);
  assert.deepEqual(later.damped, { at: at(30), reason: "3 moves" });
  assert.ok(isDamped(later), "isDamped(later)");
  const cleared = flapView([...events, ev("flap_clear", 40)], T0 + 60_000, settings);
  assert.equal(cleared.damped, null);
  assert.equal(cleared.moves, 0, "moves before the clear are not counted again");
  assert.ok(!isDamped(cleared), "!isDamped(cleared)");
  assert.equal(flapView([...events, ev("flap_clear", 40), handover(50)], T0 + 60_000, settings).moves, 1);
});

test("flap: max_moves 0 turns damping off", () => {
  const v = flapView([handover(0), handover(1), handover(2), ev("flap_damped", 3)], T0 + 10_000, { maxMoves: 0, windowMs: 600_000 });
  assert.ok(!isDamped(v), "!isDamped(v)");
});

test("POST /flap/clear: authenticated, writes flap_clear to history, says whether damping was in force", async () => {
  const { buildApi } = await import("../../../src/api/server.js");
  const { AgentMetrics } = await import("../../../src/api/metrics.js");
  const { silentLogger } = await import("../../../src/platform/logger.js");
  const { FakeClock } = await import("../../fakes/clock.js");
  const { FakeCoordinator } = await import("../../fakes/coordinator.js");
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const view = {
    node: "n2",
    acting: "standby",
    term: null,
    leaseRemainingMs: 3000,
    etcdReachable: true,
    decision: "",
    sinceLastCycleMs: 1,
    vipHeld: false,
    daemonRunning: false,
    probes: [],
    healthy: true,
    notReady: null,
  } as const;
  const token = "t".repeat(24);
  const app = buildApi({
    view: () => view,
    coordinator: etcd,
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n2" }),
    clock,
    log: silentLogger(),
    token,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
  });
  const clear = (auth?: string) => app.inject({ method: "POST", url: "/flap/clear", payload: { requested_by: "ops" }, ...(auth ? { headers: { authorization: `Bearer ${auth}` } } : {}) });
  try {
    assert.equal((await clear()).statusCode, 401, "needs the token");
    assert.equal(etcd.historyEvents.length, 0);
    etcd.historyEvents.push({ ...ev("flap_damped", 0, "2 health-driven handovers within 10m"), at: new Date(clock.wallMs() - 1000).toISOString() });
    const r = await clear(token);
    assert.equal(r.statusCode, 202);
    assert.equal(r.json().wasDamped, true);
    const last = etcd.historyEvents.at(-1)!;
    assert.equal(last.kind, "flap_clear");
    assert.equal(last.requestedBy, "ops");
    assert.match(last.reason, /^cleared: 2 health-driven handovers/);
    assert.equal((await clear(token)).json().wasDamped, false, "a second clear finds nothing in force");
  } finally {
    await app.close();
  }
});

test("flap: a release that carries its reason still counts (the chronicle writes `(handover: REASON)`), other releases do not", () => {
  const events = [
    ev("handover", 0, "n2 released the role (handover: handing over: the daemon is not running after 0 restart(s); n1 is a healthy standby)"),
    ev("handover", 10, "n1 released the role (handover: handing over: primary without the floating IP for 31s, over vip.hold_timeout 30s (US_E_TOOL_MISSING: arping); n2 is a healthy standby)"),
    ev("handover", 20, "n2 released the role (switchover: planned by alice)"),
    ev("handover", 30, "n2 released the role (shutdown)"),
  ];
  assert.equal(flapView(events, T0 + 60_000, settings).moves, 2);
});
