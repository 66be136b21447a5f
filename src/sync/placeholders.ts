// Validator placeholders and the order roots are checked and applied in.
//
// `{staged}` is the root's own staged copy; `{staged:NAME}` is root NAME's
// copy as this pass sees it: its staged directory when NAME changed in this
// pass (staged and checked before anything goes live), its live path when
// NAME is already at the published content. A validator that names a root
// which changed but could not be staged or checked is not run: the root that
// names it waits (US_E_SYNC_STAGED_REF) rather than validate against files
// that will not go live. Pure functions, no I/O.
import { UnderstudyError } from "../errors/catalogue.js";

export const STAGED_TOKEN = "{staged}";
const NAMED = /\{staged:([A-Za-z0-9][A-Za-z0-9._-]{0,62})\}/g;

/** The root names a validator argv refers to through `{staged:NAME}`, in order of first use, without duplicates. */
export function stagedRefs(argv: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const a of argv ?? []) for (const m of a.matchAll(NAMED)) if (!out.includes(m[1]!)) out.push(m[1]!);
  return out;
}

/**
 * Replace `{staged}` by `own` and every `{staged:NAME}` by `named(NAME)`
 * inside each argv element (no shell, so no quoting). Throws if a named root
 * has no path: callers check stagedRefs() first.
 */
export function substitutePlaceholders(argv: readonly string[], own: string, named: (root: string) => string | undefined = () => undefined): string[] {
  return argv.map((a) =>
    a
      .replace(NAMED, (_m, name: string) => {
        const p = named(name);
        if (p === undefined) throw new UnderstudyError("US_E_SYNC_PLACEHOLDER", { name });
        return p;
      })
      .split(STAGED_TOKEN)
      .join(own),
  );
}

/**
 * Roots in the order they are checked and applied: a root that another
 * root's validator names comes before it (so a config goes live after the
 * users file it references, and its post_sync reloads with both in place);
 * otherwise the configured order. A reference cycle keeps the configured
 * order for the roots in it.
 */
export function applyOrder<R extends { readonly name: string; readonly validate?: readonly string[] }>(roots: readonly R[]): R[] {
  const byName = new Map(roots.map((r) => [r.name, r]));
  const out: R[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (r: R): void => {
    if (state.get(r.name)) return; // done, or a cycle: keep the configured order
    state.set(r.name, "visiting");
    for (const ref of stagedRefs(r.validate)) {
      const dep = byName.get(ref);
      if (dep && dep !== r) visit(dep);
    }
    state.set(r.name, "done");
    out.push(r);
  };
  for (const r of roots) visit(r);
  return out;
}
