// Issue 14: GET /sync carries a `data` block (the replication lag) on a node with data roots.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi, type ApiDeps } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";
import type { DataControl, DataStatus } from "../../../src/data/port.js";
import type { SyncStatus } from "../../../src/sync/engine.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

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
const SYNC = { node: "n1", role: "primary", generation: 5, inSync: true } as unknown as SyncStatus;
const LAG = { acked: 40, files: 2, bytes: 2048, seconds: 1.5, full: false, paused: null };
const STATUS: DataStatus = {
  role: "primary",
  term: 7,
  roots: [{ name: "uploads", path: "/srv/uploads", freeBytes: 1e9 }],
  journal: { head: 42, pending: 1, ready: 2 },
  standbys: [{ node: "n2", ...LAG, step: "shipping", lastError: null, lastSuccessAt: null }],
  self: { receiving: null, rejoin: null, freeBytes: 1e9, lag: null },
};

function setup(data: DataControl | undefined) {
  const clock = new FakeClock();
  const deps: ApiDeps = {
    view: () => VIEW,
    coordinator: new FakeCoordinator(clock),
    metrics: new AgentMetrics(() => VIEW, { cluster: "c", node: "n1" }),
    clock,
    log: silentLogger(),
    token: "s3cret-token-0123456789",
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    sync: { status: () => SYNC, manifest: () => undefined, resync: () => undefined },
    ...(data ? { data } : {}),
  };
  return buildApi(deps);
}

const control = (status: DataStatus): DataControl => ({
  notify: () => ({ role: status.role, accepted: 0, ignored: [] }),
  status: () => status,
  progress: () => null,
});

test("GET /sync: a data block with each standby's lag on the primary", async () => {
  const r = await setup(control(STATUS)).inject({ url: "/sync" });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { ...SYNC, data: { role: "primary", term: 7, lag: null, standbys: [{ node: "n2", ...LAG }] } });
});

test("GET /sync: a standby's own lag; no data block without data roots", async () => {
  const standby: DataStatus = { ...STATUS, role: "standby", journal: null, standbys: [], self: { receiving: 7, rejoin: null, freeBytes: 1e9, lag: LAG } };
  const r = await setup(control(standby)).inject({ url: "/sync" });
  assert.deepEqual((r.json() as { data: unknown }).data, { role: "standby", term: 7, lag: LAG, standbys: [] });
  const none = await setup(undefined).inject({ url: "/sync" });
  assert.deepEqual(none.json(), SYNC);
});
