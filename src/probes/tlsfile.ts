import { readFile } from "node:fs/promises";
import type { Clock } from "../platform/clock.js";
import { stampOf } from "../platform/reloading-file.js";
import { judgeExpiry, parseValidTo, pemCertificates } from "./certs.js";
import type { Probe, ProbeResult } from "./port.js";
import { runCheck } from "./run.js";

/**
 * Default `interval` of a tls_file probe: one hour. A certificate's expiry
 * moves in days, so reading the files every second would only wear the disk,
 * yet an hour still notices a renewal (or its absence) the same morning.
 * schema.ts applies it; it is here to sit beside the probe it concerns.
 */
export const TLS_FILE_INTERVAL_MS = 3_600_000;

export interface TlsFileTarget {
  readonly name: string;
  /** Absolute paths of PEM files; a file with a chain counts by its earliest-expiring certificate. */
  readonly files: readonly string[];
  readonly warningMs: number;
  readonly timeoutMs: number;
  /** Failures count as shared with every node (the files are synced). Default true. */
  readonly sharedFailures?: boolean;
}

/**
 * The expiry of the certificates the daemon serves (ProFTPD's TLSRSACertificateFile,
 * SFTPGo's certificate_file...), read from disk: catches a renewal that did
 * not happen even on listeners no probe connects to.
 */
export class TlsFileProbe implements Probe {
  readonly type = "tls_file" as const;
  readonly name: string;
  private lastStamp: string | undefined;

  constructor(
    private readonly target: TlsFileTarget,
    private readonly clock: Clock,
  ) {
    this.name = target.name;
  }

  /** A renewal (or a broken copy) is checked at once, not at the next hourly interval: ProbeHealth polls this. */
  async changed(): Promise<boolean> {
    const stamp = await stampOf(this.target.files);
    const changed = this.lastStamp !== undefined && stamp !== this.lastStamp;
    this.lastStamp = stamp;
    return changed;
  }

  check(signal: AbortSignal): Promise<ProbeResult> {
    const { files, warningMs, timeoutMs } = this.target;
    return runCheck(this.clock, timeoutMs, signal, async (run) => {
      // What this check reads: changed() compares against it.
      this.lastStamp = await stampOf(files);
      const expiresAt: Record<string, number> = {};
      const problems: string[] = [];
      const warnings: string[] = [];
      let earliest: { file: string; text: string; at: number } | undefined;
      const now = this.clock.wallMs();
      for (const file of files) {
        run.stage = `reading ${file}`;
        let notAfter: number | undefined;
        try {
          const certs = pemCertificates(await readFile(file, "utf8"));
          if (certs.length === 0) {
            problems.push(`no PEM certificate in ${file}`);
            continue;
          }
          const dates = certs.map((c) => parseValidTo(c.validTo));
          if (dates.some((d) => d === undefined)) {
            problems.push(`unreadable expiry date in ${file}`);
            continue;
          }
          notAfter = Math.min(...(dates as number[]));
        } catch (e) {
          problems.push(`cannot read ${file}: ${(e as Error).message}`);
          continue;
        }
        if (run.settled) return;
        expiresAt[file] = Math.floor(notAfter / 1000);
        const verdict = judgeExpiry(notAfter, now, warningMs);
        if (verdict.expired) problems.push(`${file} ${verdict.text}`);
        else if (verdict.warning) warnings.push(`${file} ${verdict.text}`);
        if (earliest === undefined || notAfter < earliest.at) earliest = { file, text: verdict.text, at: notAfter };
      }
      const data = { certExpiresAt: expiresAt, warning: warnings.length > 0 };
      // The files are synced: a standby holds the same expired or broken certificate.
      if (problems.length > 0) return run.finish(false, problems.join("; "), this.target.sharedFailures === false ? data : { ...data, shared: true });
      if (warnings.length > 0) return run.finish(true, warnings.join("; "), data);
      const count = files.length === 1 ? "1 certificate file" : `${files.length} certificate files`;
      run.finish(true, `${count} ok, earliest ${earliest!.text}: ${earliest!.file}`, data);
    });
  }
}
