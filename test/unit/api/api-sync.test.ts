// The sync routes of the REST API (src/api/server.ts, control.ts): GET /sync,
// GET /sync/manifest/:root, POST /resync; and their answers on a node
// without a sync section.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { buildApi, type ApiDeps } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { standbyView } from "../../fakes/node-view.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { SyncEngine, type SyncStatus } from "../../../src/sync/engine.js";
import { manifestOf, type Manifest } from "../../../src/sync/manifest.js";
import { SyncStateStore } from "../../../src/sync/state.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { FakePublisher, FakePuller } from "../../fakes/sync.js";
import { tempDir } from "../../fakes/tree.js";
import { NODE_DURABLE_FS } from "../../../src/platform/node-durable-fs.js";

const TOKEN = "s3cret-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };

const VIEW = standbyView();

const MANIFEST: Manifest = manifestOf("ssh", [{ path: "sshd_config", type: "file", size: 8, mode: 0o644, uid: 0, gid: 0, mtimeMs: 1_700_000_000_000, sha256: "a".repeat(64) }]);

const STATUS: SyncStatus = {
  node: "n2",
  role: "standby",
  generation: 4,
  published: { generation: 5, digest: "d".repeat(64), source: "n1", term: 7, publishedAt: "2026-01-01T00:00:00.000Z" },
  inSync: false,
  behindSince: "2026-01-01T00:00:01.000Z",
  lagMs: 1500,
  lastSuccessAt: "2026-01-01T00:00:00.500Z",
  lastError: { code: "US_E_SYNC_VALIDATOR_FAILED", message: "validator sshd rejected the staged files", at: "2026-01-01T00:00:01.200Z" },
  failures: 2,
  waiting: null,
  roots: [{ name: "ssh", path: "/etc/ssh", digest: MANIFEST.digest, files: 1, bytes: 8, inSync: false, failures: 2, lastError: null, lastSuccessAt: null, lastHook: null }],
  running: null,
  rescues: [{ root: "ssh", dir: "/var/lib/understudy/rescue/2026-01-01T00-00-00.000Z/ssh", files: 1, at: "2026-01-01T00:00:00.000Z" }],
};

class FakeSync {
  resyncs = 0;
  readonly asked: string[] = [];
  status(): SyncStatus {
    return STATUS;
  }
  manifest(root: string): Manifest | undefined {
    this.asked.push(root);
    return root === "ssh" ? MANIFEST : undefined;
  }
  resync(): void {
    this.resyncs++;
  }
}

function setup(sync: ApiDeps["sync"] | undefined, opts: { authReads?: boolean } = {}) {
  const clock = new FakeClock();
  const metrics = new AgentMetrics(() => VIEW, { cluster: "c", node: "n2" });
  return buildApi({
    view: () => VIEW,
    coordinator: new FakeCoordinator(clock),
    metrics,
    clock,
    log: silentLogger(),
    token: TOKEN,
    authReads: opts.authReads ?? false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(sync ? { sync } : {}),
  });
}

test("GET /sync answers the engine's status", async () => {
  const app = setup(new FakeSync());
  const r = await app.inject({ url: "/sync" });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), STATUS);
});

test("GET /sync/manifest/:root answers the root's manifest, 404 for an unknown or never-synced root", async () => {
  const sync = new FakeSync();
  const app = setup(sync);
  const r = await app.inject({ url: "/sync/manifest/ssh" });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), MANIFEST);
  const missing = await app.inject({ url: "/sync/manifest/web" });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().error, "US_E_API_PRECONDITION");
  assert.match(missing.json().message, /no manifest for root "web"/);
  assert.deepEqual(sync.asked, ["ssh", "web"]);
});

