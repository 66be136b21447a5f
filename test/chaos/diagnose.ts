/**
 * What a chaos run prints when the nodes' trees did not converge: for each
 * node whose tree differs from the most common one, whether its agent still
 * runs, how its tree differs, and the last sync/data and HA loop lines of its agent
 * log (info and above). CI keeps only the test's output, so this is what a red
 * run there can be read from.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface NodeTree {
  readonly node: string;
  readonly tree: Record<string, string>;
  readonly alive: boolean;
}

const LOG_LINES = 25;

export function describeLaggards(logDir: string, nodes: readonly NodeTree[], component: "sync" | "data"): string[] {
  const counts = new Map<string, number>();
  const keys = nodes.map((n) => JSON.stringify(n.tree));
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  const common = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const reference = nodes[keys.indexOf(common ?? "")]?.tree ?? {};
  const out: string[] = [];
  for (const [i, n] of nodes.entries()) {
    if (keys[i] === common) continue;
    const missing = Object.keys(reference).filter((f) => !(f in n.tree));
    const extra = Object.keys(n.tree).filter((f) => !(f in reference));
    const differ = Object.keys(n.tree).filter((f) => f in reference && reference[f] !== n.tree[f]);
    out.push(
      `chaos: ${n.node} (${component}; agent ${n.alive ? "running" : "NOT running"}) differs from the most common tree: ` +
        `${missing.length} missing (${missing.slice(0, 3).join(", ")}), ${extra.length} extra (${extra.slice(0, 3).join(", ")}), ${differ.length} different (${differ.slice(0, 3).join(", ")})`,
    );
    const file = join(logDir, `${n.node}-agent.log`);
    for (const l of lastLines(file, (c) => c === component)) out.push(`chaos:   ${n.node} ${component}: ${l}`);
    // The HA loop's lines (no component): a loop that stopped cycling stops the sync engine following too.
    for (const l of lastLines(file, (c) => c === undefined)) out.push(`chaos:   ${n.node} loop: ${l}`);
  }
  return out;
}

/** The last LOG_LINES lines at info or above of the components picked, compacted (time, level, message, error). */
function lastLines(file: string, pick: (component: string | undefined) => boolean): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return [`(cannot read ${file}: ${(e as Error).message})`];
  }
  const picked: string[] = [];
  for (const line of text.split("\n")) {
    let j: { level?: number; time?: string; component?: string; msg?: string; err?: unknown; reason?: string; root?: string };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    if (!pick(j.component) || (j.level ?? 0) < 30) continue;
    const err = j.err === undefined ? "" : ` err=${String(typeof j.err === "string" ? j.err : JSON.stringify(j.err)).slice(0, 240)}`;
    picked.push(`${j.time ?? "?"} L${j.level} ${j.root ? `[${j.root}] ` : ""}${j.msg ?? ""}${err}`);
  }
  return picked.slice(-LOG_LINES);
}
