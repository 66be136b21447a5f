import type { ClusterSnapshot, MemberRecord } from "../coordinator/port.js";
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
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = "+" + widths.map((w) => "-".repeat(w + 2)).join("+") + "+";
  const fmt = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  const out = [header, line, fmt(rows[0]!), line, ...rows.slice(1).map(fmt), line];
  if (!leader) out.push("No primary: the leader key is absent (exit 6).");
  // Primary without its VIP, VIP on a node that is not the primary: unhealthy, said in words.
  for (const finding of vipFindings(snap)) out.push(`UNHEALTHY: ${printable(finding)}`);
  return out.join("\n");
}

/** The generation a node holds, marked when it lags the published one. */
function syncCell(m: MemberRecord, published: number | undefined): string {
  if (!m.sync) return "-";
  if (published === undefined) return String(m.generation);
  return m.generation === published ? `${m.generation}` : `${m.generation} (behind ${published})`;
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
