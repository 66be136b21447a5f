import { X509Certificate } from "node:crypto";

const DAY_MS = 86_400_000;

/** Default for `cert_warning`: two weeks leaves time to renew by hand after a failed automatic renewal. */
export const DEFAULT_CERT_WARNING_MS = 14 * DAY_MS;

/** How one certificate's expiry compares with now. */
export interface ExpiryVerdict {
  readonly expired: boolean;
  /** Not expired, but expires within the warning period. */
  readonly warning: boolean;
  /** "expires in 45 days (2026-03-01)", "expired 3 days ago (2025-12-29)". */
  readonly text: string;
}

export function judgeExpiry(notAfterMs: number, nowMs: number, warningMs: number): ExpiryVerdict {
  const left = notAfterMs - nowMs;
  const date = new Date(notAfterMs).toISOString().slice(0, 10);
  if (left <= 0) {
    const ago = Math.floor(-left / DAY_MS);
    return { expired: true, warning: false, text: ago === 0 ? `expired today (${date})` : `expired ${ago} day${ago === 1 ? "" : "s"} ago (${date})` };
  }
  const days = Math.floor(left / DAY_MS);
  const text = days === 0 ? `expires in less than a day (${date})` : `expires in ${days} day${days === 1 ? "" : "s"} (${date})`;
  return { expired: false, warning: left <= warningMs, text };
}

/** notAfter of a certificate as Node.js prints it ("Mar 29 12:00:00 2025 GMT"), in epoch ms; undefined if unreadable. */
export function parseValidTo(validTo: string): number | undefined {
  const ms = Date.parse(validTo);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Every certificate in a PEM text, in order (a fullchain file holds the leaf and its intermediates). */
export function pemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}
