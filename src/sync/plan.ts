// The pure sync planner (the sync engine's decide(): docs/architecture.md, "File sync"). No
// I/O, no clock reads: the engine observes, a function here returns what to do
// and a reason sentence, the side executors act (primary-side.ts,
// standby-side.ts), the engine logs the sentence when it changes and puts it
// in the member key.
//
//   planFollow   after each HA cycle: switch sides, adopt or keep the
//                published record, kick a pass or not
//   planStep     one pass step: publish, verify, pull, rescue, refuse, wait, idle
//   planRecord   after the primary rebuilt its manifests: what to publish
//   planRetry    after a failed pass: when to try again
//   planSweep    after the periodic check of a root (off the pass): act or not
import type { SyncGeneration } from "../coordinator/port.js";
import type { SyncView } from "./engine-types.js";
import { isBehind } from "../coordinator/port.js";
import type { HeldState } from "./state.js";

export type SyncSide = "primary" | "standby";

const FIRST_RETRY_MS = 200;
/** A digest mismatch usually means the primary changed files during the pull: a new generation is on its way. */
const MISMATCH_RETRY_MS = 100;

// ------------------------------------------------------------------ follow

export interface FollowInput {
  readonly node: string;
  readonly side: SyncSide;
  /** Our term while on the primary side. */
  readonly term: number | null;
  readonly held: number;
  /** The record the engine holds (its own publication, or the last one read). */
  readonly published: SyncGeneration | null;
  readonly view: SyncView;
  /** A retry timer is armed (a failed pass will run again by itself). */
  readonly retryArmed: boolean;
}

export interface FollowPlan {
  /** The record to hold from now on. */
  readonly published: SyncGeneration | null;
  readonly turn: { readonly to: "primary"; readonly term: number; readonly displaced: SyncGeneration["displaced"] | null } | { readonly to: "standby" } | null;
  /** Start a pass (folded into the running one, if any) for the generation; a turn starts one by itself. */
  readonly kick: boolean;
  /** A new generation: the retry backoff of the previous one ends. */
  readonly cancelRetry: boolean;
  readonly reason: string;
}

export function planFollow(i: FollowInput): FollowPlan {
  const { view } = i;
  const mine = i.published;
  // A primary keeps its own newer record over a snapshot read before its publish landed.
  const stale = i.side === "primary" && mine !== null && (view.published === null || (view.published !== undefined && view.published.generation < mine.generation));
  const published = view.published !== undefined && !stale ? view.published : mine;
  const notes: string[] = [];
  if (stale) notes.push(`keeping my generation ${mine!.generation} over a snapshot ${view.published ? `of generation ${view.published.generation}` : "without one"} read before my publish landed`);
  let turn: FollowPlan["turn"] = null;
  let side = i.side;
  if (view.acting === "primary" && view.term !== null && (i.side !== "primary" || i.term !== view.term)) {
    // Promoted without the newest published files (the gate allowed it, recorded as a stale
    // promotion): say so in every generation of this term, so their source rescues them on rejoining.
    const displaced = i.side === "standby" && published && published.source !== i.node && isBehind(i.held, published) ? { source: published.source, generation: published.generation } : null;
    turn = { to: "primary", term: view.term, displaced };
    side = "primary";
    notes.push(`primary side in term ${view.term}: watching the roots and publishing generations`);
    if (displaced) notes.push(`generation ${displaced.generation} of ${displaced.source} is not here (I hold ${i.held}): every generation of this term names it displaced`);
  } else if (view.acting === "standby" && i.side === "primary") {
    turn = { to: "standby" };
    side = "standby";
    notes.push("standby side: verifying every root (edits I did not publish are rescued), then following the primary's generations");
  }
  // A new record: a new number, or the same number put again by another primary or term (a new
  // primary confirming the files it took over). A standby that waited for that primary's own
  // record (planStandby) is in sync once it comes, so it runs a pass for it too.
  const newGeneration = published?.generation !== mine?.generation || published?.source !== mine?.source || published?.term !== mine?.term;
  const behind = side === "standby" && isBehind(i.held, published);
  let kick = false;
  if (side === "standby" && newGeneration) {
    kick = true;
    notes.push(published ? `generation ${published.generation} published by ${published.source} (term ${published.term})` : "the published generation is gone");
  } else if (side === "standby" && behind && !i.retryArmed) {
    kick = true;
    notes.push(`behind generation ${published!.generation} (I hold ${i.held}) with no retry armed: trying again`);
  }
  return { published, turn, kick, cancelRetry: side === "standby" && newGeneration, reason: notes.length > 0 ? notes.join("; ") : "no change" };
}

