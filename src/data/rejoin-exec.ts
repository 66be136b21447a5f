// The new primary's side of a loss-free rejoin (docs/data-replication-design.md §7):
// pull a former primary's files into an inbox (rejoin-pull.ts), merge them into
// the live tree file by file as src/data/rejoin.ts plans, record every moved
// file (journal, log line, metric event), then one history record, one webhook
// event and data/rejoin/<F> done, guarded by this primary's term.
//
// Never deletes in the live tree. A file goes into place with link(2) +
// unlink of the inbox entry (link refuses an existing name: a partner's upload
// that lands at the same moment is never overwritten; the file is re-planned),
// or beside the existing file under its conflict name; a copy this tree
// already holds (same bytes, or kept earlier under a conflict name) is
// dropped from the inbox. Every touched directory is fsynced before the
// record says done. Running it again after a crash is safe: what was moved
// is no longer pulled (--compare-dest) or is dropped as the same content.
import { constants, type Stats } from "node:fs";
import { link, lstat, mkdir, open, readdir, readlink, rm, unlink, chown, chmod, rename } from "node:fs/promises";
import { posix } from "node:path";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { CommandRunner } from "../platform/command.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { DataRejoinRecords, HistoryLog } from "../coordinator/port.js";
import { TEMP_DIR_NAME } from "./receive.js";
import { conflictName, planMerge, type LiveState, type MergeStep } from "./rejoin.js";
import { inboxPath, pullCommand, type RejoinSource } from "./rejoin-pull.js";
import { bytes as human } from "./ship-plan.js";

/** What the metric counter, the log and the webhook hear (understudy_data_rejoin_files_total{kind}). */
export type RejoinEvent =
  | { readonly type: "data_rejoin_file"; readonly kind: "moved" | "conflict"; readonly from: string; readonly root: string; readonly path: string; readonly target: string; readonly restored: boolean }
  | {
      readonly type: "data_rejoin";
      readonly from: string;
      readonly term: number;
      readonly moved: number;
      readonly restored: number;
      readonly conflicts: number;
      readonly bytes: number;
      readonly done: boolean;
    };

export interface RejoinDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
  readonly coordinator: DataRejoinRecords & HistoryLog;
  readonly fsyncDir: (dir: string) => Promise<void>;
  /** A path placed in the live tree (a file, or a directory created): journal it `closed` so it reaches every standby. */
  readonly journal: (root: string, path: string, kind: "file" | "dir") => void;
  /** The path was deleted here during this term (a tombstone): a restored file is said so. Absent: never. */
  readonly deletedHere?: (root: string, path: string) => boolean;
  readonly onEvent?: (e: RejoinEvent) => void;
}

export interface RejoinRun {
  /** This primary, its term, the former primary. */
  readonly node: string;
  readonly term: number;
  readonly from: string;
  readonly roots: readonly { readonly name: string; readonly path: string }[];
  /** Where each root's files come from (F's `r<term>-<root>` module in production). */
  readonly source: (root: { readonly name: string; readonly path: string }) => RejoinSource;
  readonly fsync?: boolean;
  readonly timeoutS?: number;
  /** The whole pull of one root is killed after this long (default 1 h); the next run starts over. */
  readonly runTimeoutMs?: number;
  readonly rsyncPath?: string;
  /** Aborted when this node stops shipping (demoted): the pull is killed, the merge stops between files, nothing is recorded. */
  readonly signal?: AbortSignal;
}

export interface MergeTotals {
  moved: number;
  restored: number;
  conflicts: number;
  dropped: number;
  bytes: number;
  dirs: number;
}

export interface RejoinResult extends MergeTotals {
  /** data/rejoin/<from> done was written (false: this node no longer leads the term). */
  readonly done: boolean;
  readonly reason: string;
}