test("POST /resync needs the bearer token, then asks the engine and answers 202", async () => {
  const sync = new FakeSync();
  const app = setup(sync);
  for (const headers of [{}, { authorization: "Bearer wrong" }]) {
    const r = await app.inject({ method: "POST", url: "/resync", headers });
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error, "US_E_API_UNAUTHORIZED");
  }
  assert.equal(sync.resyncs, 0, "refused requests do nothing");
  const r = await app.inject({ method: "POST", url: "/resync", headers: AUTH });
  assert.equal(r.statusCode, 202, r.body);
  assert.deepEqual(r.json(), { accepted: true, node: "n2" });
  const withBody = await app.inject({ method: "POST", url: "/resync", headers: AUTH, payload: { reason: "restored from backup", requested_by: "alice" } });
  assert.equal(withBody.statusCode, 202, withBody.body);
  assert.equal(sync.resyncs, 2);
  const bad = await app.inject({ method: "POST", url: "/resync", headers: AUTH, payload: { force: true } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error, "US_E_API_BAD_REQUEST");
  assert.equal(sync.resyncs, 2);
});

test("with api.auth_reads, GET /sync needs the token as well", async () => {
  const app = setup(new FakeSync(), { authReads: true });
  assert.equal((await app.inject({ url: "/sync" })).statusCode, 401);
  assert.equal((await app.inject({ url: "/sync/manifest/ssh" })).statusCode, 401);
  assert.equal((await app.inject({ url: "/sync", headers: AUTH })).statusCode, 200);
});

test("without a sync section: GET /sync and /sync/manifest are 404, POST /resync is 412", async () => {
  const app = setup(undefined);
  for (const url of ["/sync", "/sync/manifest/ssh"]) {
    const r = await app.inject({ url });
    assert.equal(r.statusCode, 404, url);
    assert.equal(r.json().error, "US_E_API_PRECONDITION");
    assert.match(r.json().message, /file sync is not configured on this node/);
  }
  const r = await app.inject({ method: "POST", url: "/resync", headers: AUTH });
  assert.equal(r.statusCode, 412);
  assert.equal(r.json().error, "US_E_API_PRECONDITION");
  assert.equal((await app.inject({ method: "POST", url: "/resync" })).statusCode, 401, "the token is checked first");
});

test("a real SyncEngine behind the routes: status as JSON, no manifest before a sync, resync accepted", async () => {
  const { dir, cleanup } = await tempDir("api-sync");
  const clock = new FakeClock();
  const root = { name: "ssh", path: path.join(dir, "etc-ssh"), include: [], exclude: [], maxFileBytes: 1 << 20 };
  const engine = new SyncEngine({
    fs: NODE_DURABLE_FS,
    node: "n2",
    store: new SyncStateStore(path.join(dir, "state"), NODE_DURABLE_FS),
    coordinator: new FakePublisher(),
    puller: new FakePuller(() => dir),
    runner: new StrictCommandRunner(),
    clock,
    log: silentLogger(),
    settings: { roots: [root], debounceMs: 20, maxDelayMs: 250, reconcileMs: 60_000, validateTimeoutMs: 1000, postSyncTimeoutMs: 1000, retryMaxMs: 30_000, maximumLagMs: 60_000 },
  });
  try {
    await engine.start();
    const app = setup(engine);
    const s = await app.inject({ url: "/sync" });
    assert.equal(s.statusCode, 200);
    assert.deepEqual(s.json(), JSON.parse(JSON.stringify(engine.status())));
    assert.equal(s.json().role, "standby");
    assert.equal(s.json().generation, 0);
    assert.deepEqual(s.json().roots, [{ name: "ssh", path: root.path, digest: null, files: null, bytes: null, inSync: true, failures: 0, lastError: null, lastSuccessAt: null, lastHook: null }]);
    assert.equal((await app.inject({ url: "/sync/manifest/ssh" })).statusCode, 404);
    assert.equal((await app.inject({ method: "POST", url: "/resync", headers: AUTH })).statusCode, 202);
  } finally {
    await engine.close();
    await cleanup();
  }
});
