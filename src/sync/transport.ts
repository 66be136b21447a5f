// Standbys PULL each sync root from the current primary with rsync over SSH,
// into a staging directory; verifying and applying the staged tree is someone
// else's job (apply.ts). rsync is spawned with an argument array, never a shell.
import { hostForUrl } from "../platform/listen-address.js";
import { isIP } from "node:net";
import { UnderstudyError, isUnderstudyError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { CommandResult, CommandRunner } from "../platform/command.js";
import { sshArgv, sshExitMasterArgv, validateSshTransport, type SshTransport, type SshTransportSettings } from "./transport-ssh.js";
import { checkModule } from "./rsyncd.js";
import { stampOfSync, type ReloadReporter } from "../platform/reloading-file.js";
import { safeAbsolutePath } from "./transport-values.js";

export { checkControlDir, type SshTransportSettings } from "./transport-ssh.js";

export interface RsyncPullerOptions {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly ssh: SshTransportSettings;
  /** Default /usr/bin/rsync. */
  readonly rsyncPath?: string;
  /** Bound on one pull, connection included. Default 30 000 ms. */
  readonly timeoutMs?: number;
  /**
   * Compare file contents, not size+mtime (`--checksum`). Default true: a
   * same-size edit that kept its mtime (restored from a backup, `cp -p`,
   * config management) would otherwise be skipped, and sync trees are small.
   */
  readonly checksum?: boolean;
  /** Told when the sync key or known_hosts changed and the SSH master connections were closed to pick them up. */
  readonly reloads?: ReloadReporter;
  /** Stats the key and known_hosts (injectable for tests); default: their (dev, ino, size, mtime, ctime), a few µs. */
  readonly trustStamp?: (files: readonly string[]) => string;
}

export interface PullRequest {
  /** The primary's address as published in etcd. */
  readonly primary: string;
  /** The sync root's name: the rsync module the primary's daemon serves it as (rsyncd.ts). */
  readonly root: string;
  /** Local staging directory; receives the root's contents (not the root directory itself). */
  readonly staging: string;
  /**
   * The root's exclude globs (glob.ts syntax), so excluded files are not
   * transferred at all. An optimisation only: the staged tree must still be
   * filtered with glob.ts, which stays the single definition of what syncs.
   */
  readonly exclude?: readonly string[];
  /** Override the puller's --checksum setting for this pull (e.g. after a digest mismatch). */
  readonly checksum?: boolean;
  /**
   * The live root (--copy-dest): a file missing from staging because the last
   * apply renamed it into place is copied locally from there when unchanged,
   * and used as the delta basis when not, instead of crossing the network
   * again. A copy, never a hard link: rsync changes the attributes of an
   * existing destination file in place, and a link would let it touch the
   * live file before the staged tree is verified.
   */
  readonly copyDest?: string;
}

export interface PullResult {
  readonly primary: string;
  readonly root: string;
  readonly staging: string;
  readonly durationMs: number;
}

const SAFE_HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$/;

/**
 * A primary's address as published in etcd: an IPv4/IPv6 literal or a DNS
 * name. A leading `-` would turn it into an ssh option, so names must start
 * with a letter or digit.
 */
export function safeHost(setting: string, value: string): string {
  if (typeof value === "string" && (isIP(value) !== 0 || SAFE_HOSTNAME.test(value))) return value;
  throw new UnderstudyError("US_E_SYNC_CONFIG", { setting, problem: "must be an IP address or a DNS name", value: JSON.stringify(value) });
}

/** rsync(1) EXIT VALUES, plus 255 for ssh's own failures. */
const RSYNC_EXIT: Readonly<Record<number, string>> = {
  1: "syntax or usage error",
  2: "protocol incompatibility",
  3: "errors selecting input/output files or directories",
  4: "requested action not supported",
  5: "error starting client-server protocol: ssh failed (unreachable, host key not pinned or changed, key refused) or the primary's rsync daemon refused",
  10: "error in socket I/O",
  11: "error in file I/O",
  12: "protocol data stream broken (the primary's rsync daemon refused the request?)",
  13: "errors with program diagnostics",
  14: "error in IPC code",
  20: "received SIGUSR1 or SIGINT",
  22: "error allocating memory",
  23: "partial transfer due to error",
  24: "partial transfer: source files vanished",
  25: "--max-delete stopped deletions",
  30: "timeout in data send/receive",
  35: "timeout waiting for daemon connection",
  255: "ssh failed: unreachable, host key not pinned or changed, or key refused",
};

export function rsyncExitMeaning(code: number): string {
  return RSYNC_EXIT[code] ?? "unknown rsync exit code";
}

/**
 * The first stderr line that says something: ssh's host-key warning opens
 * with a row of `@`, so lines without a letter are skipped.
 */
export function firstStderrLine(stderr: string): string {
  const line = stderr
    .split("\n")
    .map((l) => l.trim())
    .find((l) => /[A-Za-z]/.test(l));
  return (line ?? "").slice(0, 300);
}

/**
 * glob.ts anchors a pattern holding a "/" at the root, where rsync would match
 * it at any depth, so such patterns get rsync's leading "/". A trailing "/" is
 * dropped (glob.ts ignores it; rsync would then match directories only).
 * --delete-excluded keeps staging free of files excluded since an earlier pull.
 */
export function excludeArgs(patterns: readonly string[]): string[] {
  if (patterns.length === 0) return [];
  const args = patterns.map((p) => {
    const body = p.replace(/\/+$/, "");
    if (body === "" || /[\n\r\0]/.test(body)) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.roots.exclude", problem: "patterns must be non-empty single lines", value: JSON.stringify(p) });
    }
    return `--exclude=${body.includes("/") && !body.startsWith("/") ? `/${body}` : body}`;
  });
  return ["--delete-excluded", ...args];
}

