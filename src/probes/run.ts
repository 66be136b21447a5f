import { describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { ProbeData, ProbeResult } from "./port.js";
import { oneLine } from "./tcp.js";

/** One check in progress, as the probe's body sees it. */
export interface CheckRun {
  /** Settle the check; only the first call counts. */
  finish(ok: boolean, detail: string, data?: ProbeData): void;
  /** Run `cleanup` when the check settles (at once if it already has): destroy sockets here. */
  defer(cleanup: () => void): void;
  readonly settled: boolean;
  /** What the check is doing now ("authenticating as probe"); a timeout's detail names it. */
  stage: string;
}

/**
 * The frame shared by the sftp, ftps, disk and tls_file probes: resolves exactly
 * once (never rejects) on finish, abort, timeout or a throw in `body`, and runs
 * the deferred cleanups then.
 *
 * The probe's own deadline is a little before `timeoutMs`, so that its detail,
 * which names the stage it was stuck in, wins the race against ProbeHealth's
 * bare "timeout after" at exactly `timeoutMs`.
 */
export function runCheck(clock: Clock, timeoutMs: number, signal: AbortSignal, body: (run: CheckRun) => void | Promise<void>): Promise<ProbeResult> {
  const started = clock.monotonicMs();
  const elapsed = () => clock.monotonicMs() - started;
  if (signal.aborted) return Promise.resolve({ ok: false, detail: "aborted", latencyMs: 0 });

  return new Promise((resolve) => {
    const cleanups: (() => void)[] = [];
    let settled = false;
    const quietly = (cleanup: () => void) => {
      try {
        cleanup();
      } catch {
        // Closing an already broken socket may throw; the check is over either way.
      }
    };
    const run: CheckRun = {
      stage: "",
      get settled() {
        return settled;
      },
      finish(ok, detail, data) {
        if (settled) return;
        settled = true;
        timer.cancel();
        signal.removeEventListener("abort", onAbort);
        // Last registered, first run: a TLS socket goes before the TCP socket under it.
        for (const cleanup of cleanups.splice(0).reverse()) quietly(cleanup);
        resolve({ ok, detail: oneLine(detail), latencyMs: elapsed(), ...(data !== undefined ? { data } : {}) });
      },
      defer(cleanup) {
        if (settled) quietly(cleanup);
        else cleanups.push(cleanup);
      },
    };
    const onAbort = () => run.finish(false, "aborted");
    const deadline = Math.max(1, timeoutMs - Math.min(50, timeoutMs / 10));
    const timer = clock.setTimer(deadline, () => {
      const ms = Math.round(elapsed());
      run.finish(false, run.stage ? `timeout after ${ms}ms while ${run.stage}` : `timeout after ${ms}ms`);
    });
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      Promise.resolve(body(run)).catch((e: unknown) => run.finish(false, describeError(e)));
    } catch (e) {
      run.finish(false, describeError(e));
    }
  });
}
