/**
 * Lab helpers for the sync transport: a dedicated sync key installed with the
 * forced rsync-daemon command (src/sync/rsyncd.ts), a fixture tree shaped like a real sync root,
 * a CommandRunner that runs inside a node's namespace, and a tree snapshot
 * for byte/mode/owner comparison.
 *
 * Every namespace shares the host's filesystem, so "n1's root" and "n2's
 * staging" are simply different directories.
 */
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { runOk } from "./exec.js";
import type { Lab, LabNode } from "./lab.js";

/** Structurally src/platform/command.ts's CommandRunner (the harness does not import src/). */
export interface ArgvRunner<O, R> {
  run(argv: readonly string[], options?: O): Promise<R>;
}

/** Wraps a CommandRunner so every command runs inside a network namespace: `ip netns exec NS argv...`. */
export class NetnsCommandRunner<O, R> implements ArgvRunner<O, R> {
  constructor(
    readonly ns: string,
    private readonly inner: ArgvRunner<O, R>,
  ) {}
  run(argv: readonly string[], options?: O): Promise<R> {
    return this.inner.run(["ip", "netns", "exec", this.ns, ...argv], options);
  }
}

/** Renders the authorized_keys line and the rsync daemon config (src/sync/rsyncd.ts, passed in by the test). */
export interface SyncRenderers {
  authorizedKeys(publicKey: string, serveConfig: string): string;
  rsyncdConf(roots: { name: string; path: string }[]): string;
}

export interface SyncLab {
  /** Private half of the dedicated sync key (ed25519, no passphrase). */
  readonly key: string;
  /** Sync roots on the "primary" (plain directories under the primary's host dir), served as modules root1, root2... */
  readonly roots: string[];
  /** The roots' module names, in the same order. */
  readonly names: string[];
  /** Staging directories on the "standby", one per root. */
  readonly staging: string[];
  /** Short private directory for ControlMaster sockets (sun_path is 108 bytes). */
  readonly stateDir: string;
  /** The authorized_keys line that was installed. */
  readonly authorizedKeysLine: string;
  /** The rsync daemon config the forced command reads. */
  readonly serveConfig: string;
  /** Remove the state dir (the rest lives in the lab dir). */
  cleanup(): void;
}

/**
 * Create the sync key, write the rsync daemon config, append the
 * forced-command line to the lab's AuthorizedKeysFile (read by every lab sshd
 * at each login), and make `rootCount` roots on `primary` plus staging dirs
 * on `standby`.
 */
export async function setupSyncLab(lab: Lab, primary: LabNode, standby: LabNode, render: SyncRenderers, rootCount = 2): Promise<SyncLab> {
  const dir = join(lab.dir, "sync");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = join(dir, "sync_ed25519");
  await runOk(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `understudy-sync-${lab.prefix}`, "-f", key]);
  const roots: string[] = [];
  const names: string[] = [];
  const staging: string[] = [];
  for (let i = 1; i <= rootCount; i++) {
    const r = join(primary.dir, "roots", `root${i}`);
    mkdirSync(r, { recursive: true, mode: 0o755 });
    roots.push(r);
    names.push(`root${i}`);
    const s = join(standby.dir, "staging", `root${i}`);
    mkdirSync(join(standby.dir, "staging"), { recursive: true, mode: 0o700 });
    staging.push(s);
  }
  const serveConfig = join(dir, "rsyncd.conf");
  writeFileSync(serveConfig, render.rsyncdConf(names.map((name, i) => ({ name, path: roots[i]! }))), { mode: 0o644 });
  const line = render.authorizedKeys(readFileSync(`${key}.pub`, "utf8"), serveConfig);
  appendFileSync(join(lab.dir, "client", "authorized_keys"), `${line}\n`);
  const stateDir = mkdtempSync("/tmp/us-cm-");
  chmodSync(stateDir, 0o700);
  return { key, roots, names, staging, stateDir, authorizedKeysLine: line, serveConfig, cleanup: () => rmSync(stateDir, { recursive: true, force: true }) };
}

/**
 * A tree like a real sync root: a daemon config, an SSH host key (0600) and
 * its .pub, a TLS cert and key in a 0750 dir, an executable hook, a nested
 * directory, a symlink, and a file owned by an unmapped uid/gid (numeric ids).
 */
export function writeFixtureTree(root: string): void {
  const f = (rel: string, content: string | Buffer, mode: number) => {
    const p = join(root, rel);
    writeFileSync(p, content);
    chmodSync(p, mode);
  };
  mkdirSync(join(root, "tls"), { recursive: true });
  chmodSync(join(root, "tls"), 0o750);
  mkdirSync(join(root, "hooks"), { recursive: true });
  mkdirSync(join(root, "nested", "deeper"), { recursive: true });
  f("sshd_config", "Port 22\nHostKey /etc/ssh/ssh_host_ed25519_key\nSubsystem sftp internal-sftp\n", 0o644);
  f("ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nfixture\n-----END OPENSSH PRIVATE KEY-----\n", 0o600);
  f("ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixture fixture\n", 0o644);
  f("tls/server.crt", "-----BEGIN CERTIFICATE-----\nMIIBfixture\n-----END CERTIFICATE-----\n", 0o644);
  f("tls/server.key", Buffer.from([0, 1, 2, 3, 255, 254, 10, 13]), 0o600);
  f("hooks/post-sync.sh", "#!/bin/sh\nexit 0\n", 0o755);
  f("nested/deeper/data.json", '{"a":1}\n', 0o640);
  f("nested/owned-by-1234", "numeric ids\n", 0o644);
  chownSync(join(root, "nested", "owned-by-1234"), 1234, 4321);
  symlinkSync("tls/server.crt", join(root, "current.crt"));
}

export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "other";
  mode: string;
  uid: number;
  gid: number;
  sha256?: string;
  target?: string;
}

/** An entry's mode (4 octal digits) and numeric owner, as TreeEntry holds them. */
export function modeAndOwner(st: { mode: number; uid: number; gid: number }): Pick<TreeEntry, "mode" | "uid" | "gid"> {
  return { mode: (st.mode & 0o7777).toString(8).padStart(4, "0"), uid: st.uid, gid: st.gid };
}

/** Every entry under `root` (and root itself as "."), by relative path: type, mode, owner, content hash or link target. */
export function snapshotTree(root: string): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (p: string) => {
    const st = lstatSync(p);
    const rel = relative(root, p) || ".";
    const base = modeAndOwner(st);
    if (st.isSymbolicLink()) out[rel] = { type: "symlink", ...base, target: readlinkSync(p) };
    else if (st.isFile()) out[rel] = { type: "file", ...base, sha256: createHash("sha256").update(readFileSync(p)).digest("hex") };
    else if (st.isDirectory()) {
      out[rel] = { type: "dir", ...base };
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else out[rel] = { type: "other", ...base };
  };
  walk(root);
  return out;
}

/** p-th percentile (0..100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
