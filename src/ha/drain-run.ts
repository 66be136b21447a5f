import { describeError } from "../errors/catalogue.js";
import type { SessionCounter, SessionGate } from "../drain/port.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import type { ActiveDrain, DrainView } from "./drain-plan.js";

// The executor side of a drained switchover (drain-plan.ts decides): refuse
// new sessions, count the running ones each cycle, accept again. Guarantee:
// once begin() ran, new sessions are accepted again by end() on every exit
// path: the planner's end_drain (moved or aborted), the fence (loop.ts), the
// agent's stop; a resume that fails is retried at every refresh() until it
// works. At agent start clearLeftover() removes what a crashed run left.

export interface DrainParts {
  readonly gate: SessionGate;
  readonly counter: SessionCounter;
}

export class DrainRun {
  private active: ActiveDrain | null = null;
  private aborted: { requestedAt: string; why: string } | null = null;
  /** A resume that failed (or a leftover that could not be removed): retried at each refresh until it works. */
  private resumeOwed = false;
  /** The resume in flight (never more than one); cycles do not wait for it. */
  private resuming: Promise<void> | null = null;
  /** begin() is inside stopAccepting; an end() meanwhile sets `endedDuringBegin`. */
  private beginning = false;
  private endedDuringBegin: { outcome: "moved" | "aborted"; why: string } | null = null;

  /** `parts` null: this node cannot drain, for the reason in `unavailable`. */
  constructor(
    private readonly parts: DrainParts | null,
    private readonly unavailable: string | null,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  view(): DrainView {
    return { unavailable: this.parts ? null : (this.unavailable ?? "no drain configured"), method: this.parts?.gate.method ?? "nothing", active: this.active, aborted: this.aborted };
  }

  /** Refuse new sessions for this request and count the running ones (a drain for another request ends first). */
  async begin(requestedAt: string): Promise<void> {
    if (!this.parts) return;
    if (this.active) await this.end("aborted", "a newer switchover request replaced it");
    const startedAtMs = this.clock.monotonicMs();
    let gateProblem: string | null = null;
    this.beginning = true;
    this.endedDuringBegin = null;
    try {
      await this.parts.gate.stopAccepting();
    } catch (e) {
      gateProblem = describeError(e);
      // The gate's contract leaves nothing applied on failure; resume anyway, in case it half-worked.
      this.resumeOwed = true;
    } finally {
      this.beginning = false;
    }
    const ended = this.endedDuringBegin as { outcome: "moved" | "aborted"; why: string } | null;
    if (ended) {
      // Fenced or stopped while refusing: the refusal just applied must not outlive it.
      if (ended.outcome === "aborted") this.aborted = { requestedAt, why: ended.why };
      this.resumeOwed = true;
      void this.kickResume();
      this.log.info({ requested_at: requestedAt, why: ended.why }, "drain ended while it started: new sessions accepted again");
      return;
    }
    this.active = { requestedAt, startedAtMs, initial: null, sessions: null, countError: null, gateProblem };
    await this.count();
    if (this.active) this.active = { ...this.active, initial: this.active.sessions };
    this.log.info({ requested_at: requestedAt, sessions: this.active?.sessions ?? null, gate: this.parts.gate.method, problem: gateProblem }, "drain started: new sessions refused");
  }

  /** Count again (each cycle, before deciding); an owed resume is retried in the background, never holding the cycle. */
  async refresh(): Promise<void> {
    if (this.resumeOwed && !this.active) void this.kickResume();
    if (this.active) await this.count();
  }

  /**
   * Accept sessions again; "aborted" remembers the request so the planner cancels it rather than
   * drain it again. The resume runs in the background (a slow command must not hold the HA cycle);
   * `wait` (agent stop) awaits it, bounded by the gate's own timeout.
   */
  async end(outcome: "moved" | "aborted", why: string, opts: { wait?: boolean } = {}): Promise<void> {
    if (this.beginning) this.endedDuringBegin = { outcome, why };
    const was = this.active;
    if (!was && !this.resumeOwed) return;
    this.active = null;
    if (was && outcome === "aborted") this.aborted = { requestedAt: was.requestedAt, why };
    this.resumeOwed = true;
    const done = this.kickResume();
    if (opts.wait) await done;
    if (was) this.log.info({ requested_at: was.requestedAt, outcome, why, sessions: was.sessions }, `drain ended (${outcome}): new sessions accepted again`);
  }

  /** At agent start: remove a refusal a previous run left behind (retried every cycle until it works). */
  async clearLeftover(): Promise<void> {
    try {
      await this.parts?.gate.clearLeftover();
    } catch (e) {
      this.resumeOwed = true;
      this.log.error({ err: describeError(e) }, "drain: cannot remove a refusal of new sessions left by a previous run; retried every cycle");
    }
  }

  private kickResume(): Promise<void> {
    this.resuming ??= this.resume().finally(() => {
      this.resuming = null;
    });
    return this.resuming;
  }

  private async resume(): Promise<void> {
    try {
      await this.parts?.gate.resumeAccepting();
      this.resumeOwed = false;
    } catch (e) {
      this.log.error({ err: describeError(e) }, "drain: cannot accept new sessions again; retried every cycle");
    }
  }

  private async count(): Promise<void> {
    try {
      const n = await this.parts!.counter.established();
      if (this.active) this.active = { ...this.active, sessions: n, countError: null };
    } catch (e) {
      if (this.active) this.active = { ...this.active, sessions: null, countError: describeError(e) };
    }
  }
}
