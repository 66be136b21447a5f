// The standby's receiving side of data shipping (docs/data-replication-design.md
// §1 and "Receiver module, tried by hand"): the rsync daemon config the data
// key's forced command reads. Pure: renders text, writes nothing.
//
// The fence is in the config itself: while this node follows leader L in term
// T, each data root is served as ONE write-only module `d<T>-<root>` that only
// L's address may use (`hosts allow`, matched by rsync against the client
// address in SSH_CONNECTION). A new term re-renders the file; a node that is
// primary, or follows no one, renders no module at all. A deposed primary's
// rsync then gets "Unknown module" (exit 5) and writes nothing.
import { posix } from "node:path";
import { UnderstudyError } from "../errors/catalogue.js";
import { checkModule } from "../sync/rsyncd.js";
import { safeHost } from "../sync/transport.js";
import { safeAbsolutePath } from "../sync/transport-values.js";
import { moduleName } from "./rsync-argv.js";

export interface ReceiveRoot {
  /** The data root's name (the module is `d<term>-<name>`). */
  readonly name: string;
  /** Its path on this standby; the module serves its PARENT, which holds the root and TEMP_DIR_NAME. */
  readonly path: string;
}

/** Beside each data root, on its filesystem: rsync's temporary files, outside the tree the daemon serves. */
export const TEMP_DIR_NAME = ".understudy-tmp";

/** Who may write: the leader this node follows, and its term. null: this node receives nothing (it is primary, or follows no one). */
export type ReceiveFrom = { readonly term: number; readonly leaderAddress: string } | null;

/** The parent directory a root's module serves, and the root's name inside it. */
export function moduleLayout(root: ReceiveRoot): { readonly parent: string; readonly dir: string; readonly tempDir: string } {
  const path = safeAbsolutePath(`data.roots.${root.name}.path`, root.path);
  const parent = posix.dirname(path);
  if (parent === "/" || path === "/") {
    throw new UnderstudyError("US_E_DATA_CONFIG", {
      setting: `data.roots.${root.name}.path`,
      problem: "must sit in a parent directory other than / (the receiving module serves the root's parent)",
      value: JSON.stringify(root.path),
    });
  }
  return { parent, dir: checkModule(`data.roots.${root.name}.path`, posix.basename(path)), tempDir: posix.join(parent, TEMP_DIR_NAME) };
}

/** The daemon config for `rsync --server --daemon --config=FILE .` on a standby. */
export function renderReceiveConf(roots: readonly ReceiveRoot[], from: ReceiveFrom): string {
  const lines = [
    "# Written by the understudy agent for data replication; do not edit (rewritten at every term).",
    "# Read by `rsync --server --daemon --config=<this file> .`, the forced command of the data key.",
    from === null ? "# This node receives nothing now (it is the primary, or it follows no leader)." : `# Receiving term ${from.term} from ${from.leaderAddress} only.`,
    // The kernel confines each transfer to the module (a symlink in a partner's tree leads nowhere outside it).
    "use chroot = yes",
    "numeric ids = yes",
    "munge symlinks = no",
    // Root, so owners and modes arrive exactly (-a --numeric-ids from the primary).
    "uid = 0",
    "gid = 0",
    "list = no",
    "max verbosity = 1",
    "refuse options = copy-links copy-unsafe-links copy-dirlinks keep-dirlinks safe-links munge-links inplace append append-verify partial partial-dir",
    "",
  ];
  if (from === null) return lines.join("\n");
  const leader = safeHost("leader address", from.leaderAddress);
  const seen = new Set<string>();
  for (const root of roots) {
    const module = moduleName(from.term, root.name);
    if (seen.has(module)) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data.roots[].name", problem: "is used by another data root", value: JSON.stringify(root.name) });
    seen.add(module);
    const { parent } = moduleLayout(root);
    lines.push(
      `[${module}]`,
      `    path = ${parent}`,
      "    read only = no",
      // The primary cannot read a standby's files through the data key.
      "    write only = yes",
      // Resolved inside the module: <parent>/.understudy-tmp, beside the root, same filesystem.
      `    temp dir = /${TEMP_DIR_NAME}`,
      `    hosts allow = ${leader}`,
      "",
    );
  }
  return lines.join("\n");
}
