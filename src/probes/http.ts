import { request as httpRequest, type ClientRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { TLSSocket } from "node:tls";
import { describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import { judgeExpiry, parseValidTo } from "./certs.js";
import type { Probe, ProbeData, ProbeResult } from "./port.js";
import { oneLine } from "./tcp.js";

export interface HttpTarget {
  readonly name: string;
  readonly url: string;
  readonly expectStatus: number;
  readonly timeoutMs: number;
  /** https: URLs only. Without it, Node.js's defaults: verified against its CA list, expiry not reported. */
  readonly tls?: {
    readonly verify: boolean;
    readonly ca?: Buffer;
    /** The name sent in SNI and checked against the certificate, instead of the URL's host (probing 127.0.0.1). */
    readonly servername?: string;
    /** `ca_file`, re-read when it changes; takes the place of `ca`. */
    readonly caFile?: { get(): Promise<Buffer> };
    /** Certificate failures count as shared with every node (synced TLS files). Default true. */
    readonly sharedCertFailures?: boolean;
    /** Report the certificate's expiry; warn when it is this close; an expired certificate fails. */
    readonly warningMs: number;
  };
}

/** GET a URL (SFTPGo's /healthz, a WebDAV root...); up when the status is the expected one. */
export class HttpProbe implements Probe {
  readonly type = "http" as const;
  readonly name: string;

  constructor(
    private readonly target: HttpTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  async check(signal: AbortSignal): Promise<ProbeResult> {
    const tls = this.target.tls;
    const ca = tls?.caFile ? await tls.caFile.get() : tls?.ca;
    return this.checkWith(signal, ca);
  }

  private checkWith(signal: AbortSignal, ca: Buffer | undefined): Promise<ProbeResult> {
    const { url, expectStatus, timeoutMs } = this.target;
    const started = this.clock.monotonicMs();
    const result = (ok: boolean, detail: string, data?: ProbeData): ProbeResult => ({
      ok,
      detail: oneLine(detail),
      latencyMs: this.clock.monotonicMs() - started,
      ...(data ? { data } : {}),
    });
    if (signal.aborted) return Promise.resolve(result(false, "aborted"));

    return new Promise((resolve) => {
      let settled = false;
      let req: ClientRequest | undefined;
      const finish = (ok: boolean, detail: string, data?: ProbeData) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal.removeEventListener("abort", onAbort);
        req?.destroy();
        resolve(result(ok, detail, data));
      };
      const onAbort = () => finish(false, "aborted");
      const timer = this.clock.setTimer(timeoutMs, () => finish(false, `timeout after ${timeoutMs}ms`));
      signal.addEventListener("abort", onAbort, { once: true });

      try {
        const https = url.startsWith("https:");
        const tls = https ? this.target.tls : undefined;
        const tlsOptions = tls ? { rejectUnauthorized: tls.verify, ...(ca ? { ca } : {}), ...(tls.servername ? { servername: tls.servername } : {}) } : {};
        const send = https ? httpsRequest : httpRequest;
        // No keep-alive agent: every check is a fresh connection, and none stays open between checks.
        req = send(url, { method: "GET", agent: false, headers: { "user-agent": "understudy-probe" }, ...tlsOptions });
      } catch (e) {
        // Malformed URLs and unsupported options throw synchronously.
        finish(false, describeError(e));
        return;
      }
      req.on("response", (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const cert = this.certificate(res.socket);
        if (!cert) return finish(status === expectStatus, `HTTP ${status}`);
        const shared = cert.expired && this.target.tls?.sharedCertFailures !== false;
        finish(status === expectStatus && !cert.expired, `HTTP ${status}, certificate ${cert.text}`, shared ? { ...cert.data, shared } : cert.data);
      });
      req.on("error", (e) => {
        // Refused certificates (expired, untrusted, wrong name) come from synced TLS files: shared.
        const shared = isCertificateError(e) && url.startsWith("https:") && this.target.tls?.sharedCertFailures !== false;
        finish(false, e.message, shared ? { shared } : undefined);
      });
      req.end();
    });
  }

  /** With `tls` set, the expiry of an https server's certificate, from the response's socket. */
  private certificate(socket: unknown): { expired: boolean; text: string; data: ProbeData } | undefined {
    const tls = this.target.tls;
    if (!tls || !(socket instanceof TLSSocket)) return undefined;
    const validTo = socket.getPeerCertificate()?.valid_to;
    const notAfter = validTo ? parseValidTo(validTo) : undefined;
    if (notAfter === undefined) return undefined;
    const verdict = judgeExpiry(notAfter, this.clock.wallMs(), tls.warningMs);
    const url = new URL(this.target.url);
    const label = `${url.hostname}:${url.port || "443"}`;
    return { expired: verdict.expired, text: verdict.text, data: { certExpiresAt: { [label]: Math.floor(notAfter / 1000) }, warning: verdict.warning } };
  }
}

/** Node.js/OpenSSL codes of a server certificate the client refused (not a network or protocol error). */
const CERT_ERRORS = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

export function isCertificateError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && CERT_ERRORS.has(code);
}
