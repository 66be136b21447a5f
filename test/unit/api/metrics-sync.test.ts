// Sync and stale-promotion metrics: gauges read the engine's status at scrape
// time, counters follow the engine's and the HA loop's events.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { standbyView } from "../../fakes/node-view.js";
import type { SyncStatus } from "../../../src/sync/engine.js";
import { manifestOf } from "../../../src/sync/manifest.js";

const view = standbyView({ leaseRemainingMs: 3000 });

test("sync gauges and counters, and the stale promotion counter", async () => {
  let status: SyncStatus = {
    node: "n2",
    role: "standby",
    generation: 4,
    inSync: false,
    behindSince: "2026-11-23T00:00:00.000Z",
    lagMs: 2500,
    published: { generation: 5, digest: "d", source: "n1", term: 9, publishedAt: "" },
    lastSuccessAt: "2026-11-23T00:00:10.000Z",
    lastError: null,
    failures: 2,
    waiting: null,
    roots: [],
    running: null,
    rescues: [],
  };
  const metrics = new AgentMetrics(() => view, { cluster: "c", node: "n2" }).withSync(() => status);
  const summary = { added: ["a"], changed: ["b", "c"], removed: [], bytes: 10, manifest: manifestOf("ssh", []), notes: [] };
  metrics.observeSync({ type: "applied", root: "ssh", generation: 5, pullMs: 120, checkMs: 30, applyMs: 5, summary });
  metrics.observeSync({ type: "failed", code: "US_E_SYNC_VALIDATOR_FAILED", message: "x" });
  metrics.observeSync({ type: "rescued", root: "ssh", result: { dir: "/r", files: ["a"], removedSinceKnown: [] } });
  metrics.observe({ type: "stale_promotion", term: 10, generation: 4, published: 5, lagMs: 2500 });
  const text = await metrics.registry.metrics();
  const has = (line: string) => assert.ok(text.includes(line), `missing: ${line}\n${text}`);
  has('understudy_sync_generation{cluster="c",node="n2"} 4');
  has('understudy_sync_published_generation{cluster="c",node="n2"} 5');
  has('understudy_sync_in_sync{cluster="c",node="n2"} 0');
  has('understudy_sync_lag_seconds{cluster="c",node="n2"} 2.5');
  has('understudy_sync_last_success_timestamp_seconds{cluster="c",node="n2"} 1795392010');
  has('understudy_sync_consecutive_failures{cluster="c",node="n2"} 2');
  has('understudy_sync_pulls_total{result="ok",cluster="c",node="n2"} 1');
  has('understudy_sync_pulls_total{result="error",cluster="c",node="n2"} 1');
  has('understudy_sync_files_applied_total{kind="changed",cluster="c",node="n2"} 2');
  has('understudy_sync_rescues_total{cluster="c",node="n2"} 1');
  has('understudy_stale_promotions_total{cluster="c",node="n2"} 1');
  has('understudy_sync_pull_duration_seconds_bucket{le="0.15",cluster="c",node="n2"} 1');
  status = { ...status, generation: 5, inSync: true, behindSince: null, lagMs: 0, failures: 0 };
  const later = await metrics.registry.metrics();
  assert.ok(later.includes('understudy_sync_in_sync{cluster="c",node="n2"} 1'), 'later.includes(\'understudy_sync_in_sync{cluster="c",node="n2"} 1\')');
  assert.ok(later.includes('understudy_sync_lag_seconds{cluster="c",node="n2"} 0'), 'later.includes(\'understudy_sync_lag_seconds{cluster="c",node="n2"} 0\')');
});

test("without sync configured there are no sync gauges", async () => {
  const text = await new AgentMetrics(() => view, { cluster: "c", node: "n2" }).registry.metrics();
  assert.ok(!text.includes("understudy_sync_"), '!text.includes("understudy_sync_")');
  assert.ok(text.includes("understudy_stale_promotions_total"), "the stale promotion counter is always there (0)");
});

test("per-root gauges name the failing root; hook runs are counted by hook and result", async () => {
  const root = (name: string, inSync: boolean, failures: number) => ({
    name,
    path: `/etc/${name}`,
    digest: null,
    files: null,
    bytes: null,
    inSync,
    failures,
    lastError: null,
    lastSuccessAt: null,
    lastHook: null,
  });
  const status: SyncStatus = {
    node: "n2",
    role: "standby",
    generation: 4,
    inSync: false,
    behindSince: null,
    lagMs: 0,
    published: { generation: 5, digest: "d", source: "n1", term: 9, publishedAt: "" },
    lastSuccessAt: null,
    lastError: null,
    failures: 1,
    waiting: null,
    roots: [root("conf", false, 3), root("users", true, 0)],
    running: null,
    rescues: [],
  };
  const metrics = new AgentMetrics(() => view, { cluster: "c", node: "n2" }).withSync(() => status);
  metrics.observeSync({ type: "hook", hook: "post_publish", root: "tls", ok: true, ms: 5 });
  metrics.observeSync({ type: "hook", hook: "post_publish", root: "tls", ok: false, ms: 5, code: "US_E_SYNC_POST_PUBLISH_FAILED", message: "x" });
  metrics.observeSync({ type: "hook", hook: "post_sync", root: "tls", ok: true, ms: 5 });
  const text = await metrics.registry.metrics();
  const has = (line: string) => assert.ok(text.includes(line), `missing: ${line}\n${text}`);
  has('understudy_sync_root_in_sync{root="conf",cluster="c",node="n2"} 0');
  has('understudy_sync_root_in_sync{root="users",cluster="c",node="n2"} 1');
  has('understudy_sync_root_consecutive_failures{root="conf",cluster="c",node="n2"} 3');
  has('understudy_sync_hook_runs_total{hook="post_publish",result="ok",cluster="c",node="n2"} 1');
  has('understudy_sync_hook_runs_total{hook="post_publish",result="error",cluster="c",node="n2"} 1');
  has('understudy_sync_hook_runs_total{hook="post_sync",result="ok",cluster="c",node="n2"} 1');
  has('understudy_sync_hook_runs_total{hook="post_sync",result="error",cluster="c",node="n2"} 0');
});
