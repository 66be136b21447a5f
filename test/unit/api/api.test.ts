import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { bearerMatches } from "../../../src/api/auth.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { member } from "../../fakes/member.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };

const primaryView: NodeView = {
  node: "n1",
  acting: "primary",
  term: 7,
  leaseRemainingMs: 3000,
  etcdReachable: true,
  decision: "no action: I am n1",
  sinceLastCycleMs: 100,
  vipHeld: true,
  daemonRunning: true,
  probes: [{ name: "sftp", critical: true, up: true, detail: "SSH-2.0-OpenSSH" }],
  healthy: true,
  notReady: null,
};

async function setup(view: Partial<NodeView> = {}, opts: { token?: string | null; authReads?: boolean } = {}) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(60_000);
  await etcd.campaign("n1", lease.id, "");
  for (const m of [member("n1", { role: "primary" }), member("n2"), member("n3", { healthy: false }), member("n4", { generation: -1 })]) await etcd.putMember(m, lease.id);
  let v: NodeView = { ...primaryView, ...view };
  const metrics = new AgentMetrics(() => v, { cluster: "c", node: "n1" });
  const app = buildApi({
    view: () => v,
    coordinator: etcd,
    metrics,
    clock,
    log: silentLogger(),
    token: opts.token === undefined ? TOKEN : opts.token,
    authReads: opts.authReads ?? false,
    livenessMaxMs: 5000,
    failbackPreferred: "n2",
  });
  return { app, etcd, clock, metrics, setView: (nv: Partial<NodeView>) => (v = { ...v, ...nv }) };
}

test("GET /primary: 200 only on the lease holder", async () => {
  const { app, setView } = await setup();
  assert.equal((await app.inject({ url: "/primary" })).statusCode, 200);
  setView({ leaseRemainingMs: 0 });
  assert.equal((await app.inject({ url: "/primary" })).statusCode, 503, "deadline passed: not primary any more");
  setView({ acting: "standby", term: null, leaseRemainingMs: 3000 });
  const r = await app.inject({ url: "/primary" });
  assert.equal(r.statusCode, 503);
  assert.equal(r.json().acting, "standby");
});

test("GET /standby, /health, /readiness, /liveness reflect the node", async () => {
  const { app, setView } = await setup({ acting: "standby", term: null, vipHeld: false, daemonRunning: false });
  assert.equal((await app.inject({ url: "/standby" })).statusCode, 200);
  assert.equal((await app.inject({ url: "/health" })).statusCode, 200);
  assert.equal((await app.inject({ url: "/readiness" })).statusCode, 200);
  assert.equal((await app.inject({ url: "/liveness" })).statusCode, 200);
  setView({ healthy: false, notReady: "sshd -t failed" });
  assert.equal((await app.inject({ url: "/standby" })).statusCode, 503);
  assert.equal((await app.inject({ url: "/readiness" })).statusCode, 503);
  setView({ sinceLastCycleMs: 60_000 });
  assert.equal((await app.inject({ url: "/liveness" })).statusCode, 503, "a frozen HA loop fails liveness");
  setView({ acting: "primary", term: 3, healthy: true, daemonRunning: false });
  assert.equal((await app.inject({ url: "/health" })).statusCode, 503, "primary without its daemon is not healthy");
  setView({ etcdReachable: false, daemonRunning: true });
  assert.equal((await app.inject({ url: "/readiness" })).statusCode, 503);
});

test("GET /cluster and /history read etcd", async () => {
  const { app, etcd } = await setup();
  const c = await app.inject({ url: "/cluster" });
  assert.equal(c.statusCode, 200);
  assert.equal(c.json().leader.node, "n1");
  assert.equal(c.json().members.length, 4);
  await etcd.appendHistory({ kind: "failover", at: "", node: "n1", from: "n2", to: "n1", term: 7, reason: "x" }, null);
  const h = await app.inject({ url: "/history?limit=5" });
  assert.equal(h.json().events.length, 1);
  assert.equal((await app.inject({ url: "/history?limit=0" })).statusCode, 400);
  assert.equal((await app.inject({ url: "/history?bogus=1" })).statusCode, 400);
});

test("GET /cluster answers 503 with a coded error when etcd is unreachable", async () => {
  const { app, etcd } = await setup();
  etcd.unreachable = true;
  const r = await app.inject({ url: "/cluster" });
  assert.equal(r.statusCode, 503);
  assert.equal(r.json().error, "US_E_ETCD_UNREACHABLE");
});

