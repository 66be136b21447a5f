// API hardening (issue 11, item 3): connection limit, header timeout, body limits
// per route, no type coercion of node names, rate-limited refusal log lines.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import pino from "pino";
import { RefusalLogLimiter } from "../../../src/api/auth.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { API_LIMITS, buildApi, type ApiLimits } from "../../../src/api/server.js";
import type { NodeView } from "../../../src/ha/events.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const view: NodeView = {
  node: "n1",
  acting: "primary",
  term: 7,
  leaseRemainingMs: 3000,
  etcdReachable: true,
  decision: "no action",
  sinceLastCycleMs: 100,
  vipHeld: true,
  daemonRunning: true,
  probes: [],
  healthy: true,
  notReady: null,
};

function setup(limits?: Partial<ApiLimits>) {
  const clock = new FakeClock();
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const app = buildApi({
    view: () => view,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
    clock,
    log,
    token: TOKEN,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    limits: { ...API_LIMITS, ...limits },
  });
  return { app, clock, lines };
}

test("node names are strings matching the node pattern: numbers and arrays are not coerced into names", async () => {
  const { app } = setup();
  for (const to of [7, ["n2"], true, "N2", "n2;rm", "-n2", "x".repeat(64)]) {
    const r = await app.inject({ method: "POST", url: "/failover", headers: AUTH, payload: { to, force: true } });
    assert.equal(r.statusCode, 400, `to=${JSON.stringify(to)} answered ${r.statusCode} ${r.body}`);
    assert.equal(r.json().error, "US_E_API_BAD_REQUEST");
  }
  for (const node of [12, ["n2"]]) {
    const r = await app.inject({ method: "POST", url: "/ban", headers: AUTH, payload: { node, duration: "5m" } });
    assert.equal(r.statusCode, 400, `ban node=${JSON.stringify(node)}`);
  }
});

test("mutations take bodies of at most 4 KiB (413), and GET /history a limit of 1-1000 in digits", async () => {
  const { app } = setup();
  const big = await app.inject({ method: "POST", url: "/pause", headers: AUTH, payload: { reason: "x".repeat(5000) } });
  assert.equal(big.statusCode, 413);
  const ok = await app.inject({ method: "POST", url: "/pause", headers: AUTH, payload: { reason: "x".repeat(400) } });
  assert.equal(ok.statusCode, 202, ok.body);
  assert.equal((await app.inject({ url: "/history?limit=1000" })).statusCode, 200);
  for (const limit of ["0", "1001", "abc", "1e3", "-1"]) assert.equal((await app.inject({ url: `/history?limit=${limit}` })).statusCode, 400, limit);
});

test("refused requests log one line, then at most one per interval carrying the count", async () => {
  const { app, clock, lines } = setup({ refusalLogIntervalMs: 10_000 });
  for (let i = 0; i < 50; i++) assert.equal((await app.inject({ method: "POST", url: "/pause", headers: { authorization: "Bearer wrong" } })).statusCode, 401);
  const refused = () => lines.filter((l) => l.msg === "API request refused: unauthorized");
  assert.equal(refused().length, 1);
  await clock.advance(10_000);
  await app.inject({ method: "POST", url: "/pause", headers: { authorization: "Bearer wrong" } });
  assert.equal(refused().length, 2);
  assert.equal(refused()[1]!.refused_since_last_line, 49);
  assert.ok(!JSON.stringify(lines).includes("wrong"), "the offered token is never logged");
});

test("RefusalLogLimiter: first admitted, then one per interval", () => {
  let now = 0;
  const l = new RefusalLogLimiter(1000, () => now);
  assert.deepEqual(l.admit(), { suppressed: 0 });
  assert.equal(l.admit(), null);
  now = 999;
  assert.equal(l.admit(), null);
  now = 1000;
  assert.deepEqual(l.admit(), { suppressed: 2 });
});

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.on("error", reject);
  });
}
function closed(s: Socket, withinMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    s.resume(); // read (and drop) whatever the server answers, or 'close' never comes
    const t = setTimeout(() => resolve(false), withinMs);
    s.on("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

test("a real listener: connections past maxConnections are closed on accept; headers that never finish are cut off", async () => {
  const { app } = setup({ maxConnections: 3, headersTimeoutMs: 300, requestTimeoutMs: 600 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) sockets.push(await open(port));
    const extra = await open(port);
    sockets.push(extra);
    assert.ok(await closed(extra, 5000), "the fourth connection was closed by the server");
    for (const s of sockets.slice(0, 3)) assert.equal(s.destroyed, false, "the first three stay open");
    // A slowloris: a request line and never the end of the headers.
    sockets[0]!.write("GET /primary HTTP/1.1\r\nHost: x\r\n");
    const t0 = performance.now();
    let answer = "";
    sockets[0]!.on("data", (d: Buffer) => (answer += d.toString()));
    assert.ok(await closed(sockets[0]!, 10_000), "the server cut the unfinished request off (Node's default would wait 60 s)");
    assert.ok(performance.now() - t0 < 10_000, "performance.now() - t0 < 10_000");
    assert.match(answer, /^HTTP\/1\.1 408 /);
  } finally {
    for (const s of sockets) s.destroy();
    await app.close();
  }
});