// -------------------------------------------------------------------- step

export interface SyncObservation {
  readonly nowMs: number;
  readonly node: string;
  readonly side: SyncSide;
  /** Our term on the primary side. */
  readonly term: number | null;
  readonly held: HeldState;
  readonly published: SyncGeneration | null;
  readonly leader: SyncView["leader"];
  /** Local root names, in configured order. */
  readonly roots: readonly string[];
  /** Primary: roots whose manifest must be rebuilt (changed, or never built). */
  readonly rebuild: readonly string[];
  /** Primary: why every root is rebuilt (promoted, periodic reconcile, resync), or null. */
  readonly fullRebuild: string | null;
  /** Standby: roots to compare with the files last synced before pulling, each with why. */
  readonly verifyDue: ReadonlyMap<string, string>;
  /** Standby: "term/root" keys already rescued against a generation that displaced this node's. */
  readonly displacementHandled: ReadonlySet<string>;
  /** Standby: since when (monotonic ms) behind the published generation. */
  readonly behindSinceMs: number | null;
}

export type SyncStep =
  | { readonly kind: "publish"; readonly term: number; readonly rebuild: readonly string[]; readonly reason: string }
  | { readonly kind: "verify"; readonly roots: readonly string[]; readonly reason: string }
  /** pull: stage, check and apply the roots that differ (none: only record the generation). rescue: the same, keeping first what differs from the incoming files in `againstIncoming`. */
  | {
      readonly kind: "pull" | "rescue";
      readonly record: SyncGeneration;
      readonly address: string;
      readonly roots: readonly string[];
      readonly againstIncoming: readonly string[];
      readonly reason: string;
    }
  | { readonly kind: "refuse"; readonly primary: string; readonly published: readonly string[]; readonly local: readonly string[]; readonly reason: string }
  /** Not done: the pass ends without success and without a retry (the next cycle or generation kicks again). */
  | { readonly kind: "wait"; readonly waiting: string; readonly reason: string }
  /** Done. inSyncWith: a standby holding the published generation (its roots' errors are cleared). */
  | { readonly kind: "idle"; readonly inSyncWith: SyncGeneration | null; readonly reason: string };

export function planStep(o: SyncObservation): SyncStep {
  return o.side === "primary" ? planPrimary(o) : planStandby(o);
}

function planPrimary(o: SyncObservation): SyncStep {
  if (o.term === null) return { kind: "wait", waiting: "no term", reason: "waiting: on the primary side without a term" };
  if (o.fullRebuild !== null) return { kind: "publish", term: o.term, rebuild: o.roots, reason: `publishing: rebuilding every root's manifest (${o.fullRebuild})` };
  if (o.rebuild.length > 0) return { kind: "publish", term: o.term, rebuild: o.rebuild, reason: `publishing: rebuilding the manifest of ${o.rebuild.join(", ")}` };
  const pub = o.published;
  const what = pub ? `generation ${pub.generation} (${pub.source}, term ${pub.term})` : "no published generation";
  return { kind: "publish", term: o.term, rebuild: [], reason: `publishing: comparing my live manifests with ${what}` };
}

