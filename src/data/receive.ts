// The standby's receiving side of data shipping (docs/data-replication-design.md
// §1 and "Receiver module, tried by hand"): the rsync daemon config the data
// key's forced command reads. Pure: renders text, writes nothing.
//
// Layout (decided 2026-12-04): the module IS the data root (chroot there), and
// rsync's temp dir is `<root>/.understudy-tmp` (0700 root), resolved inside the
// chroot as `/.understudy-tmp`. The primary always excludes `/.understudy-tmp`,
// so --delete never touches it and its watcher never reports it; chrooted
// SFTP/FTP users (one home per user below the root) never see it.
//
// The fence is in the config itself: while this node follows leader L in term
// T, each data root is served as ONE write-only module `d<T>-<root>` that only
// L's address may use (`hosts allow`, matched by rsync against the client
// address in SSH_CONNECTION). A new term re-renders the file; a node that is
// primary, or follows no one, renders no module at all. A deposed primary's
// rsync then gets "Unknown module" (exit 5) and writes nothing.
import { UnderstudyError } from "../errors/catalogue.js";
import { renderWriteModule, SYNC_BINARY, type WriteModule } from "../sync/rsyncd.js";
import { safeHost } from "../sync/transport.js";
import { safeAbsolutePath } from "../sync/transport-values.js";
import { barrierModuleName, moduleName, TEMP_DIR_NAME } from "./rsync-argv.js";

export interface ReceiveRoot {
  /** The data root's name (the module is `d<term>-<name>`). */
  readonly name: string;
  /** Its path on this standby: the module serves it, chrooted there. */
  readonly path: string;
}

export { TEMP_DIR_NAME };

/**
 * Who may write: the leader this node follows, and its term; `vipAddress`
 * (when configured) is allowed too, in case the leader's connections leave
 * from the floating IP. null: this node receives nothing (primary, follows no one).
 */
export type ReceiveFrom = { readonly term: number; readonly leaderAddress: string; readonly vipAddress?: string } | null;

/** The module path and the temp dir on this standby's filesystem (what the agent creates, 0700). */
export function moduleLayout(root: ReceiveRoot): { readonly path: string; readonly tempDir: string } {
  const path = safeAbsolutePath(`data.roots.${root.name}.path`, root.path.replace(/\/+$/, "") || "/");
  if (path === "/") throw new UnderstudyError("US_E_DATA_CONFIG", { setting: `data.roots.${root.name}.path`, problem: "must not be /", value: JSON.stringify(root.path) });
  return { path, tempDir: `${path}/${TEMP_DIR_NAME}` };
}

/**
 * The write modules for `from` (none when null). Each has its durability barrier, except the roots
 * in `noBarrier`: one `sync --file-system` of the root would not cover them (barrierProblem); the
 * primary's probe then finds no barrier and fsyncs each file instead.
 */
export function receiveModules(roots: readonly ReceiveRoot[], from: ReceiveFrom, noBarrier: ReadonlySet<string> = new Set()): WriteModule[] {
  if (from === null) return [];
  const hosts = [safeHost("leader address", from.leaderAddress)];
  if (from.vipAddress !== undefined && from.vipAddress !== from.leaderAddress) hosts.push(safeHost("vip address", from.vipAddress));
  const seen = new Set<string>();
  return roots.map((root) => {
    const name = moduleName(from.term, root.name);
    if (seen.has(name)) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data.roots[].name", problem: "is used by another data root", value: JSON.stringify(root.name) });
    seen.add(name);
    const barrier = noBarrier.has(root.name) ? {} : { barrier: barrierModuleName(from.term, root.name) };
    return { name, path: moduleLayout(root).path, tempDir: `/${TEMP_DIR_NAME}`, hostsAllow: hosts, ...barrier };
  });
}

/** A stand-alone daemon config holding only the data modules (tests; the agent renders them into sync.serve_config). */
export function renderReceiveConf(roots: readonly ReceiveRoot[], from: ReceiveFrom): string {
  const lines = [
    "# Written by the understudy agent for data replication; do not edit (rewritten at every term).",
    from === null ? "# This node receives nothing now (it is the primary, or it follows no leader)." : `# Receiving term ${from.term} from ${from.leaderAddress} only.`,
    "use chroot = yes",
    "numeric ids = yes",
    "munge symlinks = no",
    "uid = 0",
    "gid = 0",
    "list = no",
    "max verbosity = 1",
    "",
  ];
  for (const m of receiveModules(roots, from)) lines.push(...renderWriteModule(m));
  return lines.join("\n");
}

/**
 * The mount points strictly below `root` in a /proc/self/mountinfo text (field 5, with the
 * kernel's octal escapes undone). Pure.
 */
export function mountsBelow(mountinfo: string, root: string): string[] {
  const base = root.replace(/\/+$/, "");
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    const mp = field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp.startsWith(`${base}/`)) out.push(mp);
  }
  return out;
}

/**
 * Why one `sync --file-system` of `root` would not cover what rsync writes below it, or null:
 * `syncUsable` (the sync binary runs here) and the mount points below it.
 */
export function barrierProblem(syncUsable: boolean, mounts: readonly string[]): string | null {
  if (!syncUsable) return `${SYNC_BINARY} is not an executable file here`;
  if (mounts.length > 0) return `${mounts.length} filesystem(s) mounted below it (${mounts.slice(0, 3).join(", ")}${mounts.length > 3 ? ", …" : ""})`;
  return null;
}