/** Pull, merge and record every root, then write data/rejoin/<from> done. Rejects with US_E_DATA_REJOIN; whatever was placed stays placed. */
export async function runRejoin(run: RejoinRun, deps: RejoinDeps): Promise<RejoinResult> {
  const started = deps.clock.monotonicMs();
  const totals: MergeTotals = { moved: 0, restored: 0, conflicts: 0, dropped: 0, bytes: 0, dirs: 0 };
  for (const root of run.roots) {
    const inbox = inboxPath(root.path, run.term, run.from);
    await prepareInbox(root.path, run.from, inbox);
    const argv = pullCommand({
      source: run.source(root),
      liveRoot: root.path,
      inbox,
      ...(run.fsync !== undefined ? { fsync: run.fsync } : {}),
      ...(run.timeoutS !== undefined ? { timeoutS: run.timeoutS } : {}),
      ...(run.rsyncPath !== undefined ? { rsyncPath: run.rsyncPath } : {}),
    });
    const r = await deps.runner.run(argv, { timeoutMs: run.runTimeoutMs ?? 3_600_000, ...(run.signal ? { signal: run.signal } : {}) });
    stopIfAborted(run.signal, run.from, root.name);
    if (r.code !== 0) {
      throw new UnderstudyError("US_E_DATA_REJOIN", { from: run.from, root: root.name, problem: `pull exited ${r.code ?? `on ${r.signal}`}: ${r.stderr.trim().slice(0, 500)}` });
    }
    const t = await mergeInbox({ root: root.name, liveRoot: root.path, inbox, from: run.from, term: run.term, ...(run.signal ? { signal: run.signal } : {}) }, deps);
    for (const k of Object.keys(totals) as (keyof MergeTotals)[]) totals[k] += t[k];
    // What is left are copies this tree already holds: the inbox goes.
    await rm(inbox, { recursive: true, force: true });
  }
  const tookMs = Math.round(deps.clock.monotonicMs() - started);
  const restored = totals.restored > 0 ? ` (${totals.restored} restored: deleted here during term ${run.term})` : "";
  const reason = `merged ${run.from}'s files into ${run.node}'s tree: ${totals.moved} moved${restored}, ${totals.conflicts} conflict(s) kept beside under a conflict name, ${totals.dropped} already held, ${human(totals.bytes)}`;
  const at = new Date(deps.clock.wallMs()).toISOString();
  await deps.coordinator.appendHistory(
    {
      kind: "data_rejoin",
      at,
      node: run.node,
      from: run.from,
      to: run.node,
      term: run.term,
      reason,
      durations: { rejoin_ms: tookMs },
      counts: { moved: totals.moved, restored: totals.restored, conflicts: totals.conflicts, bytes: totals.bytes },
    },
    run.term,
  );
  const done = await deps.coordinator.putDataRejoin(run.term, { node: run.from, by: run.node, term: run.term, done: true, moved: totals.moved, conflicts: totals.conflicts, at });
  deps.log.info({ from: run.from, term: run.term, ...totals, done, rejoin_ms: tookMs }, done ? reason : `${reason}; not recorded: term ${run.term} no longer leads`);
  deps.onEvent?.({ type: "data_rejoin", from: run.from, term: run.term, moved: totals.moved, restored: totals.restored, conflicts: totals.conflicts, bytes: totals.bytes, done });
  return { ...totals, done, reason };
}

/** `<root>/.understudy-tmp` (0700) and a fresh inbox; an older run's inbox for the same node goes (the former primary still holds every file). */
async function prepareInbox(liveRoot: string, from: string, inbox: string): Promise<void> {
  const tmp = posix.join(liveRoot, TEMP_DIR_NAME);
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  for (const name of await readdir(tmp)) {
    if (name.startsWith("inbox-") && name.endsWith(`-${from}`)) await rm(posix.join(tmp, name), { recursive: true, force: true });
  }
  await mkdir(inbox, { mode: 0o700 });
}

interface MergeCtx {
  readonly root: string;
  readonly liveRoot: string;
  readonly inbox: string;
  readonly from: string;
  readonly term: number;
  readonly signal?: AbortSignal;
}

