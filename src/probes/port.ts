// A probe checks one listener of the transfer daemon at protocol level.

/** What a check measured, besides up/down: read by the metrics at scrape time. */
export interface ProbeData {
  /** Certificate expiry (notAfter), epoch seconds, per certificate: a file path, or a listener "host:port". */
  readonly certExpiresAt?: Readonly<Record<string, number>>;
  /** Bytes free for unprivileged users on the probed volume. */
  readonly freeBytes?: number;
  /** Size of the probed volume in bytes. */
  readonly totalBytes?: number;
  /** Up, but close to failing: a certificate expires within the probe's `cert_warning`. */
  readonly warning?: boolean;
  /**
   * A failure every node would share, so handing over cannot cure it: a
   * certificate expired or not trusted, a tls_file target expired or unreadable
   * (the TLS files are synced to the standbys). decide() does not hand over for it.
   */
  readonly shared?: boolean;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** One line: what was seen ("SSH-2.0-OpenSSH_9.2p1", "connect ECONNREFUSED", "HTTP 503"). */
  readonly detail: string;
  readonly latencyMs: number;
  /** Optional measurements (certificate expiry, free space); absent for probes that measure nothing. */
  readonly data?: ProbeData;
}

export type ProbeType = "tcp" | "ssh" | "ftp" | "http" | "sftp" | "ftps" | "disk" | "tls_file";

/**
 * One protocol-level check of one listener (adapters: tcp, ssh, sftp, ftp,
 * ftps, http, disk, tls_file in this folder; ProbeHealth schedules them).
 *
 * Guarantees an implementation must give:
 * - `check` never rejects: every failure (refused, timeout, bad banner,
 *   untrusted certificate, unreadable file) is a result with ok false and a
 *   one-line detail that names what was seen.
 * - It stops and resolves promptly when `signal` aborts (ProbeHealth aborts
 *   at the probe's timeout and on stop), and leaves no socket or child open.
 * - Secrets it uses (passwords, keys) never appear in `detail`.
 * - `data.shared` is set only for a failure every node would share (a synced
 *   certificate expired or untrusted), never for a local one: decide() does
 *   not hand over for it.
 */
export interface Probe {
  readonly name: string;
  readonly type: ProbeType;
  /** Must resolve (never reject) within the probe's timeout; aborts when signal fires. */
  check(signal: AbortSignal): Promise<ProbeResult>;
  /** Optional: whether the files this probe reads changed since last asked (a cheap stat); ProbeHealth then checks at once instead of waiting for the interval. */
  changed?(): Promise<boolean>;
}

export interface ProbeState {
  readonly name: string;
  readonly critical: boolean;
  /** After rise/fall debouncing. Starts false until `rise` consecutive successes. */
  readonly up: boolean;
  readonly lastDetail: string;
  readonly consecutive: number;
  /** The data of the latest check that returned any (kept across checks without data, such as timeouts). */
  readonly data?: ProbeData;
}
