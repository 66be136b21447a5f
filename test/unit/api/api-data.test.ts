// The data routes of the REST API (src/api/data.ts): GET /data, POST /data/notify.
// A strict fake DataControl: it fails the test on any call the case did not
// expect, so "refused" also proves "nothing was journaled".
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi, type ApiDeps } from "../../../src/api/server.js";
import { NOTIFY_MAX_PATHS } from "../../../src/api/data.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { DataControl, DataStatus } from "../../../src/data/port.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

const VIEW: NodeView = {
  node: "n1",
  acting: "primary",
  term: 7,
  leaseRemainingMs: 3000,
  etcdReachable: true,
  decision: "",
  sinceLastCycleMs: 100,
  vipHeld: true,
  daemonRunning: true,
  probes: [],
  healthy: true,
  notReady: null,
};

const STATUS: DataStatus = {
  role: "primary",
  term: 7,
  roots: [{ name: "uploads", path: "/srv/sftp", freeBytes: 1_000_000 }],
  journal: { head: 42, pending: 1, ready: 3 },
  standbys: [
    {
      node: "n2",
      acked: 40,
      files: 2,
      bytes: 2048,
      seconds: 0.4,
      full: false,
      paused: null,
      step: "shipping 2 change(s), 2048 B to n2: seq 41..42",
      lastError: null,
      lastSuccessAt: "2026-01-01T00:00:00.000Z",
    },
    {
      node: "n3",
      acked: 10,
      files: 32,
      bytes: 33_554_432,
      seconds: 41,
      full: false,
      paused: "paused: n3's data volume is full (0 B free, reserve 64 MiB); retrying in 30000ms or when it reports 64 MiB free; the primary is not affected",
      step: "paused: n3's data volume is full",
      lastError: "US_E_DATA_DISK_FULL: No space left on device",
      lastSuccessAt: null,
    },
  ],
  self: { receiving: null, rejoin: null, freeBytes: 1_000_000, lag: null, step: "shipping" },
};

type Notify = DataControl["notify"];

/** Fails on any call the test did not arm. */
class StrictData implements DataControl {
  readonly notified: string[][] = [];
  constructor(private readonly answer: { notify?: Notify; status?: boolean } = {}) {}
  notify(paths: readonly string[]) {
    if (!this.answer.notify) assert.fail(`unexpected notify(${JSON.stringify(paths)})`);
    this.notified.push([...paths]);
    return this.answer.notify(paths);
  }
  status(): DataStatus {
    if (!this.answer.status) assert.fail("unexpected status()");
    return STATUS;
  }
  progress(): never {
    return assert.fail("unexpected progress()");
  }
}

function setup(data: ApiDeps["data"] | undefined, view: NodeView = VIEW) {
  const clock = new FakeClock();
  return buildApi({
    view: () => view,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => view, { cluster: "c", node: view.node }),
    clock,
    log: silentLogger(),
    token: TOKEN,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(data ? { data } : {}),
  });
}

const inRoot: Notify = (paths) => ({ role: "primary", accepted: paths.filter((p) => p.startsWith("/srv/sftp/")).length, ignored: paths.filter((p) => !p.startsWith("/srv/sftp/")) });

test("GET /data answers the engine's status with the node's name", async () => {
  const app = setup(new StrictData({ status: true }));
  const r = await app.inject({ url: "/data" });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { node: "n1", ...STATUS });
});

test("GET /data and POST /data/notify on a node without data roots: 404 saying so", async () => {
  const app = setup(undefined);
  for (const r of [await app.inject({ url: "/data" }), await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: { paths: ["/srv/sftp/a"] } })]) {
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().error, "US_E_API_PRECONDITION");
    assert.match(r.json().message, /data replication is not configured on this node \(no data section\)/);
  }
});

test("POST /data/notify needs the bearer token like every mutation; refused requests journal nothing", async () => {
  const app = setup(new StrictData());
  for (const headers of [{ "content-type": "application/json" }, { ...AUTH, authorization: "Bearer wrong" }]) {
    const r = await app.inject({ method: "POST", url: "/data/notify", headers, payload: { paths: ["/srv/sftp/a"] } });
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error, "US_E_API_UNAUTHORIZED");
  }
});