test("GET /metrics exposes understudy_ metrics in Prometheus text", async () => {
  const { app, metrics } = await setup();
  metrics.observe({ type: "promoted", kind: "failover", term: 7, vacancyMs: 1500, promoteMs: 40 });
  metrics.observe({ type: "fenced" });
  const r = await app.inject({ url: "/metrics" });
  assert.equal(r.statusCode, 200);
  assert.match(r.headers["content-type"] as string, /text\/plain/);
  const body = r.body;
  for (const line of [
    /understudy_role\{role="primary",cluster="c",node="n1"\} 1/,
    /understudy_leader_term\{cluster="c",node="n1"\} 7/,
    /understudy_lease_remaining_seconds\{cluster="c",node="n1"\} 3/,
    /understudy_probe_up\{probe="sftp",critical="true",cluster="c",node="n1"\} 1/,
    /understudy_vip_held\{cluster="c",node="n1"\} 1/,
    /understudy_etcd_reachable\{cluster="c",node="n1"\} 1/,
    /understudy_promotions_total\{kind="failover",cluster="c",node="n1"\} 1/,
    /understudy_fence_events_total\{cluster="c",node="n1"\} 1/,
    /understudy_last_failover_duration_seconds\{cluster="c",node="n1"\} 1.5/,
    /understudy_process_resident_memory_bytes/,
  ])
    assert.match(body, line);
});

test("mutations need the bearer token: 401 without, with a wrong one, or when none is configured", async () => {
  const { app } = await setup();
  for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: `Basic ${TOKEN}` }]) {
    const r = await app.inject({ method: "POST", url: "/pause", headers, payload: {} });
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error, "US_E_API_UNAUTHORIZED");
    assert.ok(!r.body.includes(TOKEN), "!r.body.includes(TOKEN)");
  }
  const none = await setup({}, { token: null });
  const r = await none.app.inject({ method: "POST", url: "/pause", headers: AUTH, payload: {} });
  assert.equal(r.statusCode, 401);
  assert.match(r.json().message, /no API token is configured/);
  const reads = await setup({}, { authReads: true });
  assert.equal((await reads.app.inject({ url: "/cluster" })).statusCode, 401);
  assert.equal((await reads.app.inject({ url: "/cluster", headers: AUTH })).statusCode, 200);
});

test("bearer comparison: exact token only", () => {
  assert.equal(bearerMatches(`Bearer ${TOKEN}`, TOKEN), true);
  assert.equal(bearerMatches(`bearer ${TOKEN}`, TOKEN), true);
  assert.equal(bearerMatches(`Bearer ${TOKEN}x`, TOKEN), false);
  assert.equal(bearerMatches(`Bearer ${TOKEN.slice(1)}`, TOKEN), false);
  assert.equal(bearerMatches(undefined, TOKEN), false);
  assert.equal(bearerMatches(`Bearer ${TOKEN}`, null), false);
});

test("POST /switchover: 202 writes the request and records who asked", async () => {
  const { app, etcd } = await setup();
  const r = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2", reason: "kernel update", requested_by: "alice" } });
  assert.equal(r.statusCode, 202, r.body);
  assert.deepEqual({ ...etcd.switchover, requestedAt: "" }, { kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "alice", reason: "kernel update", requestedAt: "" });
  assert.equal(etcd.historyEvents.at(-1)?.kind, "request");
  assert.equal(etcd.historyEvents.at(-1)?.requestedBy, "alice");
});

test("POST /switchover without a target names the best standby in the request (no re-election livelock)", async () => {
  const { app, etcd } = await setup();
  const r = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: {} });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(etcd.switchover?.from, "n1");
  assert.equal(etcd.switchover?.to, "n2", "the eligible standby (n3 is unhealthy, n4 lags in sync)");
});

test("POST /switchover refusals: 412 with a reason, 400 on bad bodies", async () => {
  const cases: [unknown, number, RegExp][] = [
    [{ to: "n1" }, 412, /n1 is already the primary/],
    [{ to: "n3" }, 412, /n3 is not healthy or not ready/],
    [{ to: "n4" }, 412, /n4 is behind in sync/],
    [{ to: "n9" }, 412, /n9 is not a live member/],
    [{ to: "N2!" }, 400, /to/],
    [{ to: "n2", colour: "red" }, 400, /^colour: unknown field$/],
    [{ to: "n2", at: "yesterday" }, 400, /date-time/],
    [{ to: "n2", at: "2020-01-01T00:00:00Z" }, 400, /must be a time in the future/],
  ];
  for (const [payload, status, message] of cases) {
    const { app, etcd } = await setup();
    const r = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: payload as object });
    assert.equal(r.statusCode, status, `${JSON.stringify(payload)}: ${r.body}`);
    assert.equal(r.json().error, status === 400 ? "US_E_API_BAD_REQUEST" : "US_E_API_PRECONDITION");
    assert.match(r.json().message, message);
    assert.equal(etcd.switchover, null, "nothing written");
  }
});

