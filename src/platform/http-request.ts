// One HTTP request with node:http/https, the body read up to a bound. Not
// fetch(): its first call loads undici, ~0.1-0.2 s of a CLI run that otherwise
// takes ~0.1 s over `node -e 0` (docs/benchmarks.md, CLI). Used by the CLI's
// API client and by the agent's failsafe grant requests.
import type { IncomingMessage } from "node:http";
import { UnderstudyError } from "../errors/catalogue.js";

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

/** https only: the CA to verify the server with, a client certificate, the name to verify. */
export interface TlsOptions {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
  /** false: do not verify the server's certificate (only where the answer is authenticated otherwise, by a MAC over a nonce). */
  readonly rejectUnauthorized?: boolean;
}

const MAX_BODY = 16 * 1024 * 1024;

/** `timeoutMs` may be fractional (AbortSignal.timeout takes whole ms: floored, at least 1). */
export async function request(method: string, url: URL, opts: { body?: string; headers?: Record<string, string>; timeoutMs: number; tls?: TlsOptions; maxBytes?: number }): Promise<HttpAnswer> {
  const { request: send } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  const limit = opts.maxBytes ?? MAX_BODY;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.body !== undefined) headers["content-length"] = String(Buffer.byteLength(opts.body));
    const t = opts.tls;
    const tls = t
      ? {
          ...(t.ca ? { ca: t.ca } : {}),
          ...(t.cert ? { cert: t.cert } : {}),
          ...(t.key ? { key: t.key } : {}),
          ...(t.servername ? { servername: t.servername } : {}),
          ...(t.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
        }
      : {};
    const signal = AbortSignal.timeout(Math.max(1, Math.floor(opts.timeoutMs)));
    const req = send(url, { method, headers, signal, ...tls }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > limit) req.destroy(new UnderstudyError("US_E_HTTP_TOO_LARGE", { url: url.origin, limit }));
        else chunks.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", (e: Error) => reject(e.name === "AbortError" || e.name === "TimeoutError" ? new UnderstudyError("US_E_HTTP_TIMEOUT", { url: url.origin, timeout_ms: opts.timeoutMs }) : e));
    req.end(opts.body);
  });
}
