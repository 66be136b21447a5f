// The rsync command lines of data shipping (docs/data-replication-design.md §6):
// one batch (`--files-from` on stdin, NUL-separated) and one full pass, from
// the primary's data root to a standby. Pure: builds argv arrays and the
// stdin list, runs nothing. Paths travel on stdin, never on the command line,
// so a partner's file name (spaces, quotes, a leading "-") is only ever data.
//
// Checked against real rsync by test/unit/data/data-rsync.test.ts:
// * --temp-dir outside the served tree: a file being received is never under
//   its final name, nor under a dot name inside the tree (rsync's default
//   temporary `.name.XXXXXX` would sit in the destination directory).
// * --delete-missing-args with --force: a listed path missing on the primary
//   is deleted on the standby, a directory with everything in it. Without
//   --force rsync 3.5 says "cannot delete non-empty directory" and exits 0.
// * -a --numeric-ids: modes, owners, groups and times exact; parents of a
//   listed path (a new home directory) are created with their own modes.
import type { SshTransport } from "../sync/transport-ssh.js";
import { sshArgv } from "../sync/transport-ssh.js";
import { checkModule, SYNC_BINARY } from "../sync/rsyncd.js";
import { hostForUrl } from "../platform/listen-address.js";
import { safeHost } from "../sync/transport.js";
import { safeAbsolutePath, safeUser } from "../sync/transport-values.js";
import { UnderstudyError } from "../errors/catalogue.js";
import { checkDataPath, type ReadyEntry } from "./journal.js";

/** Where a batch goes: a standby's term-scoped write module over ssh, or a local directory (tests, benchmarks). */
export type DataDestination =
  | {
      readonly kind: "module";
      readonly user: string;
      readonly host: string;
      readonly term: number;
      readonly root: string;
      readonly ssh: SshTransport;
    }
  | { readonly kind: "local"; readonly path: string };

export interface DataRsyncOptions {
  /** The primary's data root (absolute). */
  readonly source: string;
  readonly destination: DataDestination;
  /**
   * On the receiver: where rsync writes files before renaming them into
   * place. Must be on the root's filesystem (else the last step is a copy)
   * and outside the served tree. For a module, the receiver's rsyncd config
   * names it instead (`temp dir` is a daemon parameter); this is the local form.
   */
  readonly tempDir?: string;
  /** fsync every received file before it is acknowledged (rsync >= 3.2.4). Default true. */
  readonly fsync?: boolean;
  /** rsync's I/O stall bound, seconds. Default 30. */
  readonly timeoutS?: number;
  /** Bandwidth limit in KiB/s (slow links; the partial-file test slows a copy with it). */
  readonly bwlimitKiB?: number;
  /** Default /usr/bin/rsync. */
  readonly rsyncPath?: string;
}

/**
 * Inside each data root: rsync's temp dir on a standby (receive.ts). Always
 * excluded by the sender, so --delete never removes it and it is never shipped.
 */
export const TEMP_DIR_NAME = ".understudy-tmp";

/** The write module a standby serves for a term: a deposed primary's term finds none (the receiver's fence, §1). */
export function moduleName(term: number, root: string): string {
  if (!Number.isInteger(term) || term < 1) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data module term", problem: "must be a positive integer", value: String(term) });
  return checkModule("data.roots[].name", `d${term}-${root}`);
}

/** The standby's durability barrier for that module (receive.ts renders it, full-pass.ts lists it). */
export function barrierModuleName(term: number, root: string): string {
  return checkModule("data.roots[].name", `s${moduleName(term, root).slice(1)}`);
}

/**
 * The barrier: returns once every file the standby wrote under the root is on its disk (one
 * syncfs there instead of one fsync per file), non-zero with the standby's error when that fails.
 * To a module: list its barrier module (its pre-xfer exec runs `sync --file-system`, and the
 * daemon shows nothing); to a local directory (tests, benchmarks): `sync --file-system` on it.
 */
export function barrierCommand(o: Pick<DataRsyncOptions, "destination" | "rsyncPath">): string[] {
  const d = o.destination;
  if (d.kind === "local") return [SYNC_BINARY, "--file-system", safeAbsolutePath("data destination", d.path)];
  return [
    // No --timeout: the daemon says nothing while its sync runs, which may take minutes after a
    // large copy on a slow disk; ship_timeout (the runner's) bounds it.
    safeAbsolutePath("data.rsync_path", o.rsyncPath ?? "/usr/bin/rsync"),
    "--list-only",
    "-e",
    sshArgv(d.ssh).join(" "),
    "--",
    `${safeUser("data.ssh.user", d.user)}@${hostForUrl(safeHost("standby address", d.host))}::${barrierModuleName(d.term, d.root)}/`,
  ];
}

/**
 * The start of every data rsync (shipping here, the rejoin pull in rejoin-pull.ts): the binary,
 * exact owners, modes and times, --fsync unless turned off, and rsync's own I/O timeout.
 */
