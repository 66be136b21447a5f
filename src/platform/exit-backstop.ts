// After a graceful stop the process should end by itself: nothing left on the
// event loop. If something still holds it (a timer re-armed after close was
// seen in the field), this names it and exits anyway, so systemd never waits
// out TimeoutStopSec. Lives in platform/: it arms a real timer and reads
// process internals.
import { createHook } from "node:async_hooks";

export interface LingeringReport {
  /** process.getActiveResourcesInfo(): e.g. ["Timeout", "TCPWRAP"]. */
  readonly resources: readonly string[];
  /** Timers armed after the stop that are still pending: the callback's name and where it was armed. */
  readonly timers: readonly { readonly callback: string; readonly armedAt: string }[];
  /** Sockets, servers and child processes that hold it, with their addresses (e.g. "Socket 127.0.0.1:40312 -> 127.0.0.1:22"). */
  readonly handles: readonly string[];
}

export interface ExitBackstop {
  /** Disarm (the process is exiting by other means). */
  cancel(): void;
}

/**
 * Arm after a graceful stop. Timers created from now on are recorded with the
 * stack that armed them (a re-armed loop shows up there, not in the timers
 * armed before). If the process is still alive after `graceMs`, `onLinger`
 * gets what holds it, then the process exits with `exitCode`. The backstop's
 * own timer is unref'd: it never holds the process itself.
 */
export function armExitBackstop(graceMs: number, onLinger: (r: LingeringReport) => void, exitCode = 0): ExitBackstop {
  const armed = new Map<number, { callback: string; armedAt: string }>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (type !== "Timeout") return;
      const fn = (resource as { _onTimeout?: { name?: string } })._onTimeout;
      // Never thrown: an Error is only the cheapest way to capture where the timer was armed.
      const stack = (new Error().stack ?? "")
        .split("\n")
        .slice(2, 9)
        .map((l) => l.trim())
        .join(" < ");
      armed.set(asyncId, { callback: fn?.name || "(anonymous)", armedAt: stack });
    },
    destroy(asyncId) {
      armed.delete(asyncId);
    },
  });
  const t = setTimeout(() => {
    hook.disable();
    // Resources of the backstop itself are not reported: its timer is unref'd and does not count.
    const resources = process.getActiveResourcesInfo();
    try {
      onLinger({ resources, timers: [...armed.values()].slice(-10), handles: describeHandles() });
    } finally {
      process.exit(exitCode);
    }
  }, graceMs);
  t.unref();
  // After the backstop's own timer: it is not one of the suspects.
  hook.enable();
  return {
    cancel: () => {
      hook.disable();
      clearTimeout(t);
    },
  };
}

/** The ref'd handles Node reports (undocumented process._getActiveHandles, absent: none), described for a log line. */
function describeHandles(): string[] {
  const get = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  if (typeof get !== "function") return [];
  const out: string[] = [];
  for (const h of get.call(process)) {
    if (h === process.stdout || h === process.stderr || h === process.stdin) continue;
    const o = h as { constructor?: { name?: string }; localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number; hasRef?: () => boolean; pid?: number; fd?: number };
    if (typeof o.hasRef === "function" && !o.hasRef()) continue;
    const name = o.constructor?.name ?? "handle";
    if (o.remoteAddress !== undefined) out.push(`${name} ${o.localAddress}:${o.localPort} -> ${o.remoteAddress}:${o.remotePort}`);
    else if (o.pid !== undefined) out.push(`${name} pid ${o.pid}`);
    else if (o.fd !== undefined && o.fd <= 2)
      continue; // stdio
    else out.push(name);
  }
  return out.slice(0, 20);
}
