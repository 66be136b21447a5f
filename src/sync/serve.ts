// The primary side of the sync transport: the forced command of the dedicated
// sync key. sshd puts what the client asked to run in SSH_ORIGINAL_COMMAND;
// checkServeCommand() allows only a read-only `rsync --server --sender` of
// exactly one configured root and returns the argv to exec instead.
//
// Why not rrsync: it confines a key to ONE directory tree, and our roots
// (/etc/ssh, /etc/sftpgo, ...) only share `/`. rrsync on `/` with `-ro` would
// let the key read every file root can read (/etc/shadow). This check is
// narrower than rrsync on purpose: one exact root per pull, no subpaths.
import { UnderstudyError } from "../errors/catalogue.js";
import { safeAbsolutePath, safeRoots } from "./transport-values.js";

export type ServeDecision =
  | { readonly ok: true; readonly argv: readonly string[]; readonly root: string }
  | { readonly ok: false; readonly why: string };

export interface ServeOptions {
  /** Default /usr/bin/rsync. */
  readonly rsyncPath?: string;
  /**
   * Add `--confine-root=ROOT` (rsync >= 3.5.0): filter rules travel inside the
   * protocol, so a client could name a merge file outside the root; this makes
   * the server refuse to open one. Default true.
   */
  readonly confineRoot?: boolean;
}

/** What a client may send at all: no quotes, backslashes (escaped names), globs, `$`, `;`, tabs. */
const COMMAND_CHARS = /^[A-Za-z0-9 ._/=,+@-]+$/;

/**
 * Short options the sender may get: -a's letters, checksum, verbosity,
 * compression, hard links, ACLs, xattrs, executability and a few harmless
 * transfer tweaks. Left out on purpose: s (secluded args: paths would arrive
 * inside the protocol, unchecked), L k (follow symlinks out of the root),
 * K R b u and everything else our own client never sends.
 * The optional trailing `e<digits>.<letters>` is the capability string, not options.
 */
const SHORT_CLUSTER = /^-([logDtprcvzHAXExOJNUIWSn]*)(e\d*\.[A-Za-z]*)?$/;

/** Long options the sender may get, with the only values allowed. */
const LONG_ALLOWED: readonly RegExp[] = [
  /^--numeric-ids$/,
  /^--timeout=\d{1,6}$/,
  /^--checksum-choice=[a-z0-9]+(,[a-z0-9]+)?$/,
  /^--compress-level=\d$/,
  /^--safe-links$/,
  /^--munge-links$/,
];

const refuse = (why: string): ServeDecision => ({ ok: false, why });

/**
 * Decide whether SSH_ORIGINAL_COMMAND may run. Pure: no filesystem access.
 * `roots` are the configured sync roots (validated here; an unsafe one throws
 * US_E_SYNC_CONFIG, since that is the operator's mistake, not the client's).
 */
export function checkServeCommand(original: string | undefined, roots: readonly string[], opts: ServeOptions = {}): ServeDecision {
  const allowed = safeRoots("sync-serve roots", roots);
  const rsync = safeAbsolutePath("sync-serve rsync path", opts.rsyncPath ?? "/usr/bin/rsync");
  if (original === undefined || original === "") return refuse("no command: this key only serves rsync pulls");
  if (original.length > 4096) return refuse("command is too long");
  if (!COMMAND_CHARS.test(original)) return refuse("command holds characters outside [A-Za-z0-9 ._/=,+@-]");
  // rsync joins its server command with single spaces; anything else is not our client.
  const tokens = original.split(" ");
  if (tokens.some((t) => t === "")) return refuse("command has empty arguments (doubled or edge spaces)");
  if (tokens[0] !== "rsync" || tokens[1] !== "--server") return refuse("not an rsync server command");
  if (tokens[2] !== "--sender") return refuse("only pulls (rsync --server --sender) are allowed: this key is read-only");

  const options: string[] = [];
  let i = 3;
  for (; i < tokens.length && tokens[i] !== "."; i++) {
    const t = tokens[i]!;
    if (!t.startsWith("-")) return refuse(`argument ${t} comes before the '.' that ends rsync's options`);
    if (t.startsWith("--")) {
      if (!LONG_ALLOWED.some((re) => re.test(t))) return refuse(`option ${t.split("=")[0]} is not allowed`);
    } else {
      const m = SHORT_CLUSTER.exec(t);
      if (!m || (m[1] === "" && m[2] === undefined)) return refuse(`option cluster ${t} holds a letter that is not allowed`);
    }
    options.push(t);
  }
  if (i >= tokens.length) return refuse("no '.' argument: not the argument layout of an rsync pull");
  const paths = tokens.slice(i + 1);
  if (paths.length !== 1) return refuse(`exactly one path is allowed, got ${paths.length}`);
  const path = paths[0]!;
  const root = allowed.find((r) => path === r || path === `${r}/`);
  if (root === undefined) return refuse(`path ${path} is not one of the sync roots`);

  const argv = [rsync, "--server", "--sender", ...options];
  if (opts.confineRoot ?? true) argv.push(`--confine-root=${root}`);
  // "--" so nothing after it is read as an option.
  argv.push("--", ".", path);
  return { ok: true, argv, root };
}

/** Default forced command; the roots are appended as arguments. */
export const DEFAULT_SERVE_PROGRAM: readonly string[] = ["/usr/bin/understudy", "sync-serve"];

/**
 * The `command=` value for the sync key: `PROGRAM... ROOT...`. sshd runs it
 * through the login shell, so every word is checked to hold no shell syntax.
 */
export function primarySideCommand(roots: readonly string[], program: readonly string[] = DEFAULT_SERVE_PROGRAM): string {
  const words = program.map((w, i) => {
    if (i === 0) return safeAbsolutePath("sync-serve program", w);
    if (!/^[A-Za-z0-9._/=+@-]+$/.test(w)) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync-serve program", problem: "arguments must hold no whitespace, quotes or shell characters", value: JSON.stringify(w) });
    }
    return w;
  });
  if (words.length === 0) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync-serve program", problem: "must not be empty", value: "[]" });
  }
  return [...words, ...safeRoots("sync.roots", roots)].join(" ");
}

const KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,3})(?:\s+(.*))?$/;
const FROM_ENTRY = /^!?[0-9A-Za-z.:/*?-]+$/;

export interface AuthorizedKeysOptions {
  readonly roots: readonly string[];
  /** Forced command program. Default DEFAULT_SERVE_PROGRAM. */
  readonly program?: readonly string[];
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
  options.push(`command="${primarySideCommand(opts.roots, opts.program)}"`);
  const comment = (m[3] ?? "understudy-sync").replace(/[^A-Za-z0-9._@-]/g, "_");
  return `${options.join(",")} ${m[1]} ${m[2]} ${comment}`;
}