test("POST /data/notify on the primary: 202 with accepted and ignored (paths outside every root are not an error)", async () => {
  const data = new StrictData({ notify: inRoot });
  const app = setup(data);
  const r = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: { paths: ["/srv/sftp/alice/in/a.csv", "/etc/passwd", "/srv/sftp/bob/"] } });
  assert.equal(r.statusCode, 202, r.body);
  assert.deepEqual(r.json(), { node: "n1", role: "primary", accepted: 2, ignored: ["/etc/passwd"] });
  assert.deepEqual(data.notified, [["/srv/sftp/alice/in/a.csv", "/etc/passwd", "/srv/sftp/bob/"]]);
});

test("POST /data/notify on a standby: 409 naming the role, so a hook pointed at the wrong node learns why", async () => {
  const data = new StrictData({ notify: (paths) => ({ role: "standby", accepted: 0, ignored: [...paths] }) });
  const app = setup(data, { ...VIEW, acting: "standby", term: null });
  const r = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: { paths: ["/srv/sftp/a"] } });
  assert.equal(r.statusCode, 409, r.body);
  assert.equal(r.json().error, "US_E_API_PRECONDITION");
  assert.equal(r.json().role, "standby");
  assert.equal(r.json().accepted, 0);
  assert.match(r.json().message, /a standby: only the primary ships data/);
});

test("POST /data/notify with bad input: 400 US_E_API_BAD_REQUEST naming the field, nothing journaled", async () => {
  const app = setup(new StrictData());
  const cases: readonly [payload: unknown, message: RegExp][] = [
    [{}, /^paths: /],
    [{ paths: [] }, /^paths: must list at least one path/],
    [{ paths: "/srv/sftp/a" }, /^paths: /],
    [{ paths: ["/srv/sftp/a", "relative/b"] }, /^paths\[1\]: must be an absolute path/],
    [{ paths: ["/srv/sftp/a", 7] }, /^paths\[1\]: /],
    [{ paths: [""] }, /^paths\[0\]: must not be empty/],
    [{ paths: ["/srv/sftp/a\u0000b"] }, /^paths\[0\]: must not contain a NUL byte/],
    [{ paths: ["/srv/sftp/../../etc/shadow"] }, /^paths\[0\]: must not contain '\.\.'/],
    [{ paths: [`/${"x".repeat(4096)}`] }, /^paths\[0\]: must be at most 4096 characters/],
    [{ paths: Array.from({ length: NOTIFY_MAX_PATHS + 1 }, (_, i) => `/d/${i}`) }, /^paths: must list at most 1000 paths/],
    [{ paths: ["/srv/sftp/a"], force: true }, /^force: unknown field/],
    [["/srv/sftp/a"], /^body: must be a JSON object/],
    [null, /^body: must be a JSON object/],
  ];
  for (const [payload, message] of cases) {
    const r = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: JSON.stringify(payload) });
    assert.equal(r.statusCode, 400, `${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
    assert.equal(r.json().error, "US_E_API_BAD_REQUEST");
    assert.match(r.json().message, message, JSON.stringify(payload).slice(0, 80));
  }
  const broken = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: '{"paths": [' });
  assert.equal(broken.statusCode, 400);
  assert.equal(broken.json().error, "US_E_API_BAD_REQUEST");
});

test("POST /data/notify bounds the body: 64 KiB passes, more is 413 before any parsing", async () => {
  const data = new StrictData({ notify: inRoot });
  const app = setup(data);
  const near = Array.from({ length: 900 }, (_, i) => `/srv/sftp/${String(i).padStart(55, "0")}`);
  const ok = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: { paths: near } });
  assert.ok(JSON.stringify({ paths: near }).length > 16 * 1024, "larger than the other mutations' limit");
  assert.equal(ok.statusCode, 202, ok.body);
  assert.equal(ok.json().accepted, 900);
  const big = Array.from({ length: 1000 }, (_, i) => `/srv/sftp/${String(i).padStart(70, "0")}`);
  const r = await app.inject({ method: "POST", url: "/data/notify", headers: AUTH, payload: { paths: big } });
  assert.equal(r.statusCode, 413, r.body);
  assert.equal(data.notified.length, 1, "the oversized request journaled nothing");
});