function stopIfAborted(signal: AbortSignal | undefined, from: string, root: string): void {
  if (signal?.aborted) throw new UnderstudyError("US_E_DATA_REJOIN", { from, root, problem: "this node stopped shipping (no longer primary); the next primary redoes it" });
}

/** Merge one pulled inbox into the live tree (exported for the tests: the pull is one rsync). */
export async function mergeInbox(c: MergeCtx, deps: RejoinDeps): Promise<MergeTotals> {
  const totals: MergeTotals = { moved: 0, restored: 0, conflicts: 0, dropped: 0, bytes: 0, dirs: 0 };
  const touched = new Set<string>();
  await walk(c, deps, "", totals, touched);
  for (const dir of touched) await deps.fsyncDir(dir);
  return totals;
}

async function walk(c: MergeCtx, deps: RejoinDeps, rel: string, totals: MergeTotals, touched: Set<string>): Promise<void> {
  const names = (await readdir(posix.join(c.inbox, rel))).sort();
  for (const name of names) {
    stopIfAborted(c.signal, c.from, c.root);
    const path = rel === "" ? name : `${rel}/${name}`;
    const src = posix.join(c.inbox, path);
    const st = await lstat(src);
    if (st.isDirectory()) {
      const live = await lstatOrNull(posix.join(c.liveRoot, path));
      if (live === null) {
        // A directory F has and this tree lacks (a new home directory): created with its mode and owner.
        await mkdir(posix.join(c.liveRoot, path), { mode: st.mode & 0o7777 });
        await chown(posix.join(c.liveRoot, path), st.uid, st.gid);
        await chmod(posix.join(c.liveRoot, path), st.mode & 0o7777);
        touched.add(posix.join(c.liveRoot, rel));
        totals.dirs += 1;
        deps.journal(c.root, path, "dir");
        deps.log.info({ from: c.from, root: c.root, path }, `rejoin: created directory ${path} from ${c.from}: this primary did not have it`);
      } else if (!live.isDirectory()) {
        await placeConflictDir(c, deps, path, src, totals, touched);
        continue;
      }
      await walk(c, deps, path, totals, touched);
      continue;
    }
    await mergeFile(c, deps, path, src, st, totals, touched);
  }
}

async function mergeFile(c: MergeCtx, deps: RejoinDeps, path: string, src: string, st: Stats, totals: MergeTotals, touched: Set<string>): Promise<void> {
  const dir = posix.dirname(path) === "." ? "" : posix.dirname(path);
  const liveDir = posix.join(c.liveRoot, dir);
  // Bounded: each round either places the file or sees a name another writer just took.
  for (let attempt = 0; attempt < 5; attempt++) {
    const live = await liveState(src, st, posix.join(c.liveRoot, path));
    const kept = live.kind === "different" ? await keptAs(src, st, liveDir, posix.basename(path), c.from) : null;
    if (kept !== null) {
      await unlink(src);
      totals.dropped += 1;
      deps.log.debug({ from: c.from, root: c.root, path }, `rejoin: dropping ${c.from}'s copy of ${path}: already kept here as ${kept}`);
      return;
    }
    const step: MergeStep = planMerge({
      path,
      live,
      deletedHere: deps.deletedHere?.(c.root, path) ?? false,
      from: c.from,
      term: c.term,
      wallMs: deps.clock.wallMs(),
      taken: new Set(await readdir(liveDir)),
    });
    if (step.kind === "drop") {
      await unlink(src);
      totals.dropped += 1;
      deps.log.debug({ from: c.from, root: c.root, path }, `rejoin: ${step.reason}`);
      return;
    }
    try {
      // link(2) refuses an existing name: never overwrites a file a partner just uploaded.
      await link(src, posix.join(c.liveRoot, step.target));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new UnderstudyError("US_E_DATA_REJOIN", { from: c.from, root: c.root, problem: `placing ${step.target}: ${describeError(e)}` }, { cause: e });
    }
    await unlink(src);
    touched.add(liveDir);
    deps.journal(c.root, step.target, "file");
    totals.bytes += st.size;
    if (step.kind === "move") {
      totals.moved += 1;
      if (step.restored) totals.restored += 1;
    } else totals.conflicts += 1;
    deps.log.info({ from: c.from, root: c.root, path, target: step.target, kind: step.kind, bytes: st.size }, `rejoin: ${step.reason}`);
    deps.onEvent?.({
      type: "data_rejoin_file",
      kind: step.kind === "move" ? "moved" : "conflict",
      from: c.from,
      root: c.root,
      path,
      target: step.target,
      restored: step.kind === "move" && step.restored,
    });
    return;
  }
  throw new UnderstudyError("US_E_DATA_REJOIN", { from: c.from, root: c.root, problem: `${path}: its name here kept changing while it was placed` });
}

