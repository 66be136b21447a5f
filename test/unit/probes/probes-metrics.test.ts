// What probes measure reaches Prometheus: ProbeHealth keeps each probe's data in its
// state, and AgentMetrics renders certificate expiry and disk gauges from those states.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";
import { ProbeHealth } from "../../../src/probes/health.js";
import type { Probe, ProbeResult, ProbeState } from "../../../src/probes/port.js";
import { FakeClock } from "../../fakes/clock.js";

const view: NodeView = {
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

describe("probe data in states and metrics", () => {
  it("AgentMetrics renders certificate expiry, disk and warning gauges from the probe states, at scrape time", async () => {
    let states: ProbeState[] = [
      { name: "ftps", critical: true, up: true, lastDetail: "", consecutive: 1, data: { certExpiresAt: { "127.0.0.1:21": 1_900_000_000 }, warning: true } },
      { name: "certs", critical: false, up: true, lastDetail: "", consecutive: 1, data: { certExpiresAt: { "/etc/ssl/a.pem": 1_800_000_000, "/etc/ssl/b.pem": 1_850_000_000 }, warning: false } },
      { name: "data", critical: false, up: false, lastDetail: "", consecutive: 2, data: { freeBytes: 1024, totalBytes: 4096 } },
      { name: "sftp", critical: true, up: true, lastDetail: "", consecutive: 1 },
    ];
    const metrics = new AgentMetrics(
      () => view,
      { cluster: "c", node: "n1" },
      () => states,
    );
    const text = await metrics.registry.metrics();
    const has = (line: string) => assert.ok(text.includes(line), `missing: ${line}\n${text}`);
    has('understudy_tls_certificate_expiry_timestamp_seconds{probe="ftps",cert="127.0.0.1:21",cluster="c",node="n1"} 1900000000');
    has('understudy_tls_certificate_expiry_timestamp_seconds{probe="certs",cert="/etc/ssl/a.pem",cluster="c",node="n1"} 1800000000');
    has('understudy_tls_certificate_expiry_timestamp_seconds{probe="certs",cert="/etc/ssl/b.pem",cluster="c",node="n1"} 1850000000');
    has('understudy_disk_free_bytes{probe="data",cluster="c",node="n1"} 1024');
    has('understudy_disk_size_bytes{probe="data",cluster="c",node="n1"} 4096');
    has('understudy_probe_warning{probe="ftps",cluster="c",node="n1"} 1');
    has('understudy_probe_warning{probe="certs",cluster="c",node="n1"} 0');
    assert.ok(!/understudy_\w+\{probe="sftp"/.test(text.replace(/understudy_probe_up\{[^}]*\}/g, "")), "a probe without data has no data gauges");

    states = [states[2]!];
    const later = await metrics.registry.metrics();
    assert.ok(!later.includes('cert="127.0.0.1:21"'), "labels of probes gone from the states go from the gauges");
    assert.ok(later.includes('understudy_disk_free_bytes{probe="data",cluster="c",node="n1"} 1024'), 'later.includes(\'understudy_disk_free_bytes{probe="data",cluster="c",node="n1"} 1024\')');
  });

  it("AgentMetrics without probe states has no data gauges (the old two-argument form)", async () => {
    const text = await new AgentMetrics(() => view, { cluster: "c", node: "n1" }).registry.metrics();
    assert.ok(!text.includes("understudy_disk_free_bytes"), '!text.includes("understudy_disk_free_bytes")');
  });

  it("ProbeHealth keeps the data of the latest result that had any", async () => {
    const clock = new FakeClock();
    const results: ProbeResult[] = [
      { ok: true, detail: "10 GiB free", latencyMs: 1, data: { freeBytes: 10, totalBytes: 40 } },
      { ok: false, detail: "timeout after 1000ms", latencyMs: 1000 },
      { ok: true, detail: "9 GiB free", latencyMs: 1, data: { freeBytes: 9, totalBytes: 40 } },
    ];
    const probe: Probe = { name: "data", type: "disk", check: async () => results.shift()! };
    const health = new ProbeHealth([{ probe, intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 3, critical: false }], { clock });
    assert.equal("data" in health.states()[0]!, false, "no data before the first check");
    await health.checkNow();
    assert.deepEqual(health.states()[0]!.data, { freeBytes: 10, totalBytes: 40 });
    await health.checkNow();
    assert.deepEqual([health.states()[0]!.lastDetail, health.states()[0]!.data], ["timeout after 1000ms", { freeBytes: 10, totalBytes: 40 }]);
    await health.checkNow();
    assert.deepEqual(health.states()[0]!.data, { freeBytes: 9, totalBytes: 40 });
    await health.stop();
  });
});
