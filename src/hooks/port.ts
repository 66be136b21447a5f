// The hooks port (docs/configuration.md): user commands run on role changes and syncs,
// as the HA loop and the sync engine rely on them. The adapter is Hooks
// (runner.ts), which spawns the configured argv with a timeout.

export const HOOK_EVENTS = ["on_role_change", "pre_promote", "post_promote", "on_demote", "post_sync", "post_publish"] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];
export type HookRole = "primary" | "standby";

/** What a hook is told, through UNDERSTUDY_* environment variables. */
export interface HookContext {
  readonly role: HookRole;
  readonly previousRole?: HookRole;
  readonly term: number | null;
  readonly node: string;
  readonly cluster: string;
  readonly reason: string;
  /** post_sync: the sync generation just applied; post_publish: the one just published. */
  readonly generation?: number;
  /** post_publish: the sync roots this node changed itself (the ones published with changes). */
  readonly roots?: readonly string[];
}

export interface HookOutcome {
  /** A command is configured for the event and was started (or tried to be). */
  readonly ran: boolean;
  /** False for a non-zero exit, a timeout or a failure to start. For pre_promote, false is a veto. */
  readonly ok: boolean;
  /** Exit code; null when not run, killed, timed out or never started. */
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly ms: number;
  /** The last lines of the hook's stderr (at most STDERR_TAIL characters). */
  readonly stderrTail: string;
  /** US_E_HOOK_VETO / US_E_HOOK_FAILED message when !ok, else null: usable as a decision reason. */
  readonly problem: string | null;
}

/**
 * Hooks as the HA core uses them.
 *
 * Guarantees an implementation must give:
 * - `run` never rejects and always settles within the hook timeout plus the
 *   kill grace: a hook that hangs is killed (with its process group) and
 *   reported as `timedOut`, never left running.
 * - `run` for an event with no command resolves at once with `ran: false,
 *   ok: true` (so an unconfigured pre_promote never vetoes).
 * - `fire` returns at once; fired hooks run one at a time in the order fired,
 *   so on_demote never overtakes an earlier post_promote. pre_promote is
 *   never fired: its veto needs `run`.
 * - Nothing a hook prints is logged unbounded (the stderr tail is capped).
 */
export interface HookPort {
  configured(event: HookEvent): boolean;
  run(event: HookEvent, context: HookContext): Promise<HookOutcome>;
  fire(event: HookEvent, context: HookContext): void;
}
