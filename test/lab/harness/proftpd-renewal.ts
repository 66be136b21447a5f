/**
 * FTPS certificate renewal on the primary during client traffic (issue 12): the renewed pair is
 * written into the primary's TLS root while a client keeps logging in through the VIP (FTPS and
 * SFTP, one after the other); the new certificate must be served, the standbys must get it, and
 * nothing may fail over or fail a login.
 *
 * What main does today, measured here: ProFTPD's mod_tls reads TLSRSACertificateFile and its key
 * at every session start, so the next FTPS session serves the renewed pair with no reload; the
 * ftps probe's ca_file is the CA (unchanged by a renewal), so the primary's probe stays up.
 * `reloadHook` is for what main lacks: a hook that runs on the primary after its own root
 * changed (sync.roots[].<hook>, being built) — pass its marker file to measure the hook's
 * run time too (the hook command in the root's YAML must touch it).
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { LabCluster } from "./cluster.js";
import { pollUntil, sleep } from "./exec.js";
import type { LabNode } from "./lab.js";
import { ftpsLogin, issueFtpsPair, rootPath, sftpLogin, type ProftpdSite } from "./proftpd.js";
import { snapshotTree } from "./sync.js";

/** The serial of the certificate the FTPS listener behind the VIP serves now (AUTH TLS, verified against the site CA), or null. */
export async function servedSerial(site: ProftpdSite): Promise<string | null> {
  const lab = site.lab;
  const r = await lab.exec(lab.client, ["openssl", "s_client", "-starttls", "ftp", "-connect", `${lab.vipAddress}:21`, "-CAfile", site.ca, "-verify_return_error"], { input: "", timeoutMs: 8000 });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
  if (!pem) return null;
  const x = await lab.exec(lab.client, ["openssl", "x509", "-noout", "-serial"], { input: pem, timeoutMs: 5000 });
  return x.code === 0 ? x.stdout.trim() : null;
}

async function fileSerial(site: ProftpdSite, file: string): Promise<string> {
  const x = await site.lab.exec(site.lab.client, ["openssl", "x509", "-noout", "-serial", "-in", file], { timeoutMs: 5000 });
  return x.stdout.trim();
}

export interface RenewalResult {
  primary: string;
  termBefore: number;
  termAfter: number | null;
  leaderAfter: string | null;
  oldSerial: string | null;
  newSerial: string;
  /** Renewed files in place on the primary -> the VIP serves the new certificate (ms). */
  servedAfterMs: number | null;
  /** Renewed files in place on the primary -> each standby's TLS root holds the same pair (ms). */
  standbysSyncedMs: Record<string, number | null>;
  /** Renewed -> the reload hook's marker appeared (only with opts.reloadMarker). */
  hookRanMs: number | null;
  logins: number;
  failedLogins: string[];
}

/**
 * Renew the primary's TLS pair while a client logs in through the VIP (FTPS + SFTP, sequential,
 * bounded), then keep the traffic going for `settleMs` (long enough for a probe failure to count
 * and a flap to show). Asserts nothing: the caller checks the result.
 */
export async function renewalDuringTraffic(
  c: LabCluster,
  site: ProftpdSite,
  opts: { settleMs?: number; timeoutMs?: number; reloadMarker?: (primary: LabNode) => string } = {},
): Promise<RenewalResult> {
  const lab = c.lab;
  const before = await c.leader();
  if (!before) throw new Error("renewal: no primary");
  const primary = lab.node(before.node);
  const standbys = lab.nodes.filter((n) => n.name !== primary.name && c.agents.has(n.name));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const marker = opts.reloadMarker?.(primary);
  const markerBefore = marker && existsSync(marker) ? statSync(marker).mtimeMs : 0;
  const oldSerial = await servedSerial(site);

  let stop = false;
  let logins = 0;
  const failedLogins: string[] = [];
  const traffic = (async () => {
    for (let i = 0; i < 2000 && !stop; i++) {
      const f = await ftpsLogin(site);
      const s = await sftpLogin(site);
      logins += 2;
      if (!f.ok) failedLogins.push(`ftps ${f.code} ${f.stderr.trim()}`);
      if (!s.ok) failedLogins.push(`sftp ${s.code} ${s.stderr.trim()}`);
    }
  })();
  try {
    await sleep(500);
    const tls = rootPath(primary, "tls");
    await issueFtpsPair(site, tls, `renewed-${Date.now()}`);
    const t0 = performance.now();
    const newSerial = await fileSerial(site, join(tls, "proftpd.crt"));
    // Watched at the same time: the VIP's certificate, each standby's TLS root, the hook's marker.
    const primaryTree = JSON.stringify(snapshotTree(tls));
    const standbysSyncedMs: Record<string, number | null> = {};
    const [served, hookRanMs] = await Promise.all([
      pollUntil(async () => ((await servedSerial(site)) === newSerial ? performance.now() - t0 : undefined), { timeoutMs, intervalMs: 100 }),
      marker ? pollUntil(() => (existsSync(marker) && statSync(marker).mtimeMs > markerBefore ? performance.now() - t0 : undefined), { timeoutMs, intervalMs: 50 }) : Promise.resolve(undefined),
      ...standbys.map(async (n) => {
        const ms = await pollUntil(() => (JSON.stringify(snapshotTree(rootPath(n, "tls"))) === primaryTree ? performance.now() - t0 : undefined), { timeoutMs, intervalMs: 50 });
        standbysSyncedMs[n.name] = ms ?? null;
      }),
    ]);
    await sleep(opts.settleMs ?? 8000);
    stop = true;
    await traffic;
    const after = await c.leader();
    return {
      primary: primary.name,
      termBefore: before.term,
      termAfter: after?.term ?? null,
      leaderAfter: after?.node ?? null,
      oldSerial,
      newSerial,
      servedAfterMs: served ?? null,
      standbysSyncedMs,
      hookRanMs: hookRanMs ?? null,
      logins,
      failedLogins,
    };
  } finally {
    stop = true;
    await traffic;
  }
}
