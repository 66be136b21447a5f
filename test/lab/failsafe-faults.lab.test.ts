/**
 * Failsafe mode under the two faults where it must NOT keep a primary up
 * (docs/failsafe-design.md, "Every case"): 3 real agents with
 * `election.failsafe: on`, a real 3-member etcd (TLS + auth, LAN-tuned), real
 * sshd behind the VIP, and an observer sampling ARP answers for the VIP every
 * 20 ms. ttl 3 s and fence margin 1 s as test/lab/failsafe.lab.test.ts (host
 * death: ttl 4 s, see HOST_DEATH_TTL_MS).
 *
 * 1. Quorum loss while one standby is cut off from the primary (node <-> node
 *    only): no round of grants is complete, so the primary fences at the
 *    deadline its last renewal gave it, and nobody serves until etcd is back.
 * 2. Quorum loss, the primary holds on grants, then its host dies (link down,
 *    every process SIGKILLed, the VIP gone like a power-off): nobody promotes
 *    while etcd is down; once etcd is back a standby promotes within the
 *    old lease's expiry (and any promise) plus a machine-relative slack.
 *
 * Timings are measured against what this machine does now (agentLoadMs), and
 * the "no renewal after this instant" reference point is made exact by the
 * order of the etcd kills (see killQuorum). Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { Lab, LabCluster, agentLoadMs, etcdElections, pollUntil, sleep, type LeaderView } from "./harness/index.js";

const TTL_MS = 3000;
const MARGIN_MS = 1000;
/**
 * The host-death test needs the primary to engage failsafe first. Its first round starts when a
 * renewal is known to have failed: up to renew interval (ttl/4) + etcd.request_timeout (1 s) after
 * the last good one, which leaves ttl - margin - ttl/4 - 1 s for the round: 250 ms at ttl 3 s (a
 * loaded runner took longer: both grants arrived 221-232 ms after the round started and the
 * primary fenced; docs/failsafe-design.md open question 8), 1 s at ttl 4 s.
 */
const HOST_DEATH_TTL_MS = 4000;
/** The harness's `election.ranking_delay`. */
const RANKING_DELAY_MS = 300;
/** etcd 3.4 looks for expired leases every 500 ms; a new raft leader extends each lease by the election timeout (100 ms tuned). */
const ETCD_EXPIRY_SWEEP_MS = 500 + 100;
const NODES = ["n1", "n2", "n3"];
const CAMPAIGN = /^campaigning|^won the election|^lost the election race/;

interface LogLine {
  /** Epoch ms (pino's ISO time). */
  t: number;
  msg: string;
}

function agentLog(lab: Lab, node: string): LogLine[] {
  const text = readFileSync(join(lab.logDir, `${node}-agent.log`), "utf8");
  return text.split("\n").flatMap((line) => {
    try {
      const j = JSON.parse(line) as { time?: unknown; msg?: unknown };
      return typeof j.time === "string" && typeof j.msg === "string" ? [{ t: Date.parse(j.time), msg: j.msg }] : [];
    } catch {
      return [];
    }
  });
}

const within = (lines: readonly LogLine[], from: number, to: number) => lines.filter((l) => l.t >= from && l.t <= to);

/**
 * Quorum loss with no stale raft leader: a follower first (the leader keeps its quorum), then the
 * leader; the survivor is a follower that can never win an election alone, and etcd renews leases
 * only on the leader. So once this returns (the leader's process has exited) no renewal can be
 * acknowledged any more: `lostAt` is an upper bound of every node's last successful renewal.
 * A node whose etcd connection went to the first victim may see its renewals fail from `faultAt` on
 * (the client does not retry a keepalive on another endpoint), so log windows start there.
 */
