import type { ClusterSnapshot, DataLagRecord, MemberRecord } from "../coordinator/port.js";
import { size } from "../ha/data-gate.js";
import type { NodeView } from "../ha/events.js";
import { printable } from "./io.js";
import { vipFindings } from "../ha/vip-truth.js";

/** A table in the spirit of `patronictl list`; every value from etcd goes through printable(). */
export function renderStatus(cluster: string, snap: ClusterSnapshot): string {
  const leader = snap.leader;
  const header = `+ Cluster: ${printable(cluster)} (revision ${snap.revision})${snap.paused ? " [PAUSED: no automatic failover]" : ""}`;
  const rows: string[][] = [["Member", "Address", "Role", "Term", "Healthy", "VIP", "Daemon", "Sync", "Decision"]];
  const members = [...snap.members].sort((a, b) => a.node.localeCompare(b.node));
  for (const m of members) rows.push(row(m, leader?.node === m.node ? leader.term : undefined, snap.sync?.generation).map(printable));
  if (leader && !members.some((m) => m.node === leader.node)) {
    rows.push([printable(leader.node), "?", "primary (no member key)", String(leader.term), "?", "?", "?", "?", ""]);
  }
  // Data replication (issue 14): a "Data lag" column before the decision, only in clusters that replicate data.
  if (snap.dataProgress || members.some((m) => m.data !== undefined)) {
    const cells = [...members.map((m) => printable(dataCell(m, snap))), ...(rows.length > members.length + 1 ? ["?"] : [])];
    rows.forEach((r, i) => r.splice(r.length - 1, 0, i === 0 ? "Data lag" : cells[i - 1]!));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const fmt = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  const out = [header, line, fmt(rows[0]!), line, ...rows.slice(1).map(fmt), line];
  if (!leader) out.push("No primary: the leader key is absent (exit 6).");
  // Primary without its VIP, VIP on a node that is not the primary: unhealthy, said in words.
  for (const finding of vipFindings(snap)) out.push(`UNHEALTHY: ${printable(finding)}`);
  // Failsafe (S4, S6): a standby that may not campaign now, and why; a switchover to it waits for the end.
  for (const m of members) if (m.campaignHold !== undefined && m.node !== leader?.node) out.push(`Held: ${printable(m.node)}: ${printable(m.campaignHold)}`);
  return out.join("\n");
}

/** The generation a node holds, marked when it lags the published one. */
function syncCell(m: MemberRecord, published: number | undefined): string {
  if (!m.sync) return "-";
  if (published === undefined) return String(m.generation);
  return m.generation === published ? `${m.generation}` : `${m.generation} (behind ${published})`;
}

/**
 * A member's data lag: its own copy in its member key, else its entry in data/progress when the
 * current leader wrote it; "source" for the primary, "-" when unknown.
 */
export function dataCell(m: MemberRecord, snap: Pick<ClusterSnapshot, "leader" | "dataProgress">): string {
  if (m.data?.rejoin === "pending") return "rejoin pending";
  if (snap.leader?.node === m.node) return m.data !== undefined || snap.dataProgress ? "source" : "-";
  const p = snap.dataProgress;
  const lag = m.data?.lag ?? (p && snap.leader && p.term === snap.leader.term ? (p.standbys[m.node] ?? null) : null);
  return lag ? describeDataLag(lag) : "-";
}

function describeDataLag(l: DataLagRecord): string {
  if (l.paused !== null) return `paused (${l.files} files / ${size(l.bytes)})`;
  if (l.full) return "full pass needed";
  if (l.files === 0 && l.bytes === 0) return "in sync";
  return `${l.files} files / ${size(l.bytes)}, ${Math.round(l.seconds)}s`;
}

/** The primary's health includes holding its VIP; a standby's is whether it may campaign. */
function healthCell(m: MemberRecord, leads: boolean): string {
  if (leads && m.vipMissingSince !== undefined) return "no: primary without VIP";
  return m.healthy ? "yes" : m.notReady ? `no: ${m.notReady.length > 40 ? `${m.notReady.slice(0, 37)}...` : m.notReady}` : "no";
}

function vipCell(m: MemberRecord, leads: boolean): string {
  if (m.vipHeld) return leads ? "held" : "held (NOT primary)";
  if (m.vipHolder) return `MISSING: held by ${m.vipHolder}`;
  return m.vipMissingSince !== undefined ? "MISSING" : "";
}

function row(m: MemberRecord, term: number | undefined, published: number | undefined): string[] {
  const role = term !== undefined ? (m.role === "primary" ? "primary" : `leader key (${m.role})`) : m.role;
  return [
    m.node,
    m.address,
    role,
    term !== undefined ? String(term) : "",
    healthCell(m, term !== undefined),
    vipCell(m, term !== undefined),
    m.daemonRunning ? "running" : "stopped",
    syncCell(m, published),
    m.decision.length > 70 ? `${m.decision.slice(0, 67)}...` : m.decision,
  ];
}

/**
 * One node's own view (GET /health), for when nobody here can read etcd: what
 * that node believes of itself, never the cluster's state. Another node may
 * hold the leader key by now; a primary here only stays one until its lease
 * deadline (the lease line says how long).
 */
export function renderNodeView(cluster: string | undefined, v: NodeView, via: string): string {
  const role = v.acting === "primary" ? `primary (term ${v.term ?? "?"})` : "standby";
  const lease = v.leaseRemainingMs === null ? "none" : v.leaseRemainingMs > 0 ? `${(v.leaseRemainingMs / 1000).toFixed(1)} s left before it fences itself` : "expired";
  const probes = v.probes.length === 0 ? "none" : v.probes.map((p) => `${p.name} ${p.up ? "up" : `down (${p.detail})`}`).join(", ");
  const lines: [string, string][] = [
    ["Role", role],
    ["Lease", lease],
    ["etcd", v.etcdReachable ? "reachable (its last cycle)" : "unreachable from this node too"],
    ["Last cycle", v.sinceLastCycleMs === null ? "never" : `${(v.sinceLastCycleMs / 1000).toFixed(1)} s ago`],
    ["VIP", v.vipHeld ? "held here" : "not held here"],
    ["Daemon", v.daemonRunning ? "running" : "stopped"],
    ["Healthy", v.healthy ? "yes" : v.notReady ? `no: ${v.notReady}` : "no"],
    ["Probes", probes],
    ["Decision", v.decision],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  return [
    `+ Node ${printable(v.node)}'s own view${cluster ? ` (cluster ${printable(cluster)})` : ""}: etcd is unreachable from here and from ${printable(v.node)}, so this is NOT the cluster's state`,
    ...lines.map(([k, val]) => `| ${k.padEnd(width)} : ${printable(val)}`),
    `Source: GET /health of ${printable(via)} (exit 7).`,
  ].join("\n");
}