/** F has a directory where this tree holds a file (or a link): the directory is kept beside, under a conflict name. */
async function placeConflictDir(c: MergeCtx, deps: RejoinDeps, path: string, src: string, totals: MergeTotals, touched: Set<string>): Promise<void> {
  const liveDir = posix.join(c.liveRoot, posix.dirname(path));
  const target = conflictName(path, c.from, deps.clock.wallMs(), new Set(await readdir(liveDir)));
  if ((await lstatOrNull(posix.join(c.liveRoot, target))) !== null) {
    throw new UnderstudyError("US_E_DATA_REJOIN", { from: c.from, root: c.root, problem: `${path}: its conflict name ${target} is taken` });
  }
  await rename(src, posix.join(c.liveRoot, target));
  touched.add(liveDir);
  totals.conflicts += 1;
  deps.journal(c.root, target, "dir");
  deps.log.info({ from: c.from, root: c.root, path, target, kind: "conflict" }, `rejoin: keeping both: ${path} is not a directory here, ${c.from}'s directory goes to ${posix.basename(target)}`);
  deps.onEvent?.({ type: "data_rejoin_file", kind: "conflict", from: c.from, root: c.root, path, target, restored: false });
}

async function liveState(src: string, st: Stats, live: string): Promise<LiveState> {
  const l = await lstatOrNull(live);
  if (l === null) return { kind: "absent" };
  return (await sameEntry(src, st, live, l)) ? { kind: "same" } : { kind: "different" };
}

/** A conflict copy from `from` beside `base` with the same content (an earlier run's): its name. */
async function keptAs(src: string, st: Stats, liveDir: string, base: string, from: string): Promise<string | null> {
  const dot = base.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ""];
  const prefix = `${stem}.understudy-conflict-${from.replace(/[^A-Za-z0-9._-]/g, "_")}-`;
  for (const name of await readdir(liveDir)) {
    if (!name.startsWith(prefix) || !name.endsWith(ext)) continue;
    const p = posix.join(liveDir, name);
    const l = await lstatOrNull(p);
    if (l !== null && (await sameEntry(src, st, p, l))) return name;
  }
  return null;
}

async function sameEntry(a: string, sa: Stats, b: string, sb: Stats): Promise<boolean> {
  if (sa.isSymbolicLink() || sb.isSymbolicLink()) return sa.isSymbolicLink() && sb.isSymbolicLink() && (await readlink(a)) === (await readlink(b));
  if (!sa.isFile() || !sb.isFile()) return (sa.mode & constants.S_IFMT) === (sb.mode & constants.S_IFMT) && sa.rdev === sb.rdev;
  if (sa.size !== sb.size) return false;
  return sameBytes(a, b);
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = [await open(a, constants.O_RDONLY | constants.O_NOFOLLOW), await open(b, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null)];
  if (fb === null) {
    await fa.close();
    return false;
  }
  try {
    const ba = Buffer.alloc(1 << 16);
    const bb = Buffer.alloc(1 << 16);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length), fb.read(bb, 0, bb.length)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}