export class RsyncPuller {
  private readonly runner: CommandRunner;
  private readonly clock: Clock;
  private readonly ssh: SshTransport;
  private readonly rsyncPath: string;
  private readonly timeoutMs: number;
  private readonly checksum: boolean;
  /** Primaries we may hold a master connection to, so close() can end them. */
  private readonly contacted = new Set<string>();
  /** Tail of the queue of pulls per primary. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly reloads: ReloadReporter | undefined;
  private readonly stampTrust: (files: readonly string[]) => string;
  /** The key's and known_hosts' stamp when the master connections were opened. */
  private trustStamp: string | undefined;

  /** Throws US_E_SYNC_CONFIG for any value that is unsafe on a command line. */
  constructor(opts: RsyncPullerOptions) {
    this.runner = opts.runner;
    this.clock = opts.clock;
    this.ssh = validateSshTransport(opts.ssh);
    this.rsyncPath = safeAbsolutePath("sync.rsync_path", opts.rsyncPath ?? "/usr/bin/rsync");
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 100) {
      throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.pull_timeout", problem: "must be at least 100 ms", value: String(opts.timeoutMs) });
    }
    this.checksum = opts.checksum ?? true;
    this.reloads = opts.reloads;
    this.stampTrust = opts.trustStamp ?? stampOfSync;
  }

  /**
   * ssh reads the key and known_hosts at each connection, but a ControlMaster
   * connection outlives them: after a key rotation or a re-pinned host key it
   * would keep using the old ones. A changed stamp closes every master first.
   */
  private trustChanged(): boolean {
    const stamp = this.stampTrust([this.ssh.key, this.ssh.knownHosts]);
    const changed = this.trustStamp !== undefined && stamp !== this.trustStamp;
    this.trustStamp = stamp;
    return changed;
  }

  /** The exact rsync argv a pull runs. Throws US_E_SYNC_CONFIG for an unsafe primary, root or staging path. */
  argv(req: PullRequest): string[] {
    const host = safeHost("primary address", req.primary);
    const module = checkModule("sync.roots[].name", req.root);
    const staging = safeAbsolutePath("sync staging directory", req.staging);
    return [
      this.rsyncPath,
      // -a = -rlptgoD: perms (0600 host keys), owners, symlinks as symlinks.
      "-a",
      ...((req.checksum ?? this.checksum) ? ["--checksum"] : []),
      // Compare mtimes to the nanosecond: the default (whole seconds) skips a
      // same-size edit made within the second of the last pull (seen in the lab).
      "--modify-window=-1",
      "--delete",
      ...excludeArgs(req.exclude ?? []),
      ...(req.copyDest !== undefined ? [`--copy-dest=${safeAbsolutePath("sync copy-dest", req.copyDest)}`] : []),
      "--numeric-ids",
      // I/O stall bound inside rsync; the whole run is also bounded by timeoutMs.
      `--timeout=${Math.max(1, Math.ceil(this.timeoutMs / 1000))}`,
      "-e",
      sshArgv(this.ssh).join(" "),
      "--",
      // host::module over ssh: the primary's forced command is rsync's daemon (rsyncd.ts).
      // Trailing slashes: the root's contents land directly in staging.
      `${this.ssh.user}@${hostForUrl(host)}::${module}/`,
      `${staging}/`,
    ];
  }

  /**
   * Pull one root. Throws US_E_SYNC_PULL_FAILED (transient) when rsync fails
   * or times out. Pulls from one primary run one at a time: with
   * ControlMaster=auto, concurrent first connections would each open their
   * own connection instead of sharing one.
   */
  async pull(req: PullRequest): Promise<PullResult> {
    const argv = this.argv(req);
    const prev = this.queues.get(req.primary) ?? Promise.resolve();
    const run = prev.then(() => this.runPull(req, argv));
    const tail = run.catch(() => undefined);
    this.queues.set(req.primary, tail);
    void tail.then(() => {
      if (this.queues.get(req.primary) === tail) this.queues.delete(req.primary);
    });
    return run;
  }

  private async runPull(req: PullRequest, argv: readonly string[]): Promise<PullResult> {
    if (this.ssh.controlMaster && this.trustChanged()) {
      await this.close();
      this.reloads?.reloaded("sync ssh key/known_hosts", [this.ssh.key, this.ssh.knownHosts]);
    }
    if (this.ssh.controlMaster) this.contacted.add(req.primary);
    const started = this.clock.monotonicMs();
    let r: CommandResult;
    try {
      r = await this.runner.run(argv, { timeoutMs: this.timeoutMs });
    } catch (e) {
      const timeout = isUnderstudyError(e, "US_E_COMMAND_TIMEOUT");
      throw new UnderstudyError(
        "US_E_SYNC_PULL_FAILED",
        {
          root: req.root,
          primary: req.primary,
          code: timeout ? "timeout" : "spawn",
          meaning: timeout ? `no result within ${this.timeoutMs} ms` : "could not run rsync",
          stderr: e instanceof Error ? e.message : String(e),
        },
        { cause: e },
      );
    }
    if (r.code !== 0) {
      throw new UnderstudyError("US_E_SYNC_PULL_FAILED", {
        root: req.root,
        primary: req.primary,
        code: r.code ?? `signal ${r.signal}`,
        meaning: r.code === null ? "rsync was killed" : rsyncExitMeaning(r.code),
        stderr: firstStderrLine(r.stderr),
      });
    }
    return { primary: req.primary, root: req.root, staging: req.staging, durationMs: this.clock.monotonicMs() - started };
  }

  /**
   * End the master connection to `primary` (leader change), or to every
   * primary pulled from (shutdown). Never throws: a master that is already
   * gone is the goal, and one left behind exits by itself after ControlPersist.
   */
  async close(primary?: string): Promise<void> {
    const hosts = primary === undefined ? [...this.contacted] : this.contacted.has(primary) ? [primary] : [];
    for (const host of hosts) {
      this.contacted.delete(host);
      try {
        await this.runner.run(sshExitMasterArgv(this.ssh, host), { timeoutMs: 5000 });
      } catch {
        // See above: nothing useful to do with a failure here.
      }
    }
  }
}
