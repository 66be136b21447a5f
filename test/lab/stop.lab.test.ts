/**
 * Clean stop every time (issue 12, failure 5): start/stop cycles of real agents
 * (real etcd with TLS+auth, real sshd, real `ip`), alternately stopping the
 * primary and a standby with SIGTERM, then starting it again. Every agent must
 * exit by itself within 2 s of SIGTERM: exit code 0 and no US_E_STOP_LINGERING
 * (the 1.5 s force-exit backstop of `understudy agent`) in its log. The ARP
 * observer checks that the VIP never had two holders meanwhile.
 * Needs root and `npm run build`.
 */
import assert from 'node:assert/strict';
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabCluster, agentLoadMs } from './harness/index.js';

const CYCLES = Number(process.env.UNDERSTUDY_STOP_CYCLES ?? 50);
/** The bound, from SIGTERM to the process gone. */
const EXIT_WITHIN_MS = 2000;
/** How long to wait for an exit before calling it hung (then SIGKILL, so the loop stays bounded). */
const HUNG_MS = 10_000;

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

const sizeOf = (file: string) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

test(`${CYCLES} start/stop cycles, primary and standby alternately: every agent exits on its own within 2 s of SIGTERM`, { timeout: 600_000 }, async () => {
  const loadMs = await agentLoadMs();
  const c = await LabCluster.create({ nodes: 2 });
  const obs = await c.lab.startObserver({ intervalMs: 20, maxSeconds: 590 });
  const exits: { node: string; role: string; ms: number }[] = [];
  const t0 = Date.now();
  try {
    const nodes = c.lab.nodes.map((n) => n.name);
    const first = await c.leader();
    assert.ok(await c.waitForStandbys(nodes.filter((n) => n !== first?.node), 30_000), 'the other node is a standby');
    for (let i = 0; i < CYCLES; i++) {
      const leader = await c.waitForLeader({ timeoutMs: 20_000 });
      assert.ok(leader, `cycle ${i}: a primary`);
      const role = i % 2 === 0 ? 'primary' : 'standby';
      const node = role === 'primary' ? leader.node : nodes.find((n) => n !== leader.node)!;
      // A standby must be a standby already (its member key published), not still starting.
      if (role === 'standby') assert.ok(await c.waitForStandbys([node], 30_000), `cycle ${i}: ${node} is a standby`);
      const child = c.agents.get(node)!;
      const logFile = join(c.lab.logDir, `${node}-agent.log`);
      const from = sizeOf(logFile);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
        child.once('exit', (code, signal) => r({ code, signal, at: performance.now() })),
      );
      const sent = performance.now();
      process.kill(child.pid!, 'SIGTERM');
      const hung = setTimeout(() => child.kill('SIGKILL'), HUNG_MS);
      const exit = await exited;
      clearTimeout(hung);
      const ms = Math.round(exit.at - sent);
      exits.push({ node, role, ms });
      const log = readFrom(logFile, from);
      assert.ok(/"msg":"stopped"/.test(log), `cycle ${i}: ${node} (${role}) logged its graceful stop`);
      assert.doesNotMatch(log, /US_E_STOP_LINGERING/, `cycle ${i}: ${node} (${role}) needed the force-exit backstop:\n${log.split('\n').filter((l) => /backstop|LINGERING/.test(l)).join('\n')}`);
      assert.equal(exit.signal, null, `cycle ${i}: ${node} (${role}) hung (killed after ${HUNG_MS} ms)`);
      assert.equal(exit.code, 0, `cycle ${i}: ${node} (${role}) exit code`);
      assert.ok(ms <= EXIT_WITHIN_MS, `cycle ${i}: ${node} (${role}) took ${ms} ms to exit after SIGTERM`);
      if (role === 'primary') assert.ok(await c.waitForLeader({ not: node, timeoutMs: 20_000 }), `cycle ${i}: the standby took over`);
      c.startAgent(node);
      assert.ok(await c.waitForStandbys([node], 30_000 + 3 * loadMs), `cycle ${i}: ${node} came back as a standby`);
    }
    const samples = await obs.stop();
    assert.ok(samples.length > 20, `observer took samples (${samples.length})`);
    assert.equal(obs.maxSimultaneousHolders(samples), 1, 'never two VIP holders on the wire');
  } finally {
    await obs.stop().catch(() => undefined);
    await c.teardown();
    const sorted = exits.map((e) => e.ms).sort((a, b) => a - b);
    if (sorted.length > 0) {
      const by = (role: string) => exits.filter((e) => e.role === role).map((e) => e.ms).sort((a, b) => a - b);
      const line = (xs: number[]) => (xs.length ? `median ${pct(xs, 50)} ms, p95 ${pct(xs, 95)} ms, max ${xs[xs.length - 1]} ms` : '-');
      console.log(
        `stop loop: ${exits.length} stops in ${Math.round((Date.now() - t0) / 1000)} s (agent load ${loadMs} ms): all ${line(sorted)}; ` +
          `primary ${line(by('primary'))}; standby ${line(by('standby'))}`,
      );
    }
  }
});