test("POST /switchover: 412 while another is pending; DELETE /switchover cancels it", async () => {
  const { app, etcd } = await setup();
  assert.equal((await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2" } })).statusCode, 202);
  const again = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: {} });
  assert.equal(again.statusCode, 412);
  assert.match(again.json().message, /already pending/);
  assert.equal((await app.inject({ method: "DELETE", url: "/switchover", headers: AUTH })).statusCode, 202);
  assert.equal(etcd.switchover, null);
  assert.equal((await app.inject({ method: "DELETE", url: "/switchover", headers: AUTH })).statusCode, 412);
});

test("POST /switchover with a future time schedules it", async () => {
  const { app, etcd, clock } = await setup();
  const at = new Date(clock.wallMs() + 3_600_000).toISOString();
  const r = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2", at } });
  assert.equal(r.statusCode, 202);
  assert.equal(etcd.switchover?.at, at);
});

test("POST /failover: refused to a stale or unhealthy node without force, accepted with it; works without a primary", async () => {
  const { app, etcd } = await setup();
  const refused = await app.inject({ method: "POST", url: "/failover", headers: AUTH, payload: { to: "n4" } });
  assert.equal(refused.statusCode, 412);
  assert.match(refused.json().message, /behind in sync.*repeat with force/);
  assert.equal((await app.inject({ method: "POST", url: "/failover", headers: AUTH, payload: {} })).statusCode, 400, "to is required");
  const forced = await app.inject({ method: "POST", url: "/failover", headers: AUTH, payload: { to: "n4", force: true } });
  assert.equal(forced.statusCode, 202);
  assert.equal(etcd.switchover?.kind, "failover");
  assert.equal(etcd.switchover?.force, true);
  await etcd.cancelSwitchover();
  await etcd.resign(etcd.leader!.term);
  const noPrimary = await app.inject({ method: "POST", url: "/failover", headers: AUTH, payload: { to: "n2" } });
  assert.equal(noPrimary.statusCode, 202);
  assert.equal(etcd.switchover?.from, null);
  const sw = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: {} });
  assert.equal(sw.statusCode, 412);
});

test("POST /failback targets the preferred node", async () => {
  const { app, etcd } = await setup();
  const r = await app.inject({ method: "POST", url: "/failback", headers: AUTH, payload: { reason: "back home" } });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(etcd.switchover?.kind, "failback");
  assert.equal(etcd.switchover?.to, "n2");
});

test("POST /pause and /resume toggle maintenance, 412 when already so", async () => {
  const { app, etcd } = await setup();
  assert.equal((await app.inject({ method: "POST", url: "/pause", headers: AUTH, payload: { reason: "etcd upgrade" } })).statusCode, 202);
  assert.equal(etcd.paused, true);
  assert.equal((await app.inject({ method: "POST", url: "/pause", headers: AUTH, payload: {} })).statusCode, 412);
  assert.equal((await app.inject({ method: "POST", url: "/resume", headers: AUTH })).statusCode, 202);
  assert.equal(etcd.paused, false);
  assert.deepEqual(
    etcd.historyEvents.map((e) => e.kind),
    ["pause", "resume"],
  );
});

test("POST /ban and /unban", async () => {
  const { app, etcd } = await setup();
  const r = await app.inject({ method: "POST", url: "/ban", headers: AUTH, payload: { node: "n2", duration: "30m", reason: "flaky disk" } });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(etcd.bans.get("n2")?.record.reason, "flaky disk");
  assert.equal((await app.inject({ method: "POST", url: "/ban", headers: AUTH, payload: { node: "n1", duration: "30m" } })).statusCode, 412, "not the primary");
  assert.equal((await app.inject({ method: "POST", url: "/ban", headers: AUTH, payload: { node: "n2", duration: "forever" } })).statusCode, 400);
  assert.equal((await app.inject({ method: "POST", url: "/unban", headers: AUTH, payload: { node: "n2" } })).statusCode, 202);
  assert.equal(etcd.bans.size, 0);
});

test("POST /switchover with a drain: the request carries drainMs; a bad drain is 400 and nothing is written", async () => {
  const { app, etcd } = await setup();
  const r = await app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2", drain: "90s" } });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(etcd.switchover?.drainMs, 90_000);
  assert.match((await etcd.history(10)).at(-1)!.reason, /switchover requested with a drain of up to 90s/);
  for (const drain of ["soon", "500ms", "25h", ""]) {
    const s = await setup();
    const bad = await s.app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2", drain } });
    assert.equal(bad.statusCode, 400, `${drain}: ${bad.body}`);
    assert.equal(bad.json().error, "US_E_API_BAD_REQUEST");
    assert.equal(s.etcd.switchover, null);
  }
  const plain = await setup();
  await plain.app.inject({ method: "POST", url: "/switchover", headers: AUTH, payload: { to: "n2" } });
  assert.equal("drainMs" in plain.etcd.switchover!, false, "no drain asked: no drainMs");
});