export function rsyncBase(o: { readonly rsyncPath?: string | undefined; readonly fsync?: boolean | undefined; readonly timeoutS?: number | undefined }): string[] {
  return [
    safeAbsolutePath("data.rsync_path", o.rsyncPath ?? "/usr/bin/rsync"),
    // -a = -rlptgoD, but with --files-from rsync does not recurse unless -r is given again (batchCommand).
    "-a",
    "--numeric-ids",
    // Times to the nanosecond: a same-size re-upload within the second is not skipped.
    "--modify-window=-1",
    ...((o.fsync ?? true) ? ["--fsync"] : []),
    timeoutArg(o.timeoutS),
  ];
}

/** rsync's own I/O stall bound (default 30 s). */
function timeoutArg(timeoutS = 30): string {
  if (!Number.isInteger(timeoutS) || timeoutS < 1)
    throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data.timeout", problem: "must be a whole number of seconds >= 1", value: String(timeoutS) });
  return `--timeout=${timeoutS}`;
}

function common(o: DataRsyncOptions): string[] {
  const args = [...rsyncBase(o), `--exclude=/${TEMP_DIR_NAME}`];
  if (o.tempDir !== undefined) args.push(`--temp-dir=${safeAbsolutePath("data temp dir", o.tempDir)}`);
  if (o.bwlimitKiB !== undefined) {
    if (!Number.isInteger(o.bwlimitKiB) || o.bwlimitKiB < 1)
      throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data.bwlimit", problem: "must be a whole number of KiB/s >= 1", value: String(o.bwlimitKiB) });
    args.push(`--bwlimit=${o.bwlimitKiB}`);
  }
  if (o.destination.kind === "module") args.push("-e", sshArgv(o.destination.ssh).join(" "));
  return args;
}

function target(d: DataDestination): string {
  if (d.kind === "local") return `${safeAbsolutePath("data destination", d.path)}/`;
  return `${safeUser("data.ssh.user", d.user)}@${hostForUrl(safeHost("standby address", d.host))}::${moduleName(d.term, d.root)}/`;
}

/**
 * One batch: the entries' paths NUL-separated on stdin. Recursion (-r, which
 * -a does not imply with --files-from) only when an entry is a tree moved in;
 * otherwise a listed directory is created without its contents. Deletions are listed
 * like the rest and done by --delete-missing-args: rsync deletes only listed
 * paths, never anything else.
 */
export function batchCommand(entries: readonly Pick<ReadyEntry, "path" | "recursive">[], o: DataRsyncOptions): { readonly argv: string[]; readonly stdin: Buffer } {
  if (entries.length === 0) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data batch", problem: "must list at least one path", value: "[]" });
  const stdin = Buffer.from(entries.map((e) => `${checkDataPath(e.path)}\0`).join(""), "utf8");
  return {
    argv: batchArgv(
      entries.some((e) => e.recursive),
      o,
    ),
    stdin,
  };
}

/** A batch's argv before its list is known (warm-rsync.ts starts it ahead): the list comes on stdin. */
export function batchArgv(recursive: boolean, o: DataRsyncOptions): string[] {
  return [
    ...common(o),
    ...(recursive ? ["-r"] : ["--no-recursive"]),
    "--files-from=-",
    "--from0",
    "--delete-missing-args",
    "--force",
    "--",
    `${safeAbsolutePath("data root", o.source)}/`,
    target(o.destination),
  ];
}

/**
 * The first half of a barrier full pass (full-pass.ts): the whole root, but only the names the
 * standby lacks (--ignore-existing: no existing file is replaced), and no deletion.
 */
export function newFilesCommand(o: DataRsyncOptions): string[] {
  return [...common(o), "--ignore-existing", "--", `${safeAbsolutePath("data root", o.source)}/`, target(o.destination)];
}

/**
 * One full pass: the whole root, deleting on the standby what the primary
 * does not hold. `maxDelete` bounds the deletions of one pass: a primary
 * whose data volume is not mounted shows an empty root, and must not empty
 * every standby (rsync stops deleting at the limit and exits 25).
 */
export function fullPassCommand(o: DataRsyncOptions & { readonly maxDelete: number; readonly rewrite?: boolean }): string[] {
  if (!Number.isInteger(o.maxDelete) || o.maxDelete < 0)
    throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "data.max_delete", problem: "must be a whole number >= 0", value: String(o.maxDelete) });
  // rewrite: every file sent again (--ignore-times), after a sync of the standby's volume failed:
  // what was written may be cached but not on its disk, and size and time would say it is there.
  return [...common(o), ...(o.rewrite ? ["--ignore-times"] : []), "--delete", `--max-delete=${o.maxDelete}`, "--", `${safeAbsolutePath("data root", o.source)}/`, target(o.destination)];
}
