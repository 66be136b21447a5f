// The transport of a loss-free rejoin (docs/data-replication-design.md §7). Pure:
// renders the former primary's read-only modules and builds the new primary's
// pull command; runs nothing.
//
// * The former primary F, while rejoin is pending (rejoin-marker.ts), serves
//   each data root as a read-only module `r<T>-<root>` (T: the new primary's
//   term; path = the data root itself; `hosts allow` = the new primary's
//   address only), in the same daemon config as its other modules (the sync
//   key's forced command reads it).
// * The new primary N pulls each root into an inbox inside its own root's
//   temp dir (`<root>/.understudy-tmp/inbox-<T>-<F>/`: hidden from partners,
//   never shipped, on the root's filesystem so the merge is a rename) with
//   `--compare-dest=<N's live root>`: only files F holds that N lacks or holds
//   differently cross the network. No --delete: the pull only adds files to
//   the inbox, and nothing ever deletes on F or in N's live tree.
import { posix } from "node:path";
import { UnderstudyError } from "../errors/catalogue.js";
import { hostForUrl } from "../platform/listen-address.js";
import { checkModule } from "../sync/rsyncd.js";
import { safeHost } from "../sync/transport.js";
import type { SshTransport } from "../sync/transport-ssh.js";
import { sshArgv } from "../sync/transport-ssh.js";
import { safeAbsolutePath, safeUser } from "../sync/transport-values.js";
import { TEMP_DIR_NAME } from "./receive.js";
import { rsyncBase } from "./rsync-argv.js";

/** The read-only module a former primary serves to the primary of `term`: a primary of another term finds none. */
export function rejoinModuleName(term: number, root: string): string {
  if (!Number.isInteger(term) || term < 1) throw new UnderstudyError("US_E_DATA_CONFIG", { setting: "rejoin module term", problem: "must be a positive integer", value: String(term) });
  return checkModule("data.roots[].name", `r${term}-${root}`);
}

/** The module sections (no global lines) a former primary adds to its daemon config while rejoin is pending. */
export function renderRejoinModules(roots: readonly { readonly name: string; readonly path: string }[], serve: { readonly term: number; readonly address: string } | null): string {
  if (serve === null) return "";
  const to = safeHost("rejoin primary address", serve.address);
  const lines: string[] = [];
  for (const root of roots) {
    lines.push(
      `[${rejoinModuleName(serve.term, root.name)}]`,
      `    path = ${safeAbsolutePath(`data.roots.${root.name}.path`, root.path)}`,
      "    read only = yes",
      // rsync's temp files and a receiving module's leftovers are not partners' files.
      `    exclude = /${TEMP_DIR_NAME}/`,
      `    hosts allow = ${to}`,
      "",
    );
  }
  return lines.join("\n");
}

/** Where the files come from: F's module over ssh, or a local directory (tests). */
export type RejoinSource =
  | { readonly kind: "module"; readonly user: string; readonly host: string; readonly term: number; readonly root: string; readonly ssh: SshTransport }
  | { readonly kind: "local"; readonly path: string };

export interface PullOptions {
  readonly source: RejoinSource;
  /** N's live data root (absolute): the --compare-dest and the inbox's parent's parent. */
  readonly liveRoot: string;
  readonly inbox: string;
  readonly fsync?: boolean;
  readonly timeoutS?: number;
  readonly rsyncPath?: string;
}

/** `<root>/.understudy-tmp/inbox-<term>-<from>`: hidden, never shipped, on the root's filesystem. */
export function inboxPath(liveRoot: string, term: number, from: string): string {
  return posix.join(safeAbsolutePath("data root", liveRoot), TEMP_DIR_NAME, `inbox-${term}-${checkModule("rejoin node", from)}`);
}

export function pullCommand(o: PullOptions): string[] {
  // --fsync (the default): the merge moves these files into N's live tree and then tells F it may
  // receive (and be deleted on): on disk first.
  const argv = [...rsyncBase(o), `--exclude=/${TEMP_DIR_NAME}/`, `--compare-dest=${safeAbsolutePath("data root", o.liveRoot)}`];
  const s = o.source;
  if (s.kind === "module") argv.push("-e", sshArgv(s.ssh).join(" "));
  const from =
    s.kind === "local"
      ? `${safeAbsolutePath("rejoin source", s.path)}/`
      : `${safeUser("sync.ssh.user", s.user)}@${hostForUrl(safeHost("former primary address", s.host))}::${rejoinModuleName(s.term, s.root)}/`;
  argv.push("--", from, `${safeAbsolutePath("rejoin inbox", o.inbox)}/`);
  return argv;
}
