// Controls the transfer daemon (sshd, proftpd, sftpgo...). One port, three
// backends: process (supervised child), command (user's start/stop/status),
// systemd (systemctl). The HA loop is the supervisor: backends never restart
// on their own; they report exits and the loop decides (restart or hand over).

export interface DaemonExit {
  readonly code: number | null;
  readonly signal: string | null;
}

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
