import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { connect, isIP } from "node:net";
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from "node:tls";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import { ReloadingFile, type ReloadReporter } from "../platform/reloading-file.js";
import { judgeExpiry, parseValidTo, pemCertificates } from "./certs.js";
import type { Probe, ProbeData, ProbeResult } from "./port.js";
import { runCheck, type CheckRun } from "./run.js";
import { completeLines } from "./tcp.js";

export interface TlsOptions {
  /** Verify the certificate chain and name (Node.js's CA list, or `ca`); off reports the expiry of any certificate. */
  readonly verify: boolean;
  /** PEM CA certificates to trust instead of Node.js's built-in list. */
  readonly ca?: Buffer;
  /** `ca_file`, re-read when it changes (a renewal); takes the place of `ca`. */
  readonly caFile?: { get(): Promise<Buffer> };
  /** Certificate failures (expired, untrusted, wrong name) are shared with every node: the TLS files are synced. Default true. */
  readonly sharedCertFailures?: boolean;
  /** Name sent in SNI and checked against the certificate; defaults to the host unless it is an IP address. */
  readonly servername?: string;
  /** Up with a warning when the certificate expires within this long. */
  readonly warningMs: number;
}

export interface FtpsTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly tls: TlsOptions;
}

/** Read `ca_file` once, when the probe is built: a missing file is a configuration error. */
export function loadCaFile(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new UnderstudyError("US_E_PROBE_FILE", { name, key: "ca_file", file, cause: describeError(e) });
  }
}

/**
 * `ca_file` as the probe uses it: read now (a missing or unusable file is a
 * configuration error at start), then again whenever it changes. A changed
 * file without a readable PEM certificate is refused and the previous CA stays.
 */
export function reloadingCaFile(name: string, file: string, reporter?: ReloadReporter): ReloadingFile<Buffer> {
  const first = loadCaFile(name, file);
  const load = async () => checkedCa(await readFile(file));
  try {
    checkedCa(first);
  } catch (e) {
    throw new UnderstudyError("US_E_PROBE_FILE", { name, key: "ca_file", file, cause: describeError(e) });
  }
  return new ReloadingFile(`probe ${name} ca_file`, [file], load, reporter).prime(first);
}

function checkedCa(pem: Buffer): Buffer {
  let certs;
  try {
    certs = pemCertificates(pem.toString("utf8"));
  } catch (e) {
    throw new UnderstudyError("US_E_CERT_PEM", { problem: `cannot be parsed: ${describeError(e)}` });
  }
  if (certs.length === 0) throw new UnderstudyError("US_E_CERT_PEM", { problem: "holds no certificate" });
  return pem;
}

/** The CA to trust for one check: the current `ca_file` content, or the fixed `ca`. */
export async function currentCa(tls: TlsOptions): Promise<Buffer | undefined> {
  return tls.caFile ? await tls.caFile.get() : tls.ca;
}

/** One FTP reply (RFC 959 §4.2, multi-line aware); "invalid" when the text is not an FTP reply, undefined while incomplete. */
export function parseFtpReply(received: string): { readonly code: string; readonly line: string } | "invalid" | undefined {
  const [first, ...rest] = completeLines(received);
  if (first === undefined) return undefined;
  const m = /^(\d{3})([ -])/.exec(first);
  if (!m) return "invalid";
  const code = m[1]!;
  const line = m[2] === " " ? first : rest.find((l) => l.startsWith(`${code} `));
  return line === undefined ? undefined : { code, line };
}

/**
 * Judge a TLS peer's certificate: expired fails, untrusted (when verifying)
 * fails, expiring within the warning period is up with a warning.
 */