async function killQuorum(lab: Lab): Promise<{ faultAt: number; lostAt: number; victims: number[] }> {
  // `etcdctl endpoint status` gives up after 1 s: on a loaded runner, ask again (bounded).
  const first = await pollUntil(() => lab.etcdLeaderIndex(), { timeoutMs: 20_000, intervalMs: 200 });
  assert.ok(first !== undefined, "etcd has a raft leader before the fault");
  const follower = [0, 1, 2].find((i) => i !== first)!;
  const faultAt = Date.now();
  await lab.stopEtcdMember(follower);
  const leader = (await lab.etcdLeaderIndex()) ?? first;
  await lab.stopEtcdMember(leader);
  return { faultAt, lostAt: Date.now(), victims: [follower, leader] };
}

async function restoreQuorum(lab: Lab, victims: readonly number[]): Promise<number> {
  for (const i of victims) lab.startEtcdMember(i);
  const at = await pollUntil(async () => ((await lab.etcdHealthy(lab.client, 1500)) ? Date.now() : undefined), { timeoutMs: 30_000, intervalMs: 100 });
  assert.ok(at, "etcd healthy again");
  return at;
}

/** A cluster with failsafe on, its primary serving, both standbys published, and failsafe/members written in the primary's term (E1, on real etcd). */
async function failsafeCluster(lab: Lab, ttlMs: number): Promise<{ c: LabCluster; primary: LeaderView; standbys: string[] }> {
  const c = await LabCluster.create({ lab, ttl: `${ttlMs}ms`, fenceMargin: `${MARGIN_MS}ms`, priorities: [300, 200, 100], electionYaml: "failsafe: on" });
  const primary = (await c.leader())!;
  const standbys = NODES.filter((n) => n !== primary.node);
  assert.ok(await c.waitForStandbys(standbys, 30_000), "both standbys published their member keys (with their API URLs)");
  assert.ok(await c.waitServing(primary.node, 10_000), "await c.waitServing(primary.node, 10_000)");
  const listed = await pollUntil(
    async () => {
      const r = await lab.etcdctl(["get", "--print-value-only", `${c.prefix}/lab/failsafe/members`], { timeoutMs: 3000 });
      try {
        const v = JSON.parse(r.stdout) as { term: number; nodes: string[] };
        return v.term === primary.term && v.nodes.length === 3 ? v : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 10_000, intervalMs: 200 },
  );
  assert.deepEqual(listed?.nodes, NODES, `failsafe/members lists every node in term ${primary.term}`);
  return { c, primary, standbys };
}

/** What can legitimately delay a fence or a promotion here: loading the agent now (0.7 s idle, 5-10 s on a busy runner), at least 1 s. */
async function slack(t: TestContext): Promise<number> {
  const load = await agentLoadMs();
  const ms = Math.max(1000, Math.round(load));
  t.diagnostic(`agent load ${Math.round(load)} ms here: slack ${ms} ms`);
  return ms;
}

test("failsafe on, quorum lost and a standby cut off from the primary: the primary fences at its deadline, nobody serves until etcd is back", { timeout: 300_000 }, async (t) => {
  const lab = await Lab.create({ nodes: 3, etcdTuned: true, etcdMembers: 3 });
  let c: LabCluster | undefined;
  const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 280 });
  try {
    const up = await failsafeCluster(lab, TTL_MS);
    c = up.c;
    const p = up.primary.node;
    // The standby ranked first: the one that would take over once etcd is back.
    const cut = up.standbys[0]!;
    const other = up.standbys[1]!;
    const slackMs = await slack(t);

    await lab.partition(p, cut);
    const { faultAt, lostAt, victims } = await killQuorum(lab);
    // Without a complete round the deadline stays where the last renewal put it: at most lostAt + ttl - margin.
    const fenceBy = lostAt + TTL_MS - MARGIN_MS + slackMs;
    // Then two more lease periods without etcd: a primary that extended on a partial round would still hold the VIP.
    const holdUntil = fenceBy + 2 * TTL_MS;
    const checks: { at: number; vipOn: string[] }[] = [];
    while (Date.now() < holdUntil) {
      checks.push({ at: Date.now(), vipOn: await lab.vipConfiguredOn() });
      await sleep(200);
    }
    assert.equal(await lab.etcdHealthy(lab.client, 1500), false, "etcd still has no quorum at the end of the window");
    const restoreAt = Date.now();
    assert.deepEqual(lab.sshdListeners(p), [], `${p} stopped its daemon when it fenced (cold mode)`);

    for (const k of checks)
      assert.ok(
        k.vipOn.every((n) => n === p),
        `+${k.at - lostAt}ms: nobody but ${p} has the VIP while etcd is down (${k.vipOn.join(",") || "nobody"})`,
      );
    const late = checks.filter((k) => k.at > fenceBy);
    assert.ok(late.length >= 10, `checked for two lease periods after the fence bound (${late.length} checks)`);
    for (const k of late) assert.deepEqual(k.vipOn, [], `+${k.at - lostAt}ms: the VIP is configured nowhere after the deadline`);
    const samples = obs.samples();
    const lastP = obs.lastAnsweredBy(
      p,
      samples.filter((s) => s.t_ms < restoreAt),
    );
    // (It may fence before lostAt: its renewals fail from faultAt when its etcd connection went to the first victim.)
    assert.ok(lastP !== undefined, `${p} answered for the VIP`);
    assert.ok(lastP <= fenceBy, `${p} last answered for the VIP at +${Math.round(lastP - lostAt)}ms, within ttl - margin + slack = ${fenceBy - lostAt}ms of its last possible renewal`);
    const silent = samples.filter((s) => s.t_ms > fenceBy && s.t_ms < restoreAt);
    assert.ok(silent.length > 100, `observer samples after the fence bound (${silent.length})`);
    assert.deepEqual(
      silent.filter((s) => s.macs.length > 0),
      [],
      "nobody answers for the VIP on the wire until etcd is back",
    );

    const plog = within(agentLog(lab, p), faultAt, restoreAt);
    // The deadline timer fences; a starved agent's cycle may see the passed deadline first and demote.
    const fenced = plog.find((l) => /^(fencing|demoting): lease deadline passed/.test(l.msg));
    assert.ok(fenced, `${p} fenced on its lease deadline`);
    assert.ok(fenced.t <= fenceBy, `${p} fenced at +${fenced.t - lostAt}ms`);
    // The cut standby never answers; on a loaded runner the other's answer may miss the short first round too.
    const missing = new RegExp(`^no failsafe extension: [12] of 2 member\\(s\\) did not grant \\((.*; )?${cut}: US_E_HTTP_TIMEOUT`);
    assert.ok(
      plog.some((l) => missing.test(l.msg)),
      `${p} logged that ${cut} did not grant:\n${plog
        .filter((l) => /failsafe/.test(l.msg))
        .map((l) => `+${l.t - lostAt}ms ${l.msg}`)
        .join("\n")}`,
    );
    assert.deepEqual(
      plog.filter((l) => /^failsafe: \d+ of \d+ member\(s\) granted/.test(l.msg)),
      [],
      `${p} never extended its deadline on a partial round`,
    );
    for (const s of up.standbys) {
      const campaigns = within(agentLog(lab, s), faultAt, restoreAt).filter((l) => CAMPAIGN.test(l.msg));
      assert.deepEqual(campaigns, [], `${s} never campaigned without etcd`);
    }
    const round = plog.find((l) => missing.test(l.msg))!;
    t.diagnostic(
      `fenced at +${fenced.t - lostAt}ms, VIP last answered by ${p} at +${Math.round(lastP - lostAt)}ms (bound +${fenceBy - lostAt}ms); ${cut} cut off from ${p}, ${other} not; +${round.t - lostAt}ms ${round.msg}`,
    );

    // etcd back, then the partition heals: exactly one primary serves again.
    const healthyAt = await restoreQuorum(lab, victims);
    await lab.heal(p, cut);
    const serving = await pollUntil(
      async () => {
        const l = await c!.leader();
        if (!l) return undefined;
        const on = await lab.vipConfiguredOn();
        if (on.length !== 1 || on[0] !== l.node) return undefined;
        return (await lab.sshHandshake("vip", { timeoutMs: 3000 })).ok ? l : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.ok(serving, "a primary serves through the VIP once etcd is back");
    t.diagnostic(`etcd healthy +${healthyAt - lostAt}ms; ${serving.node} (term ${serving.term}, was ${up.primary.node} term ${up.primary.term}) serving +${Date.now() - lostAt}ms`);
    await sleep(TTL_MS);
    assert.deepEqual(await c.leader(), serving, "the leader is stable");
    assert.deepEqual(await lab.vipConfiguredOn(), [serving.node], "and holds the VIP alone");
    const sftp = await lab.sftpLogin("vip");
    assert.ok(sftp.ok, `SFTP upload through the VIP: ${sftp.stderr}`);

    const all = await obs.stop();
    assert.ok(all.length > 300, `observer took samples (${all.length})`);
    assert.equal(obs.maxSimultaneousHolders(all), 1, "never two VIP holders on the wire");
  } finally {
    await obs.stop().catch(() => undefined);
    if (c) await c.teardown();
    else await lab.teardown();
  }
});

test("failsafe on, quorum lost, then the primary's host dies: nobody promotes until etcd is back, then a standby serves", { timeout: 300_000 }, async (t) => {
  const lab = await Lab.create({ nodes: 3, etcdTuned: true, etcdMembers: 3 });
  let c: LabCluster | undefined;
  const obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 280 });
  try {
    const up = await failsafeCluster(lab, HOST_DEATH_TTL_MS);
    c = up.c;
    const p = up.primary.node;
    const slackMs = await slack(t);

    const { faultAt, lostAt, victims } = await killQuorum(lab);
    // The primary holds on its standbys' grants past the deadline etcd alone gave it (lostAt + ttl - margin).
    await sleep(Math.max(0, lostAt + HOST_DEATH_TTL_MS - Date.now()));
    assert.deepEqual(await lab.vipConfiguredOn(), [p], `${p} still has the VIP one lease period into the outage`);
    assert.ok((await lab.sshHandshake("vip", { timeoutMs: 3000 })).ok, "and serves SFTP through it");
    const held = within(agentLog(lab, p), faultAt, Date.now());
    assert.ok(
      held.some((l) => l.msg.startsWith("failsafe: 2 of 2 member(s) granted")),
      `${p} held on both standbys' grants:\n${held.map((l) => `+${l.t - lostAt}ms ${l.msg}`).join("\n")}`,
    );
    assert.ok(!held.some((l) => /^(fencing|demoting): lease deadline passed/.test(l.msg)), `${p} did not fence`);

    // Host death, like a power-off: off the wire first, then every process gone, the VIP with it.
    await lab.linkDown(p);
    const deathAt = Date.now();
    await lab.killAllIn(lab.node(p).ns);
    await lab.delVip(p);
    assert.ok(await pollUntil(() => (lab.pidsIn(lab.node(p).ns).length === 0 ? true : undefined), { timeoutMs: 2000, intervalMs: 50 }), `nothing runs on ${p} any more`);
    assert.equal((await lab.sshHandshake(p, { timeoutMs: 3000 })).ok, false, `${p}'s sshd does not answer`);

    // Two lease periods (and past every promise, L + m after the last grant): no standby may move while etcd is down.
    const holdUntil = deathAt + 2 * HOST_DEATH_TTL_MS + MARGIN_MS;
    const checks: { at: number; vipOn: string[] }[] = [];
    while (Date.now() < holdUntil) {
      checks.push({ at: Date.now(), vipOn: await lab.vipConfiguredOn() });
      await sleep(200);
    }
    assert.equal(await lab.etcdHealthy(lab.client, 1500), false, "etcd still has no quorum at the end of the window");
    const restoreAt = Date.now();
    assert.ok(checks.length >= 10, `checked the VIP through the window (${checks.length} checks)`);
    for (const k of checks) assert.deepEqual(k.vipOn, [], `+${k.at - deathAt}ms after the death: no standby has the VIP without etcd`);
    const dark = obs.samples().filter((s) => s.t_ms >= deathAt && s.t_ms < restoreAt);
    assert.ok(dark.length > 100, `observer samples while nobody may serve (${dark.length})`);
    assert.deepEqual(
      dark.filter((s) => s.macs.length > 0),
      [],
      "nobody answers for the VIP on the wire until etcd is back",
    );
    for (const s of up.standbys) {
      const campaigns = within(agentLog(lab, s), faultAt, restoreAt).filter((l) => CAMPAIGN.test(l.msg));
      assert.deepEqual(campaigns, [], `${s} never campaigned without etcd`);
    }

    // etcd back: the dead primary's lease runs out a ttl after etcd's last raft election (each new leader gives
    // every lease a full ttl again; a restarted member can force a second election), any promise has ended,
    // and the standby ranked first campaigns after the ranking delay.
    const healthyAt = await restoreQuorum(lab, victims);
    const promiseEnd = deathAt + HOST_DEATH_TTL_MS + MARGIN_MS;
    const promoteBy = (electedAt: number) => Math.max(Math.max(healthyAt, electedAt) + HOST_DEATH_TTL_MS + ETCD_EXPIRY_SWEEP_MS, promiseEnd) + RANKING_DELAY_MS + slackMs;
    const next = await c.waitForLeader({ not: p, timeoutMs: Math.max(0, promoteBy(healthyAt) - Date.now()) + 10_000 });
    assert.ok(next, "a standby was elected once etcd was back");
    assert.ok(next.term > up.primary.term, `in a new term (${next.term} > ${up.primary.term})`);
    assert.ok(await c.waitServing(next.node, 10_000), `${next.node} serves through the VIP`);
    const onWire = obs.firstAnsweredBy(next.node, obs.samples(), restoreAt);
    assert.ok(onWire !== undefined, `${next.node} answers for the VIP`);
    const elections = etcdElections(lab.logDir).filter((e) => e.at >= restoreAt && e.at <= onWire);
    const lastElection = elections.at(-1)?.at ?? healthyAt;
    const bound = promoteBy(lastElection);
    const since = (at: number) => `+${Math.round(at - healthyAt)}ms`;
    assert.ok(
      onWire <= bound,
      `${next.node} took the VIP ${since(onWire)} after etcd was healthy; etcd elections at ${elections.map((e) => `${since(e.at)} (term ${e.term})`).join(", ") || "none logged"}; ` +
        `bound: last election + ttl + expiry sweep + ranking delay + slack = ${since(bound)}; ${next.node}'s log:\n` +
        within(agentLog(lab, next.node), healthyAt - 1000, onWire)
          .slice(-20)
          .map((l) => `${since(l.t)} ${l.msg}`)
          .join("\n"),
    );
    const sftp = await lab.sftpLogin("vip");
    assert.ok(sftp.ok, `SFTP upload through the VIP: ${sftp.stderr}`);
    t.diagnostic(
      `death +${deathAt - lostAt}ms, etcd healthy +${healthyAt - lostAt}ms, ${elections.length} etcd election(s) after the restart (last ${since(lastElection)}), ` +
        `${next.node} on the wire +${Math.round(onWire - lostAt)}ms (${since(onWire)} after etcd; bound ${since(bound)})`,
    );

    const all = await obs.stop();
    assert.ok(all.length > 300, `observer took samples (${all.length})`);
    assert.equal(obs.maxSimultaneousHolders(all), 1, "never two VIP holders on the wire");
  } finally {
    await obs.stop().catch(() => undefined);
    if (c) await c.teardown();
    else await lab.teardown();
  }
});