function planStandby(o: SyncObservation): SyncStep {
  if (o.verifyDue.size > 0) {
    const roots = [...o.verifyDue.keys()];
    const why = [...new Set(o.verifyDue.values())].join(", ");
    return { kind: "verify", roots, reason: `verifying ${roots.join(", ")} (${why}): local files that differ from the last synced state are rescued before pulling` };
  }
  const pub = o.published;
  if (!pub) return { kind: "idle", inSyncWith: null, reason: "idle: no generation published yet, nothing to follow" };
  const leader = o.leader;
  if (!leader || leader.node === o.node) return wait("no primary to pull from", `generation ${pub.generation} is published but there is no other primary`);
  if (pub.source !== leader.node || pub.term !== leader.term) {
    return wait(`waiting for ${leader.node} to publish its files under term ${leader.term}`, `generation ${pub.generation} is ${pub.source}'s of term ${pub.term}, not the current primary's`);
  }
  if (!leader.address) return wait(`no address published for ${leader.node}`, `${leader.node} publishes generation ${pub.generation} but no address to pull from`);
  const local = [...o.roots].sort();
  const published = Object.keys(pub.roots).sort();
  if (local.join(",") !== published.join(",")) {
    return {
      kind: "refuse",
      primary: leader.node,
      published,
      local,
      reason: `refusing to pull: ${leader.node} publishes the roots ${published.join(", ") || "(none)"}, this node has ${local.join(", ") || "(none)"}`,
    };
  }
  const differ = o.roots.filter((r) => o.held.roots[r] !== pub.roots[r]);
  const from = `generation ${pub.generation} from ${leader.node} (term ${pub.term})`;
  if (differ.length === 0 && o.held.generation === pub.generation) return { kind: "idle", inSyncWith: pub, reason: inSyncReason(pub) };
  const base = { record: pub, address: leader.address, roots: differ };
  const lag = o.behindSinceMs === null ? "" : `, behind for ${Math.round(o.nowMs - o.behindSinceMs)}ms`;
  if (differ.length === 0) return { kind: "pull", ...base, againstIncoming: [], reason: `recording ${from}: every root already holds its files${lag}` };
  // This node's own last publication was displaced by a stale promotion: nobody pulled it, so each root
  // keeps whatever differs from the incoming files (once per root and term), not just what differs from it.
  const displaced = pub.displaced?.source === o.node ? differ.filter((r) => !o.displacementHandled.has(`${pub.term}/${r}`)) : [];
  if (displaced.length > 0) {
    return {
      kind: "rescue",
      ...base,
      againstIncoming: displaced,
      reason: `rescuing: ${pub.source} was promoted in term ${pub.term} without my generation ${pub.displaced!.generation}; keeping what in ${displaced.join(", ")} differs from the incoming files, then pulling ${from}`,
    };
  }
  return { kind: "pull", ...base, againstIncoming: [], reason: `pulling ${from}: ${differ.join(", ")} differ${lag}` };
}

/** A standby that holds the published generation (the source is the current primary). */
export function inSyncReason(pub: SyncGeneration): string {
  return `in sync: holding generation ${pub.generation} from ${pub.source} (term ${pub.term})`;
}

function wait(waiting: string, why: string): SyncStep {
  return { kind: "wait", waiting, reason: `waiting: ${why} (${waiting})` };
}

// ------------------------------------------------------------------ record

export type RecordPlan = { readonly kind: "unchanged"; readonly reason: string } | { readonly kind: "confirm" | "new"; readonly generation: number; readonly reason: string };

