// The primary side of the sync transport: rsync's own daemon, started per
// connection by sshd as the forced command of the dedicated sync key
// ("rsync-daemon features via a remote-shell connection", rsync(1)). The
// command is fixed — nothing the client asks for is run — and the daemon
// config below allows exactly one thing: reading the sync roots, one module
// per root, named after it.
//
// Why not a checker of SSH_ORIGINAL_COMMAND in front of `rsync --server`
// (our first design) or rrsync: both start an interpreter for every pull
// (Node ~70 ms per pull on a 2-core VM, measured), and rrsync confines a key
// to ONE tree while our roots only share `/`. The daemon costs nothing extra.
import { UnderstudyError } from "../errors/catalogue.js";
import { safeAbsolutePath } from "./transport-values.js";

export interface ServedRoot {
  readonly name: string;
  readonly path: string;
  /** The root's globs (glob.ts syntax); the daemon refuses to serve what they leave out. */
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
}

/**
 * The root's include/exclude as a daemon filter chain, so the sync key cannot
 * pull what the config leaves out (sftpgo.db, a private key beside the host
 * keys) even with its own rsync arguments. Files the daemon filters out are
 * non-existent to the client. Translation as in the client's excludeArgs: a
 * pattern holding "/" is anchored at the root (glob.ts anchors it, rsync would
 * not). An include covers everything below it (`/***`), every directory stays
 * traversable (`+ * /`) so included files below can be reached, then `- *`.
 */
export function daemonFilter(root: ServedRoot): string | null {
  const rule = (sign: "-" | "+", p: string) => {
    const body = p.replace(/\/+$/, "");
    if (body === "" || /\s/.test(body)) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: `sync.roots.${root.name}`, problem: "include/exclude patterns must be non-empty, without spaces", value: JSON.stringify(p) });
    }
    return `${sign} ${body.includes("/") && !body.startsWith("/") ? `/${body}` : body}`;
  };
  const rules = (root.exclude ?? []).map((p) => rule("-", p));
  if ((root.include ?? []).length > 0) {
    for (const p of root.include!) rules.push(rule("+", p), `${rule("+", p)}/***`);
    rules.push("+ */", "- *");
  }
  return rules.length > 0 ? rules.join(" ") : null;
}

/** rsync module names: what sync root names allow (paths.ts), nothing rsyncd.conf would read as syntax. */
const MODULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * Options a client could use to read outside a root (follow a link that
 * points out of it) are refused; the module is read-only, so uploads and
 * deletions are refused by rsync anyway.
 */
const REFUSED = ["copy-links", "copy-unsafe-links", "copy-dirlinks", "keep-dirlinks", "safe-links", "munge-links"];

export function checkModule(setting: string, name: string): string {
  if (!MODULE.test(name)) throw new UnderstudyError("US_E_SYNC_CONFIG", { setting, problem: "must be letters, digits, . _ - (a sync root name)", value: JSON.stringify(name) });
  return name;
}

export interface RsyncdOptions {
  /**
   * The account sshd runs the forced command as (sync.ssh.user). As root the
   * daemon chroots into each module, so a symlink in a root that points out of
   * it leads nowhere; any other account cannot chroot (docs/architecture.md,
   * "Symlinks and the chroot"). Default root.
   */
  readonly daemonUser?: string;
  /**
   * Data replication's write-only modules (src/data/receive.ts): rendered
   * after the read-only sync modules while this node is a standby receiving
   * a term's data. Each overrides the read-only defaults for itself only.
   */
  readonly writeModules?: readonly WriteModule[];
}

/** One write-only module: a data root on a standby, writable only from `hostsAllow`. */
export interface WriteModule {
  readonly name: string;
  readonly path: string;
  /** rsync's temporary files, resolved inside the module (chroot): e.g. `/.understudy-tmp`. */
  readonly tempDir: string;
  readonly hostsAllow: readonly string[];
  /**
   * The durability barrier beside it (data full passes, src/data/full-pass.ts): a module on the same
   * path that shows nothing and whose pre-xfer exec syncs the root's filesystem, so listing it
   * returns once every file written before is on disk, and fails with the error when that fails.
   */
  readonly barrier?: string;
}

/** The standby's syncfs: coreutils `sync --file-system` (Debian, RHEL: /usr/bin/sync). */
export const SYNC_BINARY = "/usr/bin/sync";

/** Options a writer could use to put a half-written file under its final name. */
const REFUSED_WRITES = ["inplace", "append", "append-verify", "partial", "partial-dir"];

/** A write module's lines (the global section's read only/chroot/refuse are overridden here). */
export function renderWriteModule(m: WriteModule): string[] {
  const name = checkModule("data module", m.name);
  const path = safeAbsolutePath(`data module ${name} path`, m.path);
  if (path === "/") throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: `data module ${name} path`, problem: "must not be the filesystem root", value: JSON.stringify(m.path) });
  const temp = safeAbsolutePath(`data module ${name} temp dir`, m.tempDir);
  if (m.hostsAllow.length === 0 || m.hostsAllow.some((h) => !/^[0-9A-Fa-f.:/]+$/.test(h))) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: `data module ${name} hosts allow`, problem: "must list addresses only", value: JSON.stringify(m.hostsAllow) });
  }
  return [
    `[${name}]`,
    `    path = ${path}`,
    // Root and chrooted: owners and modes arrive exactly, and nothing outside the root is reachable.
    "    use chroot = yes",
    "    read only = no",
    // The primary cannot read a standby's files through it.
    "    write only = yes",
    `    temp dir = ${temp}`,
    `    hosts allow = ${m.hostsAllow.join(" ")}`,
    `    refuse options = ${[...REFUSED, ...REFUSED_WRITES].join(" ")}`,
    "",
    ...(m.barrier !== undefined ? renderBarrier(checkModule("data barrier module", m.barrier), path, m.hostsAllow) : []),
  ];
}

