// Moves a verified staged copy of a sync root into place on a standby.
//
// Atomicity, honestly: each file and link is replaced by one rename(), so a
// reader sees the old or the new version, never a torn one; the tree as a whole
// is not transactional. Everything that can be checked is checked before the
// first live change (staging location, digest, required mode, validator), which
// leaves only rare failures mid-apply (EPERM on chown, a read-only mount); then
// the error lists which paths already went live, and the next sync re-applies
// whatever still differs.
import { chmod, mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { CommandRunner } from "../platform/command.js";
import { isWithin } from "./within.js";
import type { DurableFs } from "../platform/durable-fs.js";
import type { TreeReader } from "./hasher.js";
import { buildManifest, compare, diffManifests, manifestOf, type HashCache, type Manifest, type ManifestEntry } from "./manifest.js";
import { checkSyncRoot, type SyncRoot } from "./paths.js";
import { runValidator } from "./validate.js";
import { ApplyRun, parentOf } from "./apply-run.js";

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export interface ApplyOptions {
  readonly root: SyncRoot;
  /** The staged copy of the root; must be on the root's file system and outside it (see stagingDirFor). */
  readonly stagedDir: string;
  /** What the primary published. With entries, a mismatch can name the first differing path. */
  readonly expected: { readonly digest: string; readonly entries?: readonly ManifestEntry[] };
  /** Refuse the whole tree if any file's permission bits are wider than this (e.g. 0o600 for host keys). */
  readonly requiredMode?: number;
  /** Force this owner on everything applied, instead of the primary's uid/gid. */
  readonly owner?: Owner;
  /** Validator argv; `{staged}` is replaced by the staged directory. */
  readonly validate?: readonly string[];
  readonly validateTimeoutMs?: number;
  /** Resolves `{staged:NAME}` in the validator (placeholders.ts). */
  readonly named?: (root: string) => string | undefined;
  /** Runs the validator and `sync -f` (the engine's runner). */
  readonly runner: CommandRunner;
  /** The directory fsyncs after the renames. */
  readonly fs: DurableFs;
  /** Reuse hashes of unchanged files across applies (staged and live trees). */
  readonly cache?: HashCache;
  /** Hash files off the calling thread (hasher.ts). */
  readonly hasher?: TreeReader;
  /**
   * Called after every check passed and before the first live change, with
   * the tree about to go live (owner applied): e.g. rescue local files that
   * differ from it. Gets the live tree's manifest as found; returns true if it
   * changed the live tree (which is then read again). A throw aborts the
   * apply with nothing changed by it.
   */
  readonly beforeApply?: (target: Manifest, live: Manifest) => Promise<boolean>;
  /**
   * The staged manifest checkStaged just returned, when nothing can have
   * written into the staged tree since (no validator or hook ran in between):
   * the apply trusts it instead of walking the tree again. Without it, every
   * check but the validator runs again first (a validator may write into staging).
   */
  readonly checked?: Manifest;
}

/** Path lists are relative and sorted; `removed` leaves out directories kept (see notes). */
export interface ApplySummary {
  readonly added: string[];
  readonly changed: string[];
  readonly removed: string[];
  /** Content bytes of the files added or changed. */
  readonly bytes: number;
  /** The tree now live (with `owner` applied): record it as this root's last known manifest. */
  readonly manifest: Manifest;
  /** Things deliberately left alone, for the log. */
  readonly notes: string[];
}

const DEFAULT_VALIDATE_TIMEOUT_MS = 30_000;

/** Where the transport should stage `root`: beside it (same file system), in a holder folder kept at 0700. */
export function stagingDirFor(root: SyncRoot): string {
  return path.join(path.dirname(path.resolve(root.path)), `.understudy-stage-${root.name}`, "tree");
}

/** Create the 0700 holder of stagingDirFor(root) and return the tree path (which the transport fills). */
export async function prepareStagingDir(root: SyncRoot): Promise<string> {
  checkSyncRoot(root);
  const tree = stagingDirFor(root);
  const holder = path.dirname(tree);
  await mkdir(holder, { recursive: true, mode: 0o700 });
  await chmod(holder, 0o700); // staged host keys wait here before their modes are fixed
  return tree;
}

/**
 * Every check that touches nothing live (staging location, digest, required
 * mode, validator), so a caller can check several roots before applying any
 * (engine: stage all, check all, then apply). Returns the staged manifest.
 */
export async function checkStaged(opts: Omit<ApplyOptions, "beforeApply">): Promise<{ staged: Manifest; liveExists: boolean }> {
  const { root, stagedDir } = opts;
  checkSyncRoot(root);
  const liveExists = await checkStaging(root, stagedDir);
  const staged = await buildManifest(root, stagedDir, opts.cache, opts.hasher);
  if (staged.digest !== opts.expected.digest) {
    const first = opts.expected.entries ? firstDifference(manifestOf(root.name, opts.expected.entries), staged) : undefined;
    throw new UnderstudyError("US_E_SYNC_DIGEST_MISMATCH", { root: root.name, expected: opts.expected.digest, actual: staged.digest, path: first ?? "unknown" });
  }
  if (opts.requiredMode !== undefined) checkModes(root, staged, opts.requiredMode);
  if (opts.validate) await runValidator(opts.validate, stagedDir, opts.runner, opts.validateTimeoutMs ?? DEFAULT_VALIDATE_TIMEOUT_MS, opts.named);
  return { staged, liveExists };
}

function sameOwnerAndMode(a: ManifestEntry | undefined, b: ManifestEntry): boolean {
  return a !== undefined && a.type === b.type && a.uid === b.uid && a.gid === b.gid && (b.type === "symlink" || a.mode === b.mode);
}

/** Rescue rounds before an apply gives up on a root whose files keep changing (US_E_SYNC_LIVE_BUSY). */
const MAX_RESCUE_ROUNDS = 5;

export async function applyStaged(opts: ApplyOptions): Promise<ApplySummary> {
  const { root, stagedDir } = opts;
  // Pre-checks: none of these touch the live tree.
  const trusted = opts.checked?.digest === opts.expected.digest ? opts.checked : undefined;
  const { staged, liveExists } = trusted ? { staged: trusted, liveExists: await checkStaging(root, stagedDir) } : await checkStaged(opts);

  const owner = opts.owner;
  const target = owner
    ? manifestOf(
        root.name,
        staged.entries.map((e) => ({ ...e, uid: owner.uid, gid: owner.gid })),
        staged.skipped,
      )
    : staged;
  const readLive = () => (liveExists ? buildManifest(root, root.path, opts.cache, opts.hasher) : Promise.resolve(manifestOf(root.name, [])));
  let live = await readLive();
  // Rescue until nothing more is to keep: an edit made while a rescue ran is in the next read, and
  // is kept by the next round instead of being deleted or overwritten as "not in the primary's tree".
  for (let round = 1; opts.beforeApply && (await opts.beforeApply(target, live)); round++) {
    const before = live;
    live = await readLive();
    if (round >= MAX_RESCUE_ROUNDS) {
      // Name what keeps coming back, so the operator can stop it or exclude it from the root.
      const d = diffManifests(before, live);
      const paths = [...d.added, ...d.changed].slice(0, 5).join(", ") || "(files moved out again)";
      throw new UnderstudyError("US_E_SYNC_LIVE_BUSY", { root: root.name, rounds: round, paths });
    }
  }
  const diff = diffManifests(live, target);
  const run = new ApplyRun(root, path.resolve(stagedDir), opts.fs, opts.runner);

  try {
    if (!liveExists) await run.step(".", () => run.createRoot(owner));
    const changes = new Set([...diff.added, ...diff.changed]);
    const placed = target.entries.filter((e) => changes.has(e.path));
    // Owners and modes on the staged copies first (only where a forced owner makes them differ:
    // rsync -a already gave every staged file the primary's), then ONE flush of the file system
    // (syncfs) instead of an fsync per file, then the renames: same guarantees (a renamed file is
    // durable and never visible with a wider mode), ~10x faster for thousands of small files.
    const stagedByPath = owner ? new Map(staged.entries.map((e) => [e.path, e])) : null;
    const differs = (e: ManifestEntry) => stagedByPath !== null && !sameOwnerAndMode(stagedByPath.get(e.path), e);
    const prepared = placed.filter((e) => e.type !== "dir" && differs(e));
    await run.steps(prepared, (e) => run.prepare(e), false);
    // A directory new to the live tree goes live whole, with one rename, where staging holds
    // nothing the manifest leaves out (no filters, nothing skipped): a first sync of 10,000
    // files in 100 directories is 100 renames, not 10,100.
    const whole = newSubtrees(root, staged, placed, diff.added);
    for (const [top, w] of whole) if (!(await run.holdsExactly(w.top, w.below))) whole.delete(top);
    const movedDirs = [...whole.values()].flatMap((w) => [w.top, ...w.below]).filter((e) => e.type === "dir");
    await run.steps(
      movedDirs.filter((e) => differs(e)),
      (e) => run.prepareDir(e),
      false,
    );
    await run.flushStaged(placed, movedDirs);
    // Directories in order (a parent before what it holds), then files and links, several at once:
    // each is one lstat and one rename into a directory that exists by then.
    const moved = new Set<string>();
    const inMoved = (p: string): boolean => {
      for (let d = parentOf(p); d !== null; d = parentOf(d)) if (moved.has(d)) return true;
      return false;
    };
    for (const e of placed) {
      if (e.type !== "dir" || inMoved(e.path)) continue;
      const w = whole.get(e.path);
      await run.step(e.path, async () => {
        if (w && (await run.moveDir(e, w.below))) moved.add(e.path);
        else await run.place(e);
      });
    }
    await run.steps(
      placed.filter((e) => e.type !== "dir" && !inMoved(e.path)),
      (e) => run.place(e),
    );
    // A prepared file's chown changed its ctime after the checks cached its key: it is read again.
    const touchedAfterCheck = new Set(prepared);
    if (opts.cache) await run.remember(opts.cache, placed, (e) => inMoved(e.path) && !touchedAfterCheck.has(e));
    const liveByPath = new Map(live.entries.map((e) => [e.path, e]));
    const gone = diff.removed.map((p) => liveByPath.get(p)!);
    for (const e of gone.filter((g) => g.type !== "dir")) await run.step(e.path, () => run.remove(e));
    for (const e of gone.filter((g) => g.type === "dir").reverse()) await run.step(e.path, () => run.remove(e));
  } catch (e) {
    await run.syncTouched().catch(() => undefined); // what did go live should be durable too
    throw e;
  }
  await run.syncTouched();

  const byPath = new Map(target.entries.map((e) => [e.path, e]));
  const bytes = [...diff.added, ...diff.changed].reduce((n, p) => n + (byPath.get(p)?.type === "file" ? byPath.get(p)!.size : 0), 0);
  const removed = diff.removed.filter((p) => !run.kept.has(p));
  const manifest = run.kept.size === 0 ? target : manifestOf(root.name, [...target.entries, ...live.entries.filter((e) => run.kept.has(e.path))], target.skipped);
  return { added: diff.added, changed: diff.changed, removed, bytes, manifest, notes: run.notes };
}

/**
 * The topmost added directories, each with every placed entry below it, that
 * can go live whole. Only when the staged tree holds exactly what its manifest
 * lists: no include or exclude filter (an excluded or unincluded path would go
 * live with its directory) and nothing skipped (a FIFO or socket likewise).
 * Everything below an added directory is added too: the live tree had none of it.
 */
function newSubtrees(root: SyncRoot, staged: Manifest, placed: readonly ManifestEntry[], added: readonly string[]): Map<string, { top: ManifestEntry; below: ManifestEntry[] }> {
  const whole = new Map<string, { top: ManifestEntry; below: ManifestEntry[] }>();
  if (root.include.length > 0 || root.exclude.length > 0 || staged.skipped.length > 0) return whole;
  const addedSet = new Set(added);
  const newDirs = new Set(placed.filter((e) => e.type === "dir" && addedSet.has(e.path)).map((e) => e.path));
  for (const e of placed) {
    let top: string | null = null;
    for (let d = parentOf(e.path); d !== null; d = parentOf(d)) if (newDirs.has(d)) top = d;
    if (top !== null) whole.get(top)?.below.push(e);
    else if (newDirs.has(e.path)) whole.set(e.path, { top: e, below: [] });
  }
  return whole;
}

/** Returns whether the live root exists. Throws US_E_SYNC_STAGING_FS. */
async function checkStaging(root: SyncRoot, stagedDir: string): Promise<boolean> {
  const refuse = (problem: string) => new UnderstudyError("US_E_SYNC_STAGING_FS", { root: root.name, staged: stagedDir, problem });
  if (isWithin(root.path, stagedDir)) throw refuse(`it is inside the root ${root.path}`);
  if (isWithin(stagedDir, root.path)) throw refuse(`it contains the root ${root.path}`);
  const st = await stat(stagedDir).catch((e) => {
    throw refuse(`cannot stat it: ${describeError(e)}`);
  });
  if (!st.isDirectory()) throw refuse("it is not a directory");
  const liveSt = await stat(root.path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw refuse(`cannot stat the root: ${describeError(e)}`);
  });
  if (liveSt && !liveSt.isDirectory()) throw refuse(`the root ${root.path} is not a directory`);
  const parent = path.dirname(path.resolve(root.path));
  const ref =
    liveSt ??
    (await stat(parent).catch((e) => {
      throw refuse(`the root does not exist and neither does its parent: ${describeError(e)}`);
    }));
  // rename() only works, and is only atomic, within one file system.
  if (ref.dev !== st.dev) throw refuse(`it is on a different file system from ${liveSt ? root.path : parent} (device ${st.dev} vs ${ref.dev})`);
  return liveSt !== undefined;
}

/**
 * Files and directories alike: nothing wider than max_mode, and never a
 * setuid, setgid or sticky bit (max_mode has no digit for them). A directory
 * may add search (x) wherever max_mode grants read: 0644 allows 0755 dirs.
 */
export function checkModes(root: SyncRoot, m: Manifest, required: number): void {
  const forDirs = required | ((required & 0o444) >> 2);
  for (const e of m.entries) {
    if (e.type === "symlink") continue;
    const allowed = e.type === "dir" ? forDirs : required;
    if ((e.mode & ~allowed & 0o7777) !== 0) {
      throw new UnderstudyError("US_E_SYNC_MODE", { root: root.name, path: e.path, mode: octal(e.mode), required: octal(allowed) });
    }
  }
}

function firstDifference(a: Manifest, b: Manifest): string | undefined {
  const d = diffManifests(a, b);
  return [...d.added, ...d.changed, ...d.removed].sort(compare)[0];
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}
