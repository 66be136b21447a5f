/**
 * The data benchmark's peers, each replicating one directory of the primary
 * (n1) to both standbys over SSH to the plain sshd (bench/sync/plain-ssh.ts):
 *
 *  - lsyncd (bench/sync/lsyncd.ts): `default.rsync`, one `sync {}` per
 *    standby, with `delay = 0` and with its default delay (15 s);
 *  - a plain rsync loop: `rsync -a SRC/ root@standby:DST/` to both standbys
 *    in parallel, the next round as soon as both finished (what a cron job
 *    with no interval would do).
 *
 * Everything is stoppable and bounded.
 */
import type { Lab, LabNode } from "../../test/lab/harness/index.js";
import { Lsyncd } from "../sync/lsyncd.js";
import { plainSsh } from "../sync/plain-ssh.js";

export interface Peer {
  label: string;
  stop(): Promise<void>;
  /** A line about what it did (rounds, errors). */
  summary(): string;
}

export interface Target {
  node: LabNode;
  dir: string;
}

/** lsyncd in n1's namespace; resolves once its startup sync to every target finished (bounded). */
export async function startLsyncd(lab: Lab, primary: LabNode, tag: string, source: string, targets: Target[], delay: number | undefined, startupMs: number): Promise<Peer> {
  const l = Lsyncd.start(lab, primary, { tag, source, targets, ...(delay !== undefined ? { delay } : {}), rsh: plainSsh(lab) });
  const up = await l.waitStartups(targets.length, startupMs);
  if (!up) {
    await l.stop();
    throw new Error(`lsyncd (${tag}) startup did not finish within ${startupMs} ms:\n${l.tail()}`);
  }
  return {
    label: tag,
    stop: () => l.stop(),
    summary: () => `${l.lines.filter((x) => /Calling rsync/i.test(x.text)).length} rsync calls logged; ${l.lines.filter((x) => /error/i.test(x.text)).length} error lines`,
  };
}

/** rsync -a to every target in parallel, round after round, until stopped. */
export function startRsyncLoop(lab: Lab, primary: LabNode, source: string, targets: Target[], opts: { maxRounds?: number; roundTimeoutMs?: number } = {}): Peer {
  const ssh = plainSsh(lab);
  let stopping = false;
  let rounds = 0;
  let failures = 0;
  let lastError = "";
  const roundMs: number[] = [];
  const loop = (async () => {
    while (!stopping && rounds < (opts.maxRounds ?? 100_000)) {
      const t = performance.now();
      const rs = await Promise.all(targets.map((x) => lab.exec(primary, ["rsync", "-a", "-e", ssh, `${source}/`, `root@${x.node.address}:${x.dir}/`], { timeoutMs: opts.roundTimeoutMs ?? 120_000 })));
      rounds++;
      roundMs.push(performance.now() - t);
      const bad = rs.find((r) => r.code !== 0);
      if (bad) {
        failures++;
        lastError = `exit ${bad.code}: ${bad.stderr.trim().slice(-200)}`;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return {
    label: "rsync loop",
    stop: async () => {
      stopping = true;
      await loop;
    },
    summary: () => {
      const s = [...roundMs].sort((a, b) => a - b);
      return `${rounds} rounds (median ${s.length ? s[Math.floor(s.length / 2)]!.toFixed(0) : "-"} ms, max ${s.length ? s.at(-1)!.toFixed(0) : "-"} ms), ${failures} failed${lastError ? ` (last: ${lastError})` : ""}`;
    },
  };
}
