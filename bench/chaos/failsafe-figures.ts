/**
 * Failsafe figures from chaos recordings (test/chaos/types.ts): per fault,
 * whether it hit the primary (the leader key's node when it was injected),
 * whether that primary fenced inside the fault window (a `fence` history
 * event) and whether another node took over; per group (etcd_quorum_loss,
 * partition_node_etcd on the primary, on a standby), the checker's own
 * measures (measureFaults: violations, no VIP holder, upload outage) as
 * median / p95 (nearest rank, as the checker's table). Read-only: the
 * checker decides the violations, this only groups its figures.
 *
 *   node --import tsx bench/chaos/failsafe-figures.ts /tmp/chaos-off-understudy.json /tmp/chaos-on-understudy.json
 *
 * (recordings written by `npm run bench:chaos -- --recording PREFIX`).
 */
import { readFileSync } from "node:fs";
import { check, leaderAt, leaderTimeline, median, percentile } from "../../test/chaos/checker.js";
import type { Recording } from "../../test/chaos/types.js";

export interface FailsafeFault {
  id: number;
  kind: string;
  /** "etcd_quorum_loss", "partition_node_etcd (primary)", "partition_node_etcd (standby)", ... */
  group: string;
  primaryAtInject: string | null;
  /** The primary at injection wrote a `fence` history event inside the fault window. */
  primaryFenced: boolean;
  /** Another node's `failover` history event inside the window. */
  failover: boolean;
  noHolderMs: number;
  outageMs: number;
  violations: number;
}

export interface FailsafeRow {
  group: string;
  faults: number;
  violations: number;
  primaryFenced: number;
  failovers: number;
  noHolderMedianMs: number;
  noHolderP95Ms: number;
  outageMedianMs: number;
  outageP95Ms: number;
}

const NODE_FAULTS = new Set(["partition_node_etcd", "agent_kill9", "agent_sigstop", "partition_node_node"]);

export function failsafeFaults(rec: Recording): FailsafeFault[] {
  const report = check(rec);
  const spans = leaderTimeline(rec.etcd);
  return rec.faults
    .filter((f) => !f.skipped)
    .map((f) => {
      const primary = leaderAt(spans, f.injectAt)?.node ?? null;
      const inWindow = (at: string) => {
        const t = Date.parse(at);
        return t >= f.injectAt && t <= f.settledAt;
      };
      const m = report.faults.find((x) => x.id === f.id)!;
      const onPrimary = primary !== null && (f.target ?? "").split("|")[0] === primary;
      return {
        id: f.id,
        kind: f.kind,
        group: NODE_FAULTS.has(f.kind) ? `${f.kind} (${onPrimary ? "primary" : "standby"})` : f.kind,
        primaryAtInject: primary,
        primaryFenced: rec.history.some((h) => h.kind === "fence" && h.node === primary && inWindow(h.at)),
        failover: rec.history.some((h) => h.kind === "failover" && inWindow(h.at)),
        noHolderMs: m.noHolderMs,
        outageMs: m.outageMs,
        violations: m.violations,
      };
    });
}

export function failsafeTable(faults: readonly FailsafeFault[]): FailsafeRow[] {
  const groups = [...new Set(faults.map((f) => f.group))].sort();
  return groups.map((group) => {
    const fs = faults.filter((f) => f.group === group);
    const nh = fs.map((f) => f.noHolderMs);
    const out = fs.map((f) => f.outageMs);
    return {
      group,
      faults: fs.length,
      violations: fs.reduce((s, f) => s + f.violations, 0),
      primaryFenced: fs.filter((f) => f.primaryFenced).length,
      failovers: fs.filter((f) => f.failover).length,
      noHolderMedianMs: median(nh),
      noHolderP95Ms: percentile(nh, 95),
      outageMedianMs: median(out),
      outageP95Ms: percentile(out, 95),
    };
  });
}

function main(files: string[]): void {
  console.log("| run | fault | faults | violations | primary fenced | failovers | no holder median | no holder p95 | upload outage median | upload outage p95 |");
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const file of files) {
    const rec = JSON.parse(readFileSync(file, "utf8")) as Recording;
    const label = rec.failsafe === undefined ? file : `failsafe ${rec.failsafe ? "on" : "off"}`;
    for (const r of failsafeTable(failsafeFaults(rec)))
      console.log(
        `| ${label} | ${r.group} | ${r.faults} | ${r.violations} | ${r.primaryFenced} | ${r.failovers} | ${r.noHolderMedianMs} ms | ${r.noHolderP95Ms} ms | ${r.outageMedianMs} ms | ${r.outageP95Ms} ms |`,
      );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
