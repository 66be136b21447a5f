// The merge step of a loss-free rejoin (docs/data-replication-design.md §7).
// Pure: the new primary has pulled, into an inbox beside its data root, every
// file a returning former primary holds that it lacks or holds differently
// (rsync --compare-dest=<live root>); for each inbox file this planner says
// what to do and why, and the executor (not written yet) renames. Nothing is
// ever deleted from the live tree: a file goes into place, or beside an
// existing one under a conflict name, or is dropped from the inbox when the
// live tree already holds the same bytes.
import { posix } from "node:path";
import { checkDataPath } from "./journal.js";

/** What the live tree holds at the inbox file's path. */
export type LiveState = { readonly kind: "absent" } | { readonly kind: "same" } | { readonly kind: "different" };

export interface MergeInput {
  /** Path relative to the data root (the same in the inbox and the live tree). */
  readonly path: string;
  readonly live: LiveState;
  /** The path was deleted on this primary during its term (a tombstone in its journal). */
  readonly deletedHere: boolean;
  /** The former primary the file comes from, and this primary's term. */
  readonly from: string;
  readonly term: number;
  /** Wall-clock time of the merge (ms since the epoch): part of a conflict name. */
  readonly wallMs: number;
  /** Names already taken in the file's directory (live entries), so a conflict name never overwrites. */
  readonly taken: ReadonlySet<string>;
}

export type MergeStep =
  | { readonly kind: "move"; readonly path: string; readonly target: string; readonly restored: boolean; readonly reason: string }
  | { readonly kind: "conflict"; readonly path: string; readonly target: string; readonly reason: string }
  | { readonly kind: "drop"; readonly path: string; readonly reason: string };

/**
 * `<stem>.understudy-conflict-<node>-<yyyymmddThhmmssZ><.ext>` beside the
 * original: the last extension stays last so partners' tools still open the
 * file; a dotfile without another dot keeps its whole name as the stem. When
 * the name is taken, `-2`, `-3`, ... after the timestamp (bounded: 1000).
 */
export function conflictName(path: string, node: string, wallMs: number, taken: ReadonlySet<string> = new Set()): string {
  const dir = posix.dirname(path);
  const base = posix.basename(path);
  const dot = base.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ""];
  const stamp = new Date(wallMs)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  const safeNode = node.replace(/[^A-Za-z0-9._-]/g, "_");
  for (let i = 1; i <= 1000; i++) {
    const name = `${stem}.understudy-conflict-${safeNode}-${stamp}${i > 1 ? `-${i}` : ""}${ext}`;
    if (!taken.has(name)) return dir === "." ? name : `${dir}/${name}`;
  }
  // 1000 conflicts for one file in one second: the executor's rename (no-replace) refuses, the merge fails loudly.
  return `${dir === "." ? "" : `${dir}/`}${stem}.understudy-conflict-${safeNode}-${stamp}-overflow${ext}`;
}

export function planMerge(i: MergeInput): MergeStep {
  const path = checkDataPath(i.path);
  const src = `${i.from}'s copy of ${path}`;
  switch (i.live.kind) {
    case "same":
      return { kind: "drop", path, reason: `dropping ${src}: this primary holds the same content` };
    case "absent":
      if (i.deletedHere) {
        return {
          kind: "move",
          path,
          target: path,
          restored: true,
          reason: `restoring ${path} from ${i.from}: it was deleted here in term ${i.term}, but ${i.from} held a copy this primary never received (nothing acknowledged is dropped)`,
        };
      }
      return { kind: "move", path, target: path, restored: false, reason: `moving ${src} into place: this primary never received it` };
    case "different": {
      const target = conflictName(path, i.from, i.wallMs, i.taken);
      return { kind: "conflict", path, target, reason: `keeping both: ${path} differs here, ${i.from}'s copy goes to ${posix.basename(target)}` };
    }
  }
}

/** Counts for the history record, the log line, the webhook and understudy_data_rejoin_files_total. */
export function mergeSummary(steps: readonly MergeStep[]): { readonly moved: number; readonly restored: number; readonly conflicts: number; readonly dropped: number } {
  let moved = 0;
  let restored = 0;
  let conflicts = 0;
  let dropped = 0;
  for (const s of steps) {
    if (s.kind === "move") {
      moved += 1;
      if (s.restored) restored += 1;
    } else if (s.kind === "conflict") conflicts += 1;
    else dropped += 1;
  }
  return { moved, restored, conflicts, dropped };
}
