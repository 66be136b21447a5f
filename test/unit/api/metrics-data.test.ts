// Data replication metrics: per-standby gauges from the primary's shipper status at scrape
// time (label sets follow the standbys), journal gauges, and the ship-run counter.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";
import type { DataStatus, ShipTargetStatus } from "../../../src/data/port.js";

const view: NodeView = {
  node: "n1",
  acting: "primary",
  term: 9,
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

const target = (node: string, over: Partial<ShipTargetStatus> = {}): ShipTargetStatus => ({
  node,
  acked: 10,
  files: 0,
  bytes: 0,
  seconds: 0,
  full: false,
  paused: null,
  step: `idle: ${node} is in sync`,
  lastError: null,
  lastSuccessAt: null,
  ...over,
});

const self = { receiving: null, rejoin: null, freeBytes: 1e9, lag: null };

test("data gauges follow the primary's standbys; a standby exports no per-standby series", async () => {
  let status: DataStatus = {
    role: "primary",
    term: 9,
    roots: [{ name: "uploads", path: "/srv/uploads", freeBytes: 1e9 }],
    journal: { head: 120, pending: 3, ready: 17 },
    standbys: [
      target("n2", { files: 4, bytes: 4096, seconds: 1.5 }),
      target("n3", { paused: "paused: n3's data volume is full", full: true, step: "paused" }),
      target("n4", { step: "stopped deleting on n4: a full pass would delete more than max_delete files (is this primary's data root mounted?); retrying in 30000ms" }),
    ],
    self,
  };
  const metrics = new AgentMetrics(() => view, { cluster: "c", node: "n1" }).withData(() => status);
  metrics.observeDataShip("n2", "batch", "ok");
  metrics.observeDataShip("n2", "batch", "ok");
  metrics.observeDataShip("n3", "full", "error");
  metrics.observe({ type: "data_lag_promotion", term: 9, lagBytes: 100 });
  let text = await metrics.registry.metrics();
  const has = (line: string) => assert.ok(text.includes(line), `missing: ${line}\n${text}`);
  const hasNot = (prefix: string) => assert.ok(!text.split("\n").some((l) => l.startsWith(prefix)), `unexpected: ${prefix}\n${text}`);
  has('understudy_data_lag_files{standby="n2",cluster="c",node="n1"} 4');
  has('understudy_data_lag_bytes{standby="n2",cluster="c",node="n1"} 4096');
  has('understudy_data_lag_seconds{standby="n2",cluster="c",node="n1"} 1.5');
  has('understudy_data_standby_paused{standby="n3",cluster="c",node="n1"} 1');
  has('understudy_data_standby_paused{standby="n2",cluster="c",node="n1"} 0');
  has('understudy_data_full_pass_needed{standby="n3",cluster="c",node="n1"} 1');
  has('understudy_data_delete_limit_hit{standby="n4",cluster="c",node="n1"} 1');
  has('understudy_data_delete_limit_hit{standby="n2",cluster="c",node="n1"} 0');
  has('understudy_data_journal_head{cluster="c",node="n1"} 120');
  has('understudy_data_journal_pending{cluster="c",node="n1"} 3');
  has('understudy_data_journal_ready{cluster="c",node="n1"} 17');
  has('understudy_data_primary{cluster="c",node="n1"} 1');
  has('understudy_data_lag_promotions_total{cluster="c",node="n1"} 1');
  has('understudy_data_ship_runs_total{standby="n2",kind="batch",result="ok",cluster="c",node="n1"} 2');
  has('understudy_data_ship_runs_total{standby="n3",kind="full",result="error",cluster="c",node="n1"} 1');
  // The engine's flag wins over the sentence.
  status = { ...status, standbys: [target("n4", { deleteLimited: false, step: "stopped deleting on n4: ..." })] };
  text = await metrics.registry.metrics();
  has('understudy_data_delete_limit_hit{standby="n4",cluster="c",node="n1"} 0');
  hasNot('understudy_data_lag_files{standby="n2"');
  // Demoted: no standbys, no journal.
  status = { role: "standby", term: null, roots: status.roots, journal: null, standbys: [], self: { ...self, receiving: 10 } };
  text = await metrics.registry.metrics();
  hasNot("understudy_data_lag_bytes{");
  has('understudy_data_journal_head{cluster="c",node="n1"} 0');
  has('understudy_data_primary{cluster="c",node="n1"} 0');
});
