import type { Clock, TimerHandle } from "../../src/platform/clock.js";
import type { Coordinator } from "../../src/coordinator/port.js";
import { UnderstudyError } from "../../src/errors/catalogue.js";

/**
 * Simulates an agent process dying (kill -9) or freezing (SIGSTOP): after
 * crash(), its timers never fire and its etcd calls never complete, so it
 * neither renews its lease nor acts. Kernel state (VIP, daemon) stays as it was.
 */
export class ProcessLife {
  dead = false;
  /** Cut off from etcd only: every call fails as unreachable, the process itself keeps running. */
  partitioned = false;
  /** Calls of these names fail once each as unreachable (a request lost while the channel reconnects). */
  readonly failOnce = new Set<string>();
  crash(): void {
    this.dead = true;
  }
  clock(inner: Clock): Clock {
    return {
      monotonicMs: () => inner.monotonicMs(),
      wallMs: () => inner.wallMs(),
      systemMonotonicMs: () => inner.systemMonotonicMs(),
      setTimer: (ms, fn): TimerHandle => inner.setTimer(ms, () => void (this.dead || fn())),
      sleep: (ms, signal) => (this.dead ? new Promise<void>(() => undefined) : inner.sleep(ms, signal)),
    };
  }
  coordinator(inner: Coordinator): Coordinator {
    const hang = () => new Promise<never>(() => undefined);
    return new Proxy(inner, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          if (this.dead) return hang();
          if (typeof prop === "string" && this.failOnce.delete(prop)) {
            return Promise.reject(new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: `${prop}: lost once` }));
          }
          if (this.partitioned && prop !== "close") {
            return Promise.reject(new UnderstudyError("US_E_ETCD_UNREACHABLE", { endpoints: "fake", cause: `${String(prop)}: partitioned` }));
          }
          if (prop === "watchLeader") {
            const onEvent = args[0] as (e: unknown) => void;
            return (v as (...a: unknown[]) => unknown).call(target, (e: unknown) => void (this.dead || onEvent(e)));
          }
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
}
