// Path rules shared by manifest, apply and rescue: what a sync root may be
// called, which relative paths are acceptable, and where a symlink really points.
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";
import { UnderstudyError } from "../errors/catalogue.js";

export interface SyncRoot {
  /** Unique id; also names the staging and rescue folders, so it must be a plain file name. */
  readonly name: string;
  /** Absolute path of the live root directory. */
  readonly path: string;
  /** Globs (see glob.ts); empty means everything. A match on a directory includes its subtree. */
  readonly include: readonly string[];
  /** Globs; an excluded directory prunes its subtree. Exclude wins over include. */
  readonly exclude: readonly string[];
  /** Larger files are refused: roots hold configuration, not data. */
  readonly maxFileBytes: number;
}

const ROOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Reject a root definition the sync code cannot use safely. */
export function checkSyncRoot(root: SyncRoot): void {
  const bad = (problem: string) => new UnderstudyError("US_E_SYNC_ROOT_INVALID", { name: root.name, problem });
  if (!ROOT_NAME.test(root.name)) throw bad("name must be letters, digits, '.', '_' or '-', starting with a letter or digit");
  if (!path.isAbsolute(root.path) || path.resolve(root.path) === "/") throw bad(`path must be an absolute directory other than / (got ${root.path})`);
  if (!Number.isSafeInteger(root.maxFileBytes) || root.maxFileBytes <= 0) throw bad(`maxFileBytes must be a positive integer (got ${root.maxFileBytes})`);
  for (const g of [...root.include, ...root.exclude]) if (g.length === 0) throw bad("include/exclude patterns must not be empty");
}

/**
 * Throw US_E_SYNC_UNSAFE_PATH unless `rel` is a plain relative POSIX path:
 * not empty or absolute, no NUL, no empty, "." or ".." segments. The file
 * system never hands us such names, but manifests also arrive from the network.
 */
export function checkRelativePath(rootName: string, rel: string): void {
  const unsafe = (problem: string) => new UnderstudyError("US_E_SYNC_UNSAFE_PATH", { root: rootName, path: JSON.stringify(rel), problem });
  if (rel.length === 0) throw unsafe("empty path");
  if (rel.includes("\0")) throw unsafe("path contains NUL");
  if (rel.startsWith("/")) throw unsafe("path is absolute");
  for (const seg of rel.split("/")) {
    if (seg === "") throw unsafe("path has an empty segment");
    if (seg === "." || seg === "..") throw unsafe(`path has a '${seg}' segment`);
  }
}

// The kernel gives up after 40 links (ELOOP); so do we.
const MAX_LINK_HOPS = 40;

/**
 * Throw US_E_SYNC_UNSAFE_PATH unless the symlink at `rel` (inside the tree at
 * `treeDir`, a live root or a staged copy of `livePath`) resolves inside the root.
 * Resolution follows the kernel's order, component by component, through any
 * other links in the tree, so `a -> sub/link/../x` is judged by where `link`
 * really goes, not by lexical clean-up. Components that do not exist (a
 * dangling link) are resolved lexically. Absolute targets count as inside when
 * they name a path under the live root.
 */
export async function checkSymlinkInside(rootName: string, livePath: string, treeDir: string, rel: string, target: string): Promise<void> {
  const unsafe = (problem: string) => new UnderstudyError("US_E_SYNC_UNSAFE_PATH", { root: rootName, path: rel, problem });
  const liveRoot = path.resolve(livePath);
  const stack = rel.split("/").slice(0, -1); // the link's own directory, relative to the root
  let queue = startFrom(target);
  let hops = 0;
  let missing = false;

  function startFrom(t: string): string[] {
    if (!t.startsWith("/")) return t.split("/");
    const r = path.relative(liveRoot, path.resolve(t));
    if (r === ".." || r.startsWith("../") || path.isAbsolute(r)) throw unsafe(`symlink target ${t} is outside ${liveRoot}`);
    stack.length = 0;
    return r === "" ? [] : r.split("/");
  }

  while (queue.length > 0) {
    const seg = queue.shift()!;
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (stack.length === 0) throw unsafe(`symlink target ${target} resolves outside the root`);
      stack.pop();
      continue;
    }
    stack.push(seg);
    if (missing) continue;
    const here = path.join(treeDir, ...stack);
    const st = await lstat(here).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT" || e.code === "ENOTDIR") return undefined;
      throw e;
    });
    if (!st) {
      missing = true;
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_LINK_HOPS) throw unsafe(`symlink target ${target}: too many levels of links`);
      stack.pop();
      queue = [...startFrom(await readlink(here)), ...queue];
    }
  }
}
