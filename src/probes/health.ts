import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { Probe, ProbeData, ProbeResult, ProbeState } from "./port.js";

export interface WatchedProbe {
  readonly probe: Probe;
  /** Time between the starts of two checks (longer if a check overruns it; checks never overlap). */
  readonly intervalMs: number;
  /** A check still running after this long counts as failed and is aborted, even if the probe forgets its own timeout. */
  readonly timeoutMs: number;
  /** Consecutive successes needed to go up. */
  readonly rise: number;
  /** Consecutive failures needed to go down. */
  readonly fall: number;
  readonly critical: boolean;
}

export interface ProbeHealthDeps {
  readonly clock: Clock;
  readonly logger?: Logger;
  /** How often probes with changed() (tls_file) stat their files; a change runs a check at once. Default 2 s. */
  readonly changePollMs?: number;
}

/** Default of ProbeHealthDeps.changePollMs: a renewal is seen within seconds, for one stat per file. */
export const CHANGE_POLL_MS = 2000;

interface Slot {
  readonly spec: WatchedProbe;
  up: boolean;
  lastOk: boolean | undefined;
  /** How many results in a row agree with the latest one. */
  consecutive: number;
  lastDetail: string;
  /** The data of the latest result that had any. */
  data: ProbeData | undefined;
  timer: TimerHandle | undefined;
  inFlight: AbortController | undefined;
  /** Checks of one probe run one after another on this chain. */
  chain: Promise<void>;
  /** The latest result failed for a reason every node shares (ProbeData.shared). */
  shared: boolean;
  /** Polls probe.changed() (tls_file targets). */
  poll: TimerHandle | undefined;
}

/**
 * Runs each probe on its own interval and debounces results with rise/fall
 * counts. Every probe starts down. onChange listeners run only when a probe's
 * debounced up/down flips, never after stop().
 */
export class ProbeHealth {
  private readonly slots: Slot[];
  private readonly listeners: ((state: ProbeState) => void)[] = [];
  private running = false;
  /** Bumped by stop(), so results of checks started before it are dropped. */
  private generation = 0;

  constructor(
    probes: readonly WatchedProbe[],
    private readonly deps: ProbeHealthDeps,
  ) {
    const names = new Set<string>();
    for (const p of probes) {
      const name = p.probe.name;
      const fail = (problem: string) => {
        throw new UnderstudyError("US_E_PROBE_CONFIG", { name, problem });
      };
      if (names.has(name)) fail("name is used by another probe");
      names.add(name);
      if (!(p.intervalMs > 0)) fail("interval must be greater than 0");
      if (!(p.timeoutMs > 0)) fail("timeout must be greater than 0");
      if (!Number.isInteger(p.rise) || p.rise < 1) fail("rise must be a whole number of at least 1");
      if (!Number.isInteger(p.fall) || p.fall < 1) fail("fall must be a whole number of at least 1");
    }
    this.slots = probes.map((spec) => ({
      spec,
      up: false,
      lastOk: undefined,
      consecutive: 0,
      lastDetail: "not checked yet",
      data: undefined,
      timer: undefined,
      inFlight: undefined,
      chain: Promise.resolve(),
      shared: false,
      poll: undefined,
    }));
  }

  states(): ProbeState[] {
    return this.slots.map(toState);
  }

  /** True when every critical probe is up (so also when there are none). */
  criticalUp(): boolean {
    return this.slots.every((s) => !s.spec.critical || s.up);
  }

  /**
   * When every critical probe that is down failed its latest check for a
   * reason the standbys share (an expired or untrusted synced certificate):
   * one sentence naming them, for decide(). Null when any failure is local
   * (or none is down).
   */
  sharedFailure(): string | null {
    const down = this.slots.filter((s) => s.spec.critical && !s.up);
    if (down.length === 0 || !down.every((s) => s.shared)) return null;
    return down.map((s) => `${s.spec.probe.name}: ${s.lastDetail}`).join("; ");
  }

  onChange(listener: (state: ProbeState) => void): void {
    this.listeners.push(listener);
  }

  /** Check every probe now, then keep checking each on its interval. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const slot of this.slots) {
      void this.enqueue(slot);
      if (slot.spec.probe.changed) this.pollChanges(slot);
    }
  }

  /** Stat the probe's files every changePollMs; a change checks now instead of at the (hourly) interval. */
  private pollChanges(slot: Slot): void {
    const every = this.deps.changePollMs ?? CHANGE_POLL_MS;
    const generation = this.generation;
    const live = () => this.running && generation === this.generation;
    slot.poll = this.deps.clock.setTimer(every, () => {
      slot.poll = undefined;
      if (!live()) return;
      void slot.spec.probe.changed!()
        .then((changed) => {
          if (changed && live()) {
            this.deps.logger?.info({ probe: slot.spec.probe.name }, "probe files changed: checking now");
            void this.enqueue(slot);
          }
        })
        .catch(() => undefined)
        .finally(() => {
          if (live()) this.pollChanges(slot);
        });
    });
  }

