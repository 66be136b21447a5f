import type { HookContext, HookEvent, HookOutcome, HookPort } from "../../src/hooks/port.js";

/** One configured hook's behaviour in a test: what running it returns (it may record the call). */
export type HookScript = (context: HookContext) => HookOutcome | Promise<HookOutcome>;

/**
 * A strict HookPort (src/hooks/port.ts): only the events the test scripts are
 * configured; running or firing any other event fails the test (the real
 * adapter would run nothing, so a call there is a bug in the caller).
 */
export class StrictHooks implements HookPort {
  readonly runs: { event: HookEvent; context: HookContext }[] = [];
  readonly fired: { event: HookEvent; context: HookContext }[] = [];

  constructor(private readonly script: Partial<Record<HookEvent, HookScript>>) {}

  configured(event: HookEvent): boolean {
    return this.script[event] !== undefined;
  }

  async run(event: HookEvent, context: HookContext): Promise<HookOutcome> {
    const s = this.script[event];
    if (!s) throw new Error(`unexpected hook run: ${event} is not configured in this test`);
    this.runs.push({ event, context });
    return s(context);
  }

  fire(event: HookEvent, context: HookContext): void {
    if (!this.script[event]) throw new Error(`unexpected hook fire: ${event} is not configured in this test`);
    this.fired.push({ event, context });
  }
}

/** A hook outcome: ran and succeeded unless `over` says otherwise. */
export function hookOutcome(over: Partial<HookOutcome> = {}): HookOutcome {
  return { ran: true, ok: true, code: 0, timedOut: false, ms: 5, stderrTail: "", problem: null, ...over };
}
