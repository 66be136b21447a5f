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
      const stack = (new Error().stack ?? "").split("\n").slice(2, 9).map((l) => l.trim()).join(" < ");
      armed.set(asyncId, { callback: fn?.name || "(anonymous)", armedAt: stack });
    },
    destroy(asyncId) {
      armed.delete(asyncId);
    },
  });
  hook.enable();
  const t = setTimeout(() => {
    hook.disable();
    // Resources of the backstop itself are not reported: its timer is unref'd and does not count.
    const resources = process.getActiveResourcesInfo();
    try {
      onLinger({ resources, timers: [...armed.values()].slice(-10) });
    } finally {
      process.exit(exitCode);
    }
  }, graceMs);
  t.unref();
  return {
    cancel: () => {
      hook.disable();
      clearTimeout(t);
    },
  };
}
