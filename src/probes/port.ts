// A probe checks one listener of the transfer daemon at protocol level.

export interface ProbeResult {
  readonly ok: boolean;
  /** One line: what was seen ("SSH-2.0-OpenSSH_9.2p1", "connect ECONNREFUSED", "HTTP 503"). */
  readonly detail: string;
  readonly latencyMs: number;
}

export interface Probe {
  readonly name: string;
  readonly type: "tcp" | "ssh" | "ftp" | "http";
  /** Must resolve (never reject) within the probe's timeout; aborts when signal fires. */
  check(signal: AbortSignal): Promise<ProbeResult>;
}

export interface ProbeState {
  readonly name: string;
  readonly critical: boolean;
  /** After rise/fall debouncing. Starts false until `rise` consecutive successes. */
  readonly up: boolean;
  readonly lastDetail: string;
  readonly consecutive: number;
}
