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
  /** A resume that failed: retried at each refresh until it works. */
  private resumeOwed = false;

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
    try {
      await this.parts.gate.stopAccepting();
    } catch (e) {
      gateProblem = describeError(e);
      // The gate's contract leaves nothing applied on failure; resume anyway, in case it half-worked.
      this.resumeOwed = true;
    }
    this.active = { requestedAt, startedAtMs, initial: null, sessions: null, countError: null, gateProblem };
    await this.count();
    if (this.active) this.active = { ...this.active, initial: this.active.sessions };
    this.log.info({ requested_at: requestedAt, sessions: this.active?.sessions ?? null, gate: this.parts.gate.method, problem: gateProblem }, "drain started: new sessions refused");
  }

  /** Count again (each cycle, before deciding) and retry an owed resume. */
  async refresh(): Promise<void> {
    if (this.resumeOwed && !this.active) await this.resume();
    if (this.active) await this.count();
  }

  /** Accept sessions again; "aborted" remembers the request so the planner cancels it rather than drain it again. */
  async end(outcome: "moved" | "aborted", why: string): Promise<void> {
    const was = this.active;
    if (!was && !this.resumeOwed) return;
    this.active = null;
    if (was && outcome === "aborted") this.aborted = { requestedAt: was.requestedAt, why };
    this.resumeOwed = true;
    await this.resume();
    if (was) this.log.info({ requested_at: was.requestedAt, outcome, why, sessions: was.sessions }, `drain ended (${outcome}): new sessions accepted again`);
  }

  /** At agent start: remove a refusal a previous run left behind. */
  async clearLeftover(): Promise<void> {
    await this.parts?.gate.clearLeftover().catch((e: unknown) => this.log.error({ err: describeError(e) }, "drain: cannot remove a refusal of new sessions left by a previous run"));
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