  /** Cancel timers and abort checks in flight; resolves once none is left running. */
  async stop(): Promise<void> {
    this.running = false;
    this.generation++;
    for (const slot of this.slots) {
      slot.timer?.cancel();
      slot.timer = undefined;
      slot.poll?.cancel();
      slot.poll = undefined;
      slot.inFlight?.abort(new UnderstudyError("US_E_PROBE_ABORTED", { name: slot.spec.probe.name, why: "probe health checking stopped" }));
    }
    await Promise.all(this.slots.map((s) => s.chain));
  }

  /**
   * Run every probe once, now (after one already in flight), and resolve with
   * the states that result. Used right after the daemon starts.
   */
  async checkNow(): Promise<ProbeState[]> {
    await Promise.all(this.slots.map((s) => this.enqueue(s)));
    return this.states();
  }

  private enqueue(slot: Slot): Promise<void> {
    slot.timer?.cancel();
    slot.timer = undefined;
    // The catch keeps the chain alive: one broken check must not end a probe's checks for good.
    slot.chain = slot.chain.then(() => this.checkOnce(slot)).catch((e: unknown) => this.deps.logger?.error({ probe: slot.spec.probe.name, err: describeError(e) }, "probe check failed"));
    return slot.chain;
  }

  private async checkOnce(slot: Slot): Promise<void> {
    // A check that finished while this one queued may have armed the next timer; this check replaces it.
    slot.timer?.cancel();
    slot.timer = undefined;
    const generation = this.generation;
    const startedAt = this.deps.clock.monotonicMs();
    const result = await this.bounded(slot);
    if (generation !== this.generation) return;
    this.record(slot, result);
    if (!this.running) return;
    const delay = Math.max(0, startedAt + slot.spec.intervalMs - this.deps.clock.monotonicMs());
    slot.timer = this.deps.clock.setTimer(delay, () => {
      slot.timer = undefined;
      void this.enqueue(slot);
    });
  }

  /** The probe's result, or a failure if it overruns its timeout; resolves at once when stop() aborts it. */
  private bounded(slot: Slot): Promise<ProbeResult> {
    const { probe, timeoutMs } = slot.spec;
    const controller = new AbortController();
    slot.inFlight = controller;
    return new Promise<ProbeResult>((resolve) => {
      const done = (r: ProbeResult) => {
        timer.cancel();
        if (slot.inFlight === controller) slot.inFlight = undefined;
        resolve(r);
      };
      const timer = this.deps.clock.setTimer(timeoutMs, () => {
        done({ ok: false, detail: `timeout after ${timeoutMs}ms`, latencyMs: timeoutMs });
        controller.abort(new UnderstudyError("US_E_PROBE_ABORTED", { name: probe.name, why: `no result within ${timeoutMs}ms` }));
      });
      controller.signal.addEventListener("abort", () => done({ ok: false, detail: "aborted", latencyMs: 0 }), { once: true });
      Promise.resolve()
        .then(() => probe.check(controller.signal))
        .then(done, (e: unknown) => done({ ok: false, detail: `probe failed: ${describeError(e)}`, latencyMs: 0 }));
    });
  }

  private record(slot: Slot, result: ProbeResult): void {
    slot.consecutive = slot.lastOk === result.ok ? slot.consecutive + 1 : 1;
    slot.lastOk = result.ok;
    slot.lastDetail = result.detail;
    slot.shared = !result.ok && result.data?.shared === true;
    if (result.data !== undefined) slot.data = result.data;
    const wasUp = slot.up;
    if (result.ok && !slot.up && slot.consecutive >= slot.spec.rise) slot.up = true;
    if (!result.ok && slot.up && slot.consecutive >= slot.spec.fall) slot.up = false;
    if (slot.up === wasUp) return;
    const state = toState(slot);
    this.deps.logger?.info({ probe: state.name, up: state.up, detail: state.lastDetail }, slot.up ? "probe up" : "probe down");
    for (const listener of this.listeners) {
      try {
        listener(state);
      } catch (e) {
        this.deps.logger?.error({ err: describeError(e) }, "onChange listener threw");
      }
    }
  }
}

function toState(slot: Slot): ProbeState {
  return {
    name: slot.spec.probe.name,
    critical: slot.spec.critical,
    up: slot.up,
    lastDetail: slot.lastDetail,
    consecutive: slot.consecutive,
    ...(slot.data !== undefined ? { data: slot.data } : {}),
  };
}
