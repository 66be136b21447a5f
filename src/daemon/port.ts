// Controls the transfer daemon (sshd, proftpd, sftpgo...). One port, three
// backends: process (supervised child), command (user's start/stop/status),
// systemd (systemctl). The HA loop is the supervisor: backends never restart
// on their own; they report exits and the loop decides (restart or hand over).

export interface DaemonExit {
  readonly code: number | null;
  readonly signal: string | null;
}

/**
 * The transfer daemon, as the HA loop drives it.
 *
 * Guarantees an implementation must give:
 * - `start` and `stop` are idempotent: starting a running daemon and stopping
 *   a stopped one succeed and change nothing.
 * - `stop` resolves only once the daemon is down (the process gone, status
 *   reporting not running, the unit inactive), within stop_timeout plus the
 *   time its commands take; otherwise it rejects with US_E_DAEMON_STOP. It
 *   never reports "down" for a daemon it could not see stop: in cold mode a
 *   second primary's daemon is what invariant 1 forbids.
 * - `start` rejects with US_E_DAEMON_START when the daemon could not be
 *   started; a rejection leaves no second daemon behind (a process backend
 *   that cannot record its pidfile kills the child it spawned).
 * - `isRunning` answers true or false, or rejects when it cannot tell (the
 *   status command timed out or could not run). `stop` never trusts it alone:
 *   the command and systemd backends always run their stop command.
 * - Backends never restart the daemon on their own. `onUnexpectedExit`
 *   listeners hear once per exit nobody asked for (process backend; the
 *   others find exits through `isRunning`), never for an exit `stop` caused.
 * - The caller never overlaps `start` and `stop` (HA cycles are serial); the
 *   process backend also queues them itself.
 * - `close` releases timers and handles and leaves the daemon as it is: an
 *   agent restart adopts a running daemon instead of starting a second one.
 */
export interface DaemonController {
  readonly backend: "process" | "command" | "systemd";
  /** Start if not running. Resolves once the start command succeeded / the child spawned. Idempotent. */
  start(): Promise<void>;
  /** Stop and wait until it is down (SIGTERM, then SIGKILL after stop_timeout). Idempotent. */
  stop(): Promise<void>;
  /** True while the daemon runs (child alive / status command exits 0 / unit active). */
  isRunning(): Promise<boolean>;
  /** Called when the daemon stops without being asked to. Process backend only; others are found by isRunning. */
  onUnexpectedExit(listener: (exit: DaemonExit) => void): void;
  /** Release resources; does not stop the daemon. */
  close(): Promise<void>;
}

/**
 * "Could this standby serve if promoted?" (Pacemaker's monitor): the user's
 * check command, the programs the config needs, a required watchdog.
 *
 * Guarantees an implementation must give:
 * - `problem` returns at once from what was last measured (it never runs a
 *   command itself): null when ready, else a sentence the member key carries.
 * - A node whose readiness has a problem does not campaign for a vacant
 *   leader key (decide.ts) and says why in its member key; readiness gates
 *   promotion only, it never demotes a serving primary.
 * - When the answer changes, the part tells its owner (its onChange) so the
 *   HA loop looks again without waiting for its periodic cycle.
 * - `start` and `stop` begin and end the periodic measurement; both are
 *   idempotent and never throw.
 */
export interface Readiness {
  /** Null when ready; otherwise why this node could not serve if promoted. */
  problem(): string | null;
  start(): void;
  stop(): void;
}

/** For tests and for daemons without a check. */
export const ALWAYS_READY: Readiness = { problem: () => null, start: () => undefined, stop: () => undefined };

/** Ready when every part is; the first problem found is the answer. */
export function allReady(...parts: readonly Readiness[]): Readiness {
  return {
    problem: () => parts.map((p) => p.problem()).find((p) => p !== null) ?? null,
    start: () => parts.forEach((p) => p.start()),
    stop: () => parts.forEach((p) => p.stop()),
  };
}
