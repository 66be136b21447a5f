// The ssh command line the sync transport uses, built only from validated
// values (transport-values.ts) so it can be handed to rsync as one `-e` string:
// rsync splits that string on whitespace itself, and no token contains any.
import { lstat } from "node:fs/promises";
import { UnderstudyError } from "../errors/catalogue.js";
import { safeAbsolutePath, safePort, safeUser } from "./transport-values.js";
import { cipherSettingProblem } from "../config/ssh-ciphers.js";

export interface SshTransportSettings {
  /** Login on the primary (the dedicated sync user). */
  readonly user: string;
  /** Private key of the dedicated sync key pair. */
  readonly key: string;
  /** known_hosts pinning every node's host key; nothing else is trusted. */
  readonly knownHosts: string;
  /** sshd port on the primary. Default 22. */
  readonly port?: number;
  /**
   * Private (0700) directory for the ControlMaster sockets. At most 45
   * characters: the socket path `<dir>/ssh-<40 hex>` plus ssh's 17-character
   * temporary suffix must fit in 107 bytes (sun_path).
   */
  readonly stateDir: string;
  /** Reuse one SSH connection per primary (ControlMaster). Default true. */
  readonly controlMaster?: boolean;
  /** How long an idle master connection stays up, in seconds. Default 60. */
  readonly controlPersistS?: number;
  /** ssh ConnectTimeout in seconds. Default 5. */
  readonly connectTimeoutS?: number;
  /** Default /usr/bin/ssh. */
  readonly sshPath?: string;
  /** ssh's `Ciphers` value (ssh-ciphers.ts chose it); absent or null: OpenSSH's default order. */
  readonly ciphers?: string | null;
}

/** Settings after validation, with defaults filled in. */
export interface SshTransport {
  readonly user: string;
  readonly key: string;
  readonly knownHosts: string;
  readonly port: number;
  readonly controlPath: string;
  readonly controlMaster: boolean;
  readonly controlPersistS: number;
  readonly connectTimeoutS: number;
  readonly sshPath: string;
  readonly ciphers: string | null;
}

/** sun_path is 108 bytes with the NUL; ssh binds `<ControlPath>.<16 random chars>` first. */
export const MAX_CONTROL_DIR_CHARS = 107 - "/ssh-".length - 40 - 17;

function positiveInt(setting: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting, problem: `must be an integer 1..${max}`, value: JSON.stringify(value) });
  }
  return value;
}

/**
 * The transport settings from the config's `sync.ssh` section, with the ControlMaster directory and
 * the resolved Ciphers value: the sync engine and data shipping build theirs the same way (they
 * share one SSH master per peer).
 */
export function sshSettingsFrom(
  ssh: { readonly user: string; readonly key: string; readonly known_hosts: string; readonly port: number; readonly connect_timeout: number },
  stateDir: string,
  ciphers: string | null,
): SshTransportSettings {
  return { user: ssh.user, key: ssh.key, knownHosts: ssh.known_hosts, port: ssh.port, stateDir, connectTimeoutS: ssh.connect_timeout / 1000, ciphers };
}

/** A Ciphers value travels in rsync's `-e` string, which rsync splits on whitespace itself. */
function safeCiphers(value: string | null): string | null {
  if (value === null) return null;
  const problem = cipherSettingProblem(value);
  if (problem !== null || value === "auto" || value === "default") {
    throw new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.ssh.ciphers", problem: problem ?? "must be resolved to a cipher list first", value: JSON.stringify(value) });
  }
  return value;
}

export function validateSshTransport(s: SshTransportSettings): SshTransport {
  const stateDir = safeAbsolutePath("sync.ssh.state_dir", s.stateDir);
  if (stateDir.length > MAX_CONTROL_DIR_CHARS) {
    throw new UnderstudyError("US_E_SYNC_CONFIG", {
      setting: "sync.ssh.state_dir",
      problem: `must be at most ${MAX_CONTROL_DIR_CHARS} characters so the SSH control socket path fits`,
      value: JSON.stringify(s.stateDir),
    });
  }
  return {
    user: safeUser("sync.ssh.user", s.user),
    key: safeAbsolutePath("sync.ssh.key", s.key),
    knownHosts: safeAbsolutePath("sync.ssh.known_hosts", s.knownHosts),
    port: safePort("sync.ssh.port", s.port ?? 22),
    // %C hashes local host, remote host, port and user: one socket per primary.
    controlPath: `${stateDir}/ssh-%C`,
    controlMaster: s.controlMaster ?? true,
    controlPersistS: positiveInt("sync.ssh.control_persist", s.controlPersistS ?? 60, 86_400),
    connectTimeoutS: positiveInt("sync.ssh.connect_timeout", s.connectTimeoutS ?? 5, 600),
    sshPath: safeAbsolutePath("sync.ssh.ssh_path", s.sshPath ?? "/usr/bin/ssh"),
    ciphers: safeCiphers(s.ciphers ?? null),
  };
}

/**
 * The ssh argv (without destination) for rsync's `-e`. `-F /dev/null` keeps
 * a user's or the system's ssh_config (ProxyCommand, HashKnownHosts, GSSAPI)
 * out of the picture; host keys come only from the pinned known_hosts file.
 */
export function sshArgv(t: SshTransport): string[] {
  const argv = [
    t.sshPath,
    "-F",
    "/dev/null",
    "-i",
    t.key,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${t.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "CheckHostIP=no",
    "-o",
    `ConnectTimeout=${t.connectTimeoutS}`,
    // A master connection to a primary that vanished exits after ~3 intervals
    // instead of holding every later pull until its timeout.
    "-o",
    `ServerAliveInterval=${t.connectTimeoutS}`,
    "-o",
    "ServerAliveCountMax=3",
    "-o",
    "LogLevel=ERROR",
  ];
  if (t.controlMaster) {
    argv.push("-o", "ControlMaster=auto", "-o", `ControlPath=${t.controlPath}`, "-o", `ControlPersist=${t.controlPersistS}s`);
  } else {
    argv.push("-o", "ControlMaster=no", "-o", "ControlPath=none");
  }
  if (t.ciphers !== null) argv.push("-o", `Ciphers=${t.ciphers}`);
  argv.push("-p", String(t.port));
  return argv;
}

/** `ssh -O exit` for the master connection to `host` (same user, port and ControlPath, so the same %C). */
export function sshExitMasterArgv(t: SshTransport, host: string): string[] {
  return [t.sshPath, "-F", "/dev/null", "-o", `ControlPath=${t.controlPath}`, "-o", "LogLevel=ERROR", "-p", String(t.port), "-l", t.user, "-O", "exit", host];
}

/**
 * The ControlMaster socket directory must be a directory owned by this user
 * and closed to everyone else: ssh trusts whatever listens on ControlPath, so
 * another local user able to plant a socket there could serve the pulls.
 * Call at start-up (the puller itself does no filesystem access).
 */
export async function checkControlDir(dir: string): Promise<void> {
  const bad = (problem: string) => new UnderstudyError("US_E_SYNC_CONFIG", { setting: "sync.ssh.state_dir", problem, value: JSON.stringify(dir) });
  let st;
  try {
    st = await lstat(dir);
  } catch (e) {
    throw bad(`cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (!st.isDirectory()) throw bad("must be a directory (not a symlink or file)");
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw bad("must be owned by the agent's user");
  if ((st.mode & 0o077) !== 0) throw bad(`must not be accessible to group or others (mode ${(st.mode & 0o777).toString(8)}; use 0700)`);
}
