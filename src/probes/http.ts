import { request as httpRequest, type ClientRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { Probe, ProbeResult } from "./port.js";
import { oneLine } from "./tcp.js";

export interface HttpTarget {
  readonly name: string;
  readonly url: string;
  readonly expectStatus: number;
  readonly timeoutMs: number;
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

  check(signal: AbortSignal): Promise<ProbeResult> {
    const { url, expectStatus, timeoutMs } = this.target;
    const started = this.clock.monotonicMs();
    const result = (ok: boolean, detail: string): ProbeResult => ({ ok, detail: oneLine(detail), latencyMs: this.clock.monotonicMs() - started });
    if (signal.aborted) return Promise.resolve(result(false, "aborted"));

    return new Promise((resolve) => {
      let settled = false;
      let req: ClientRequest | undefined;
      const finish = (ok: boolean, detail: string) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal.removeEventListener("abort", onAbort);
        req?.destroy();
        resolve(result(ok, detail));
      };
      const onAbort = () => finish(false, "aborted");
      const timer = this.clock.setTimer(timeoutMs, () => finish(false, `timeout after ${timeoutMs}ms`));
      signal.addEventListener("abort", onAbort, { once: true });

      try {
        const send = url.startsWith("https:") ? httpsRequest : httpRequest;
        // No keep-alive agent: every check is a fresh connection, and none stays open between checks.
        req = send(url, { method: "GET", agent: false, headers: { "user-agent": "understudy-probe" } });
      } catch (e) {
        // Malformed URLs and unsupported options throw synchronously.
        finish(false, describeError(e));
        return;
      }
      req.on("response", (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        finish(status === expectStatus, `HTTP ${status}`);
      });
      req.on("error", (e) => finish(false, e.message));
      req.end();
    });
  }
}
