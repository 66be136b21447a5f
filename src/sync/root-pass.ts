// One standby pass over the roots that differ from the published generation,
// with roots independent of each other: a failure is that root's alone.
//
// Order: 1. stage (pull) every changed root; 2. check each staged root
// (digest, modes, validator) with `{staged:NAME}` resolved, so a config that
// names another synced file is validated against the copy that will go live
// with it; 3. apply the checked roots, a root that another's validator names
// before the root that names it (placeholders.ts applyOrder). Nothing of any
// root goes live before every check of that root passed; a root whose
// validator names a root that failed (at any step) does not go live either.
//
// `{staged:NAME}` resolves to NAME's staged copy when NAME changed in this
// pass, to NAME's live path when NAME already holds the published files
// (unchanged: the live files are exactly the published ones), and to nothing
// (US_E_SYNC_STAGED_REF) when NAME is behind but not staged.
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import { stagedRefs } from "./placeholders.js";

export interface PassRoot {
  readonly name: string;
  readonly path: string;
  readonly validate?: readonly string[];
}

export interface Staged {
  readonly dir: string;
  readonly pullMs: number;
}

export interface RootPassSteps<R extends PassRoot> {
  /** Roots in configured order, and in check/apply order. */
  readonly roots: readonly R[];
  readonly ordered: readonly R[];
  /** Published digest per root, and the one this node's live files hold. */
  readonly want: Readonly<Record<string, string>>;
  readonly held: () => Readonly<Record<string, string>>;
  stage(r: R): Promise<Staged>;
  check(r: R, stage: Staged, named: (root: string) => string | undefined): Promise<void>;
  apply(r: R, stage: Staged): Promise<void>;
  /** True when the pass must stop (closed, or promoted meanwhile): nothing more is applied. */
  aborted(): boolean;
}

export interface RootPassResult {
  /** The roots staged this pass (attempted), whether they went live or not. */
  readonly staged: ReadonlySet<string>;
  readonly aborted: boolean;
}

/** Runs the three steps; failures go into `failed` (roots already in it are skipped). Never throws for a root's failure. */
export async function runRootPass<R extends PassRoot>(steps: RootPassSteps<R>, failed: Map<string, unknown>): Promise<RootPassResult> {
  const { roots, ordered, want } = steps;
  const staged = new Map<string, Staged>();
  const names = () => new Set(staged.keys());
  for (const r of roots) {
    if (steps.held()[r.name] === want[r.name] || failed.has(r.name)) continue;
    try {
      staged.set(r.name, await steps.stage(r));
    } catch (e) {
      failed.set(r.name, e);
    }
    if (steps.aborted()) return { staged: names(), aborted: true };
  }
  const named = (n: string) => stagedPath(n, roots, want, steps.held(), staged);
  const checked: R[] = [];
  for (const r of ordered.filter((x) => staged.has(x.name))) {
    try {
      checkRefs(r, named, failed);
      await steps.check(r, staged.get(r.name)!, named);
      checked.push(r);
    } catch (e) {
      failed.set(r.name, e);
    }
  }
  for (const r of checked) {
    if (steps.aborted()) return { staged: names(), aborted: true };
    try {
      checkRefs(r, named, failed); // a root this one's validator names may have failed to apply
      await steps.apply(r, staged.get(r.name)!);
    } catch (e) {
      failed.set(r.name, e);
    }
  }
  return { staged: names(), aborted: steps.aborted() };
}

/** Where `{staged:NAME}` points in this pass (see the header), or undefined. */
export function stagedPath(
  name: string,
  roots: readonly PassRoot[],
  want: Readonly<Record<string, string>>,
  held: Readonly<Record<string, string>>,
  staged: ReadonlyMap<string, Staged>,
): string | undefined {
  const s = staged.get(name);
  if (s) return s.dir;
  const r = roots.find((x) => x.name === name);
  return r && want[name] !== undefined && held[name] === want[name] ? r.path : undefined;
}

/** Throws US_E_SYNC_STAGED_REF when a root this root's validator names failed or has no copy to validate against. */
export function checkRefs(r: PassRoot, named: (root: string) => string | undefined, failed: ReadonlyMap<string, unknown>): void {
  for (const ref of stagedRefs(r.validate)) {
    if (ref === r.name) continue;
    const f = failed.get(ref);
    const problem = f !== undefined ? `failed (${isUnderstudyError(f) ? f.code : "US_E_UNEXPECTED"})` : named(ref) === undefined ? "is not a sync root here or is behind without a staged copy" : null;
    if (problem !== null) throw new UnderstudyError("US_E_SYNC_STAGED_REF", { root: r.name, ref, problem });
  }
}

/** The roots that failed in one standby pass (each already reported on its own). */
export class RootFailures extends Error {
  constructor(readonly failures: ReadonlyMap<string, unknown>) {
    super(`${failures.size} sync root(s) failed: ${[...failures.keys()].join(", ")}`);
  }
}

/** A failed pass as one error: the first root's (naming the others), and whether every failure was a digest mismatch. */
export function summarizeFailure(e: unknown): { code: string; message: string; allMismatch: boolean } {
  const all = e instanceof RootFailures ? [...e.failures.values()] : [e];
  const codeOf = (x: unknown) => (isUnderstudyError(x) ? x.code : "US_E_UNEXPECTED");
  const others = e instanceof RootFailures ? [...e.failures.keys()].slice(1) : [];
  const message = describeError(all[0]) + (others.length > 0 ? ` (and ${others.length} more failing root(s): ${others.join(", ")})` : "");
  return { code: codeOf(all[0]), message, allMismatch: all.every((x) => codeOf(x) === "US_E_SYNC_DIGEST_MISMATCH") };
}