export function judgePeerCertificate(run: CheckRun, socket: TLSSocket, what: string, label: string, options: TlsOptions, nowMs: number, checkedName: string): void {
  const cert: PeerCertificate | undefined = socket.getPeerCertificate();
  const notAfter = cert && cert.valid_to ? parseValidTo(cert.valid_to) : undefined;
  if (notAfter === undefined) return run.finish(false, `${what}, but the server sent no readable certificate`);
  const verdict = judgeExpiry(notAfter, nowMs, options.warningMs);
  const data: ProbeData = { certExpiresAt: { [label]: Math.floor(notAfter / 1000) }, warning: verdict.warning };
  // The certificate and its CA are synced files: a standby would serve (and trust) the same ones.
  const failed = options.sharedCertFailures === false ? data : { ...data, shared: true };
  if (verdict.expired) return run.finish(false, `${what}, certificate ${verdict.text}`, failed);
  if (options.verify && !socket.authorized) {
    const why = String(socket.authorizationError);
    const problem = why === "ERR_TLS_CERT_ALTNAME_INVALID" ? `not issued for ${checkedName} (${why})` : `not trusted (${why})`;
    return run.finish(false, `${what}, certificate ${problem}, ${verdict.text}`, failed);
  }
  run.finish(true, `${what}, certificate ${verdict.text}`, data);
}

/**
 * Explicit FTPS (RFC 4217): read the 220 greeting, send AUTH TLS, expect 234,
 * then do the TLS handshake on the same connection and judge the server's
 * certificate. No login: this checks what every FTPS client needs first.
 */
export class FtpsProbe implements Probe {
  readonly type = "ftps" as const;
  readonly name: string;

  constructor(
    private readonly target: FtpsTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    const { host, port, timeoutMs } = this.target;
    return runCheck(this.clock, timeoutMs, signal, async (run) => {
      run.stage = "reading ca_file";
      const ca = await currentCa(this.target.tls);
      if (run.settled) return;
      let received = "";
      let step: "greeting" | "auth" = "greeting";
      const socket = connect({ host, port });
      let upgraded = false;
      // Once TLS wraps it, the TCP socket is the TLS socket's to close: destroying it first, under a
      // live TLS socket, has crashed Node.js 20 (SIGSEGV at exit).
      run.defer(() => upgraded || socket.destroy());
      run.stage = `connecting to ${host}:${port}`;
      socket.setNoDelay(true);
      socket.on("error", (e) => run.finish(false, e.message));
      socket.on("close", () => run.finish(false, received ? `connection closed after "${received.split(/\r?\n/)[0]}"` : `connection closed while ${run.stage}`));
      socket.on("connect", () => (run.stage = "waiting for the FTP greeting"));

      const onData = (chunk: Buffer) => {
        received += chunk.toString("latin1");
        if (received.length > 8192) return run.finish(false, "no complete FTP reply in the first 8192 bytes");
        const reply = parseFtpReply(received);
        if (reply === undefined) return;
        if (reply === "invalid") return run.finish(false, `not an FTP reply: ${received.split(/\r?\n/)[0]}`);
        received = "";
        if (step === "greeting") {
          if (reply.code !== "220") return run.finish(false, reply.line);
          step = "auth";
          run.stage = "waiting for the answer to AUTH TLS";
          socket.write("AUTH TLS\r\n");
          return;
        }
        if (reply.code !== "234") return run.finish(false, `AUTH TLS refused: ${reply.line}`);
        // From here on the bytes on this connection are TLS records: the TLS socket reads them, not us.
        socket.off("data", onData);
        upgraded = true;
        this.handshake(run, socket, ca);
      };
      socket.on("data", onData);
    });
  }

  private handshake(run: CheckRun, socket: ReturnType<typeof connect>, ca: Buffer | undefined): void {
    const { host, port, tls } = this.target;
    run.stage = "in the TLS handshake";
    const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
    // Never rejected here: an untrusted or expired certificate is judged (and its expiry reported) after the handshake.
    const secure = tlsConnect({ socket, host, ...(servername ? { servername } : {}), ...(ca ? { ca } : {}), rejectUnauthorized: false });
    run.defer(() => secure.destroy());
    secure.on("error", (e) => run.finish(false, `TLS handshake failed: ${e.message}`));
    secure.on("secureConnect", () => {
      judgePeerCertificate(run, secure, `AUTH TLS ok (${secure.getProtocol() ?? "TLS"})`, `${host}:${port}`, tls, this.clock.wallMs(), servername ?? host);
    });
  }
}
