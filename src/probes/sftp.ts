import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Ssh2 from "ssh2";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";
import { runCheck } from "./run.js";

export interface SftpTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** The probe account. */
  readonly user: string;
  /** One of the two: the account's private key (OpenSSH or PEM text), or its password. Never logged. */
  readonly credentials: { readonly privateKey: Buffer } | { readonly password: string };
  /** "SHA256:<base64>" as `ssh-keygen -lf` prints it; the server's host key must have this fingerprint. */
  readonly hostKeyFingerprint: string;
}

/** The fingerprint `ssh-keygen -lf` prints for a public key blob (the SSH wire encoding): "SHA256:" + unpadded base64. */
const requireCjs = createRequire(import.meta.url);
let ssh2Module: typeof Ssh2 | undefined;

/**
 * ssh2 and its crypto dependencies are loaded when the first sftp probe is
 * built, not by every agent: importing them cost an idle agent ~9 MB of RSS
 * (docs/benchmarks.md, "Agent resources"). Synchronous, like the import was.
 */
function ssh2(): typeof Ssh2 {
  return (ssh2Module ??= requireCjs("ssh2") as typeof Ssh2);
}

export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/**
 * Read the probe account's credentials once, when the probe is built: a missing
 * or unusable key file is a configuration error to fix before the agent starts,
 * not a failing probe that would hand the daemon over.
 */
export function loadSftpCredentials(name: string, files: { privateKey?: string; passwordFile?: string }): SftpTarget["credentials"] {
  const read = (key: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new UnderstudyError("US_E_PROBE_FILE", { name, key, file, cause: describeError(e) });
    }
  };
  if (files.privateKey !== undefined) {
    const privateKey = read("private_key", files.privateKey);
    const parsed = ssh2().utils.parseKey(privateKey);
    // parseKey's messages name the problem ("Encrypted private OpenSSH key detected, but no passphrase given"), never the key.
    if (parsed instanceof Error) throw new UnderstudyError("US_E_PROBE_FILE", { name, key: "private_key", file: files.privateKey, cause: parsed.message });
    return { privateKey };
  }
  if (files.passwordFile !== undefined) {
    const password = read("password_file", files.passwordFile)
      .toString("utf8")
      .replace(/\r?\n$/, "");
    if (password === "") throw new UnderstudyError("US_E_PROBE_FILE", { name, key: "password_file", file: files.passwordFile, cause: "the file is empty" });
    return { password };
  }
  throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem: "an sftp probe needs private_key or password_file" });
}

/**
 * A real SFTP session: SSH login as the probe account with the server's host
 * key pinned, the sftp subsystem opened, and realpath(".") answered. This is
 * what fails when SFTPGo's data provider or the home directories' storage is
 * down while the SSH banner still shows.
 */
export class SftpProbe implements Probe {
  readonly type = "sftp" as const;
  readonly name: string;
  private readonly pinned: string;

  constructor(
    private readonly target: SftpTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
    this.pinned = target.hostKeyFingerprint.replace(/=+$/, "");
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    const { host, port, user, timeoutMs, credentials } = this.target;
    return runCheck(this.clock, timeoutMs, signal, (run) => {
      const client = new (ssh2().Client)();
      let presented: string | undefined;
      let loggedIn = false;
      // After a login, say goodbye (the daemon logs a clean logout), and drop the
      // connection if the server does not close it within a second; before a login, just drop it.
      run.defer(() => {
        if (!loggedIn) {
          client.destroy();
          return;
        }
        const fallback = this.clock.setTimer(1000, () => client.destroy());
        client.once("close", () => fallback.cancel());
        client.end();
      });

      run.stage = `connecting to ${host}:${port}`;
      client.on("connect", () => (run.stage = "waiting for the SSH greeting"));
      client.on("greeting", () => (run.stage = "exchanging keys"));
      client.on("handshake", () => (run.stage = `authenticating as ${user}`));
      client.on("error", (e: Error & { level?: string }) => {
        if (presented !== undefined && presented !== this.pinned) {
          run.finish(false, `host key ${presented} does not match the pinned ${this.pinned}`);
        } else if (e.level === "client-authentication") {
          run.finish(false, `sftp login as ${user} refused: ${e.message}`);
        } else {
          run.finish(false, `${run.stage}: ${e.message}`);
        }
      });
      client.on("close", () => run.finish(false, `connection closed while ${run.stage}`));
      client.on("ready", () => {
        loggedIn = true;
        run.stage = "opening the sftp subsystem";
        client.sftp((err, sftp) => {
          if (err) return run.finish(false, `sftp subsystem refused: ${err.message}`);
          run.stage = "waiting for realpath";
          sftp.realpath(".", (e, path) => {
            if (run.settled) return;
            if (e) return run.finish(false, `sftp realpath failed: ${e.message}`);
            run.finish(true, `sftp login ok, realpath ${path}`);
          });
        });
      });

      client.connect({
        host,
        port,
        username: user,
        ...credentials,
        // Our own deadline (runCheck) ends the check; ssh2's is only a backstop.
        readyTimeout: timeoutMs + 1000,
        // No `agent` key: ssh2 asks an ssh-agent only when given one.
        tryKeyboard: false,
        hostVerifier: (key: Buffer) => {
          presented = sshFingerprint(key);
          return presented === this.pinned;
        },
      });
    });
  }
}