/** After a rebuild: the live tree's digest against the published record. */
export function planRecord(i: {
  readonly node: string;
  readonly term: number;
  readonly held: number;
  readonly published: SyncGeneration | null;
  readonly digest: string;
  readonly changed: readonly string[];
}): RecordPlan {
  const pub = i.published;
  const mine = pub !== null && pub.digest === i.digest && pub.term === i.term && pub.source === i.node;
  if (mine && i.held === pub.generation) {
    return { kind: "unchanged", reason: `published: generation ${pub.generation} under my term ${i.term}, no root changed since` };
  }
  if (mine) {
    return { kind: "confirm", generation: pub.generation, reason: `published: generation ${pub.generation} put again under my term ${i.term} (my own record of it was not saved)` };
  }
  if (pub && pub.digest === i.digest) {
    return { kind: "confirm", generation: pub.generation, reason: `published: generation ${pub.generation} confirmed under my term ${i.term} (same files as ${pub.source}'s of term ${pub.term})` };
  }
  const generation = Math.max(pub?.generation ?? 0, i.held) + 1;
  const over = pub ? `${i.changed.join(", ")} changed since generation ${pub.generation}` : "the first generation";
  return { kind: "new", generation, reason: `published: new generation ${generation} under my term ${i.term} (${over})` };
}

// ------------------------------------------------------------------- retry

/** After `failures` consecutive failed passes: exponential backoff from 200 ms up to retryMaxMs, or at once-ish when every root only mismatched. */
export function planRetry(failures: number, allMismatch: boolean, retryMaxMs: number): { readonly delayMs: number; readonly reason: string } {
  if (allMismatch)
    return { delayMs: MISMATCH_RETRY_MS, reason: `retrying in ${MISMATCH_RETRY_MS}ms: the pulled files did not match the published digest (the primary is likely publishing a newer generation)` };
  const delayMs = Math.min(retryMaxMs, FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 20));
  return { delayMs, reason: `retrying in ${delayMs}ms after ${failures} failed pass(es) (backoff doubling from ${FIRST_RETRY_MS}ms up to ${retryMaxMs}ms)` };
}

// ------------------------------------------------------------------- sweep

/**
 * The periodic check of one root, made off the pass (sweep.ts) so that it
 * never holds up a pull or a publish: what to do with the live manifest it
 * read. `reference` is what the side compares against (primary: the manifest
 * it last built and published from; standby: the one it last applied), null
 * when it has none; `changedMeanwhile`: the pass replaced that reference
 * while the sweep read the root; `due`: the pass will rebuild or verify the
 * root anyway.
 */
export type SweepVerdict = { readonly kind: "in-step" | "skip" | "drift" | "read"; readonly reason: string };

/** `live` undefined: asked before reading the root; "read" means reading it can tell something. */
export function planSweep(i: {
  readonly side: SyncSide;
  readonly root: string;
  readonly reference: string | null;
  readonly live?: string;
  readonly changedMeanwhile: boolean;
  readonly due: boolean;
}): SweepVerdict {
  const what = i.side === "primary" ? "periodic reconcile" : "periodic verify";
  if (i.changedMeanwhile) return { kind: "skip", reason: `${what} of ${i.root}: skipped, the pass changed the root while it was read (its own check is newer)` };
  if (i.due) return { kind: "skip", reason: `${what} of ${i.root}: skipped, the next pass ${i.side === "primary" ? "rebuilds" : "verifies"} it anyway` };
  if (i.reference === null)
    return { kind: "skip", reason: `${what} of ${i.root}: nothing to compare with yet (${i.side === "primary" ? "no manifest built" : "never synced: the next pull stages it whole"})` };
  if (i.live === undefined) return { kind: "read", reason: `${what} of ${i.root}: reading the live files` };
  if (i.live === i.reference) return { kind: "in-step", reason: `${what} of ${i.root}: the live files are the ${i.side === "primary" ? "published" : "last synced"} ones` };
  return i.side === "primary"
    ? { kind: "drift", reason: `${what} of ${i.root}: the live files changed without a watch event (${short(i.reference)} -> ${short(i.live)}); rebuilding and publishing it` }
    : {
        kind: "drift",
        reason: `${what} of ${i.root}: the live files differ from the last synced state (${short(i.reference)} -> ${short(i.live)}); verifying it in the next pass (local edits are rescued)`,
      };
}

function short(digest: string): string {
  return digest.slice(0, 12);
}