/**
 * The barrier module's lines: read-only, every name excluded by the daemon (a listing shows "."
 * only), and a pre-xfer exec that rsync runs through sh before the listing. The path reaches the
 * command through the environment, never spliced into it; its stdout (stderr folded in) is what
 * the client sees when it fails.
 */
function renderBarrier(name: string, path: string, hostsAllow: readonly string[]): string[] {
  return [
    `[${name}]`,
    `    path = ${path}`,
    "    use chroot = yes",
    "    read only = yes",
    "    write only = no",
    "    exclude = *",
    `    pre-xfer exec = ${SYNC_BINARY} --file-system "$RSYNC_MODULE_PATH" 2>&1`,
    `    hosts allow = ${hostsAllow.join(" ")}`,
    `    refuse options = ${REFUSED.join(" ")}`,
    "",
  ];
}

/** The daemon config for `rsync --server --daemon --config=FILE .`: one read-only module per root. */
export function renderRsyncdConf(roots: readonly ServedRoot[], opts: RsyncdOptions = {}): string {
  if (roots.length === 0) throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.roots", problem: "must list at least one root", value: "[]" });
  const chroot = (opts.daemonUser ?? "root") === "root";
  const lines = [
    "# Written by the understudy agent from its sync.roots; do not edit (it is rewritten at start).",
    "# Read by `rsync --server --daemon --config=<this file> .`, the forced command of the sync key.",
    // "yes", not unset: a chroot that fails stops the pull instead of serving unconfined.
    // Symlink values are sent unchanged either way; munging only rewrites stored (uploaded) links.
    `use chroot = ${chroot ? "yes" : "no"}`,
    "read only = yes",
    "write only = no",
    "list = no",
    "numeric ids = yes",
    "munge symlinks = no",
    // When sshd runs the daemon as root it would drop to `nobody` and fail to read 0600 host keys.
    // As any other user these are ignored: the key's account then needs read access to the roots.
    "uid = 0",
    "gid = 0",
    "max verbosity = 1",
    // Every allow list here holds addresses only, so the client's name is never needed. With the
    // default (yes) each session first asks DNS for the peer's name: behind a resolver that drops
    // queries every config pull and data batch waited 10.2 s instead of 0.19 s (rsyncd-dns.lab).
    "reverse lookup = no",
    "forward lookup = no",
    `refuse options = ${REFUSED.join(" ")}`,
    "",
  ];
  const seen = new Set<string>();
  for (const r of roots) {
    const name = checkModule("sync.roots[].name", r.name);
    if (seen.has(name)) throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.roots[].name", problem: "is used by another root", value: JSON.stringify(name) });
    seen.add(name);
    const path = safeAbsolutePath(`sync.roots.${name}.path`, r.path);
    if (path === "/") throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: `sync.roots.${name}.path`, problem: "must not be the filesystem root", value: JSON.stringify(r.path) });
    const filter = daemonFilter(r);
    lines.push(`[${name}]`, `    path = ${path}`, ...(filter ? [`    filter = ${filter}`] : []), "");
  }
  for (const m of opts.writeModules ?? []) {
    for (const name of m.barrier !== undefined ? [m.name, m.barrier] : [m.name]) {
      if (seen.has(name)) throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "data module", problem: "is used by a sync root or another data module", value: JSON.stringify(name) });
      seen.add(name);
    }
    lines.push(...renderWriteModule(m));
  }
  return lines.join("\n");
}

/** The forced command: fixed, whatever the client asked to run. */
export function serveCommand(configPath: string, rsyncPath = "/usr/bin/rsync"): string {
  return `${safeAbsolutePath("sync.rsync_path", rsyncPath)} --server --daemon --config=${safeAbsolutePath("sync.serve_config", configPath)} .`;
}

const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,3})(?:\s+(.*))?$/;
const FROM_ENTRY = /^!?[0-9A-Za-z.:/*?-]+$/;

export interface AuthorizedKeysOptions {
  /** Path of the rendered daemon config on this node (sync.serve_config). */
  readonly config: string;
  readonly rsyncPath?: string;
  /** sshd `from=` patterns (the other nodes' addresses); omitted when empty. */
  readonly from?: readonly string[];
}

/**
 * The authorized_keys line for the sync key on every node. `restrict` turns
 * off port, agent and X11 forwarding, ptys and ~/.ssh/rc; the forced command
 * replaces whatever the client asks for.
 */
export function authorizedKeysLine(publicKey: string, opts: AuthorizedKeysOptions): string {
  const m = KEY_LINE.exec(publicKey.trim());
  if (!m) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync key", problem: "public key must be one `type base64 [comment]` line", value: JSON.stringify(publicKey.slice(0, 40)) });
  }
  const options = ["restrict"];
  if (opts.from && opts.from.length > 0) {
    const bad = opts.from.find((f) => !FROM_ENTRY.test(f));
    if (bad !== undefined) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync key from", problem: "must be address patterns without quotes or spaces", value: JSON.stringify(bad) });
    }
    options.push(`from="${opts.from.join(",")}"`);
  }
  options.push(`command="${serveCommand(opts.config, opts.rsyncPath)}"`);
  const comment = (m[3] ?? "understudy-sync").replace(/[^A-Za-z0-9._@-]/g, "_");
  return `${options.join(",")} ${m[1]} ${m[2]} ${comment}`;
}
