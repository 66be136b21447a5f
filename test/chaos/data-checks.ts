/**
 * The checker's part for replicated uploads (data roots, src/data/): pure functions over the
 * recording, like checker.ts.
 *
 *  - upload_unreplicated: an acknowledged upload missing (or different) on some node's data root at
 *                         the end, after every fault was healed and the roots were given 60 s to converge
 *  - per promotion: the acknowledged uploads the new primary lacked when the run saw the leader
 *    change (the RPO of that failover, before rejoin brings the former primary's files back);
 *    reported per fault kind, not a violation: a failover may lose what was not yet shipped, and
 *    rejoin must then bring it back (upload_lost, on the final primary, is the violation).
 */
import type { DataPromotionRecord, FaultRecord, UploadRecord, Violation } from "./types.js";

export function checkReplicatedUploads(
  uploads: readonly UploadRecord[],
  finalData: Readonly<Record<string, Readonly<Record<string, string>>>>,
  faultAt: (t: number) => FaultRecord | undefined,
): Violation[] {
  const out: Violation[] = [];
  for (const u of uploads) {
    if (!u.ok) continue;
    const lacking = Object.entries(finalData)
      .filter(([, tree]) => tree[u.name] !== u.sha256)
      .map(([node, tree]) => `${node} (${tree[u.name] === undefined ? "missing" : "different"})`);
    if (lacking.length > 0) {
      out.push({ kind: "upload_unreplicated", at: u.end, fault: faultAt(u.end)?.kind ?? "none", detail: `${u.name} (${u.bytes} B) was acknowledged but at the end is not on ${lacking.join(", ")}` });
    }
  }
  return out;
}

export interface DataRpoRow {
  /** Fault kind whose window holds the promotion ("none": an operator switchover or a health move between faults). */
  kind: string;
  promotions: number;
  /** Acknowledged uploads the new primary lacked at promotion: median and max over the promotions. */
  missingMedian: number;
  missingMax: number;
  /** Acknowledged uploads before those promotions, summed (the denominator). */
  acknowledged: number;
}

export function dataRpoTable(promotions: readonly DataPromotionRecord[], faultAt: (t: number) => FaultRecord | undefined): DataRpoRow[] {
  const byKind = new Map<string, DataPromotionRecord[]>();
  for (const p of promotions) {
    const k = faultAt(p.t)?.kind ?? "none";
    byKind.set(k, [...(byKind.get(k) ?? []), p]);
  }
  return [...byKind.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, ps]) => {
      const counts = ps.map((p) => p.missing.length).sort((a, b) => a - b);
      return {
        kind,
        promotions: ps.length,
        missingMedian: counts[Math.floor((counts.length - 1) / 2)]!,
        missingMax: counts[counts.length - 1]!,
        acknowledged: ps.reduce((s, p) => s + p.acknowledged, 0),
      };
    });
}

export function formatDataRpo(rows: readonly DataRpoRow[]): string[] {
  if (rows.length === 0) return ["data roots: no leader change during the run"];
  const header = ["promotion in", "promotions", "uploads missing at promotion (median)", "(max)"];
  const cells = rows.map((r) => [r.kind, String(r.promotions), String(r.missingMedian), String(r.missingMax)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    "Data roots: acknowledged uploads the new primary lacked when it became leader (before rejoin), per fault kind:",
    line(header),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...cells.map(line),
  ];
}
