/**
 * The understudy demo: a narrated failover walk-through for a human at a
 * terminal, on the namespace lab (test/lab/harness). Run as root after
 * `npm run build`, or through scripts/demo.sh:
 *
 *   node --import tsx deploy/demo/run.ts [--keep] [--help]
 *
 * Steps: build the lab and start 3 agents; SFTP through the VIP with a pinned
 * host key; kill the primary host and time the failover; SFTP again with the
 * same known_hosts; bring the old node back as a standby; graceful switchover
 * by SIGTERM; teardown (or, with --keep, leave the lab running until Ctrl-C).
 * Every wait is bounded; any failure exits non-zero after tearing down.
 */
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { CLI, LabCluster, REPO, listNetns, pollUntil, run, sleep, type Observer } from "../../test/lab/harness/index.js";

const STEPS = 7;
const OBSERVER_INTERVAL_MS = 20;

const USAGE = `usage: node --import tsx deploy/demo/run.ts [--keep] [--help]
       (or: npm run demo -- [--keep], which installs deps and builds first)

A narrated failover demo on a throw-away lab of Linux network namespaces on this
machine: real etcd, 3 understudy agents (n1..n3) running OpenSSH as the
transfer daemon behind a floating IP, and a client namespace.

  1. build the lab, start the agents, show \`understudy status\`
  2. SFTP through the VIP with StrictHostKeyChecking=yes and a pinned known_hosts
  3. kill the primary host (link down + every process killed), time the failover
  4. SFTP again with the same known_hosts; ARP observer: never two VIP holders
  5. bring the old node back: it rejoins as a standby
  6. graceful switchover: SIGTERM the primary's agent
  7. tear down

Options:
  --keep   after step 6, leave the lab running and print how to explore it;
           Ctrl-C (SIGINT) or SIGTERM tears it down
  --help   this text

Needs root and a build (npm run build). Exit status: 0 success, 1 a step
failed (the lab is torn down anyway), 2 bad usage.`;

class StepFailed extends Error {}

// ------------------------------------------------------------------ output

const t0Demo = Date.now();
let currentStep = 0;

function fmt(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 1000).toFixed(1)} s`;
}

function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

function step(n: number, title: string): void {
  currentStep = n;
  out();
  out(`[${n}/${STEPS}] ${title}`);
}

function info(line: string): void {
  out(`      ${line}`);
}

function ok(line: string): void {
  out(`   ok ${line}`);
}

function block(text: string): void {
  for (const l of text.trimEnd().split("\n")) out(`        ${l}`);
}

function fail(msg: string): never {
  throw new StepFailed(msg);
}

function firstLines(s: string, n = 6): string {
  return s.trim().split("\n").slice(0, n).join(" | ");
}

// ----------------------------------------------------------------- helpers

async function statusTable(c: LabCluster): Promise<void> {
  block(await c.status());
}

/** Which node's SFTP start directory holds the uploaded file: proof of who served the session. */
function servedBy(c: LabCluster, remoteName: string): string | undefined {
  return c.lab.nodes.find((n) => existsSync(join(n.dir, "data", remoteName)))?.name;
}

async function pinnedFingerprint(c: LabCluster): Promise<string> {
  const r = await run(["ssh-keygen", "-lf", c.lab.hostKeyPub], { timeoutMs: 5000 });
  if (r.code !== 0) fail(`ssh-keygen -lf ${c.lab.hostKeyPub} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Fingerprint of the ed25519 key the VIP presents right now, fetched from the client namespace. */
async function presentedFingerprint(c: LabCluster): Promise<string> {
  const scan = await c.lab.exec(c.lab.client, ["ssh-keyscan", "-T", "3", "-t", "ed25519", c.lab.vipAddress], { timeoutMs: 6000 });
  const line = scan.stdout.split("\n").find((l) => l.startsWith(c.lab.vipAddress));
  if (!line) return "(ssh-keyscan got no key)";
  const r = await run(["ssh-keygen", "-lf", "-"], { input: `${line}\n`, timeoutMs: 5000 });
  return r.code === 0 ? (r.stdout.trim().split(/\s+/)[1] ?? "?") : "(unreadable)";
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return String(pid);
  }
}

function keyOnly(fingerprintLine: string): string {
  return fingerprintLine.split(/\s+/)[1] ?? fingerprintLine;
}

async function sftpThroughVip(c: LabCluster, what: string): Promise<string> {
  const r = await c.lab.sftpLogin("vip", { timeoutMs: 10_000 });
  if (!r.ok) {
    const why = r.timedOut ? "timed out" : `exit ${r.code}`;
    fail(`${what}: sftp through the VIP failed (${why}): ${firstLines(r.stderr || r.stdout)}`);
  }
  const node = servedBy(c, r.remoteName) ?? "?";
  ok(`${what}: sftp root@${c.lab.vipAddress}: put ${r.remoteName} + ls in ${fmt(r.latencyMs)}, StrictHostKeyChecking=yes`);
  return node;
}

/** Poll until the VIP is on `node` and a full SSH handshake through it works; returns the epoch ms. */
async function waitHandshake(c: LabCluster, node: string, timeoutMs: number): Promise<number | undefined> {
  return pollUntil(
    async () => {
      if (!(await c.lab.vipConfiguredOn()).includes(node)) return undefined;
      const r = await c.lab.sshHandshake("vip", { timeoutMs: 3000 });
      return r.ok ? Date.now() : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** Poll `understudy status --json` until `node` has a member record as standby written at/after sinceMs. */
async function waitStandby(c: LabCluster, node: string, sinceMs: number, timeoutMs: number): Promise<boolean> {
  const r = await pollUntil(
    async () => {
      const raw = await c.status(true);
      try {
        const s = JSON.parse(raw) as { members?: Array<{ node: string; role: string; updatedAt: string }> };
        return s.members?.some((m) => m.node === node && m.role === "standby" && Date.parse(m.updatedAt) >= sinceMs) ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs, intervalMs: 250 },
  );
  return r === true;
}

function checkObserver(obs: Observer, label: string): void {
  const samples = obs.samples();
  if (samples.length < 10) fail(`ARP observer took only ${samples.length} samples`);
  const max = obs.maxSimultaneousHolders(samples);
  const span = (samples[samples.length - 1]!.t_ms - samples[0]!.t_ms) / 1000;
  const msg = `ARP observer ${label}: ${samples.length} probes every ${OBSERVER_INTERVAL_MS} ms over ${span.toFixed(1)} s, max simultaneous VIP holders = ${max}`;
  if (max !== 1) {
    const doubles = obs
      .holders(samples)
      .filter((h) => h.holders.length > 1)
      .map((h) => `+${fmt(h.t_ms - t0Demo)} [${h.holders.join(", ")}]`);
    fail(`${msg} (must be 1); ${doubles.length} such probes (time since demo start): ${doubles.slice(0, 8).join(" ")}`);
  }
  ok(msg);
}

// ------------------------------------------------------------------- demo

interface Ctx {
  c?: LabCluster;
  obs?: Observer;
}

async function demo(keep: boolean, ctx: Ctx): Promise<string> {
  out(`understudy demo: 3 agents + etcd + a client in network namespaces, OpenSSH behind a floating IP${keep ? " (--keep)" : ""}`);

  // 1 ------------------------------------------------------------------
  step(1, "Build the lab (n1..n3, etcd, client), start the agents (ttl 2s, fence margin 500ms)");
  const tCreate = Date.now();
  const c = await LabCluster.create({ nodes: 3, ttl: "2s", fenceMargin: "500ms", etcdTuned: true });
  ctx.c = c;
  const lab = c.lab;
  info(`lab prefix ${lab.prefix}   subnet ${lab.subnet}   VIP ${lab.vipAddress}   etcd ${lab.etcdEndpoint}`);
  if (lab.etcdCredentials) info(`etcd: TLS with client certificates and etcd auth; the agents log in as ${lab.etcdCredentials.user}, whose role reaches only ${lab.etcdCredentials.rolePrefix}`);
  info(`namespaces ${lab.switchNs} (bridge), ${lab.etcd.ns}, ${lab.nodes.map((n) => n.ns).join(", ")}, ${lab.client.ns}, ${lab.observerHost.ns}`);
  const first = await c.leader();
  if (!first) fail("no primary in etcd after startup");
  ok(`network + etcd in ${fmt(lab.timings.createMs)}; primary ${first.node} (term ${first.term}) serving after ${fmt(Date.now() - tCreate)} in total`);
  info("understudy status (from the client namespace):");
  await statusTable(c);

  // 2 ------------------------------------------------------------------
  step(2, `SFTP from the client through the VIP ${lab.vipAddress}, host key pinned in known_hosts`);
  const fp = await pinnedFingerprint(c);
  info(`pinned host key (ssh-keygen -lf): ${fp}`);
  const served1 = await sftpThroughVip(c, "session 1");
  if (served1 !== first.node) fail(`session 1 was served by ${served1}, expected the primary ${first.node}`);
  info(`served by ${served1} (the upload landed in ${served1}'s SFTP directory); key presented by the VIP: ${await presentedFingerprint(c)}`);

  // 3 ------------------------------------------------------------------
  step(3, `Kill the primary host ${first.node}: bridge port down + SIGKILL every process in ${lab.node(first.node).ns}`);
  const obs = await lab.startObserver({ intervalMs: OBSERVER_INTERVAL_MS, maxSeconds: 240 });
  ctx.obs = obs;
  info(`ARP observer started in ${lab.observerHost.ns}: asks who-has ${lab.vipAddress} every ${OBSERVER_INTERVAL_MS} ms`);
  const tKill = Date.now();
  await lab.linkDown(first.node);
  const victims = lab.pidsIn(lab.node(first.node).ns).map((pid) => comm(pid));
  const killed = await lab.killAllIn(lab.node(first.node).ns);
  info(`t=0: ${first.node} cut off, ${killed} processes SIGKILLed (${victims.join(", ")})`);
  const next = await c.waitForLeader({ not: first.node, timeoutMs: 15_000 });
  if (!next) fail(`no new primary within 15 s of killing ${first.node}`);
  const tElected = Date.now();
  if (next.term <= first.term) fail(`new primary ${next.node} has term ${next.term}, not above ${first.term}`);
  ok(`new primary elected: ${next.node} (term ${next.term}) after ${fmt(tElected - tKill)}`);
  const tServing = await waitHandshake(c, next.node, 15_000);
  if (tServing === undefined) fail(`${next.node} did not serve SSH through the VIP within 15 s of its election`);
  const tArp = obs.firstAnsweredBy(next.node, obs.samples(), tKill);
  if (tArp !== undefined) ok(`${next.node} answers ARP for the VIP after ${fmt(tArp - tKill)}`);
  ok(`SSH handshake through the VIP succeeds after ${fmt(tServing - tKill)}`);
  await statusTable(c);

  // 4 ------------------------------------------------------------------
  step(4, "SFTP again through the VIP with the SAME known_hosts");
  const served2 = await sftpThroughVip(c, "session 2");
  if (served2 !== next.node) fail(`session 2 was served by ${served2}, expected the new primary ${next.node}`);
  const presented = await presentedFingerprint(c);
  if (presented !== keyOnly(fp)) fail(`the VIP now presents ${presented}, pinned is ${keyOnly(fp)}`);
  ok(`served by ${served2}: same host key ${presented}, no "REMOTE HOST IDENTIFICATION HAS CHANGED"`);
  checkObserver(obs, "since the kill");

  // 5 ------------------------------------------------------------------
  step(5, `Bring ${first.node} back: agent restarted first (link still down), then the bridge port up`);
  const leftover = (await lab.vipConfiguredOn()).includes(first.node);
  const tBack = Date.now();
  c.startAgent(first.node);
  const dropped = await pollUntil(async () => (!(await lab.vipConfiguredOn()).includes(first.node) ? Date.now() : undefined), {
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  if (dropped === undefined) fail(`${first.node}'s agent did not remove the VIP left on its eth0 within 15 s`);
  if (leftover) ok(`${first.node}'s agent started and removed the VIP the crash left on its eth0 after ${fmt(dropped - tBack)} (not the primary)`);
  else info(`${first.node}'s agent started (no VIP left on its eth0)`);
  const tUp = Date.now();
  await lab.linkUp(first.node);
  const rejoined = await waitStandby(c, first.node, tBack, 20_000);
  if (!rejoined) fail(`${first.node} did not register as a standby within 20 s:\n${await c.status()}`);
  const still = await c.leader();
  if (still?.node !== next.node) fail(`primary changed to ${still?.node ?? "nobody"} when ${first.node} came back`);
  const vipOn = await lab.vipConfiguredOn();
  if (vipOn.join(",") !== next.node) fail(`VIP configured on [${vipOn.join(", ")}], expected only ${next.node}`);
  ok(`link up: ${first.node} rejoined as a standby after ${fmt(Date.now() - tUp)}; ${next.node} stays primary (no flap back), VIP only on ${next.node}`);
  await statusTable(c);

  // 6 ------------------------------------------------------------------
  step(6, `Graceful switchover: SIGTERM the agent on the primary ${next.node}`);
  const tTerm = Date.now();
  const stopped = c.signalAgent(next.node, "SIGTERM", 10_000);
  const third = await c.waitForLeader({ not: next.node, timeoutMs: 10_000 });
  if (!third) fail(`no new primary within 10 s of SIGTERM to ${next.node}'s agent`);
  const tThirdElected = Date.now();
  const tThirdServing = await waitHandshake(c, third.node, 10_000);
  if (tThirdServing === undefined) fail(`${third.node} did not serve SSH through the VIP within 10 s`);
  await stopped;
  const agent = c.agents.get(next.node);
  if (agent && agent.exitCode === null && agent.signalCode === null) fail(`${next.node}'s agent did not exit within 10 s of SIGTERM`);
  ok(
    `${third.node} (term ${third.term}) elected after ${fmt(tThirdElected - tTerm)}, SSH through the VIP after ${fmt(tThirdServing - tTerm)}${tThirdElected - tTerm < 2000 ? " (lease revoked: no wait for the 2 s TTL)" : ""}`,
  );
  const sshdLeft = lab.pidsIn(next.node, "sshd").length;
  const vipLeft = (await lab.vipConfiguredOn()).includes(next.node);
  if (sshdLeft > 0 || vipLeft) fail(`${next.node}'s agent exited but left ${sshdLeft} sshd process(es)${vipLeft ? " and the VIP" : ""} behind`);
  ok(`${next.node}'s agent exited (code ${agent?.exitCode ?? agent?.signalCode ?? "?"}); it had dropped the VIP and stopped sshd`);
  const served3 = await sftpThroughVip(c, "session 3");
  if (served3 !== third.node) fail(`session 3 was served by ${served3}, expected ${third.node}`);
  checkObserver(obs, "since step 3");
  await obs.stop();
  const tRestart = Date.now();
  c.startAgent(next.node);
  const back = await waitStandby(c, next.node, tRestart, 20_000);
  if (!back) fail(`${next.node}'s restarted agent did not register as a standby within 20 s`);
  ok(`${next.node}'s agent restarted: standby again, ${third.node} primary`);
  await statusTable(c);
  return third.node;
}

/** `understudy` as the operator types it: the one on PATH (the .deb's), else this checkout's build run by this node. */
function understudyCommand(): string {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (!dir) continue;
    const p = join(dir, "understudy");
    try {
      accessSync(p, constants.X_OK);
      return "understudy";
    } catch {
      /* next */
    }
  }
  return `${process.execPath} ${CLI}`;
}

function explore(c: LabCluster, primary: string): void {
  const lab = c.lab;
  const us = understudyCommand();
  const standby = lab.nodes.find((n) => n.name !== primary)!.name;
  const on = (node: string): string => `ip netns exec ${lab.node(node).ns}`;
  const cfg = (node: string): string => c.configPath(node);
  out();
  out(`[7/${STEPS}] --keep: the lab ${lab.prefix} stays up. Explore it from another root shell:`);
  info(`node configs (the lab's addresses live in network namespaces: run commands inside a node's):`);
  for (const n of lab.nodes) info(`  ${n.name}: ${cfg(n.name)}   (namespace ${n.ns})`);
  info(`API token file: ${c.tokenFile} (api.token_file in every config; mode 0600)`);
  info(`cluster status, as an operator on ${primary}:`);
  info(`  ${on(primary)} ${us} status --config ${cfg(primary)}`);
  info(`operator commands go through the node's REST API (address and token from the config):`);
  info(`  ${on(primary)} ${us} switchover --to ${standby} --reason "demo" --config ${cfg(primary)}`);
  info(`  ${on(primary)} ${us} history --config ${cfg(primary)}`);
  info(`  ${on(primary)} ${us} config check ${cfg(primary)}`);
  info("SFTP through the VIP, host key pinned:");
  info(
    `  ip netns exec ${lab.client.ns} sftp -F /dev/null -i ${lab.clientKey} -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${lab.knownHosts} -o GlobalKnownHostsFile=/dev/null root@${lab.vipAddress}`,
  );
  info(`agent logs (JSON, one file per node; etcd.log and the observer's too):`);
  info(`  ls ${lab.logDir}`);
  info(`  tail -f ${join(lab.logDir, `${primary}-agent.log`)}`);
  info(`fail the primary ${primary} (its bridge port in the switch namespace, as the demo did), then bring it back:`);
  info(`  ip -n ${lab.switchNs} link set ${primary} down     # = ip netns exec ${lab.switchNs} ip link set ${primary} down`);
  info(`  ip -n ${lab.switchNs} link set ${primary} up`);
  info("graceful handover: SIGTERM an agent (pids: " + lab.nodes.map((n) => `${n.name}=${c.agents.get(n.name)?.pid ?? "-"}`).join(" ") + ")");
  info("who holds the VIP:");
  info(`  for n in ${lab.nodes.map((n) => n.name).join(" ")}; do echo "$n: $(ip -n ${lab.prefix}-$n -br addr show dev eth0)"; done`);
  info("tear down: Ctrl-C here (or kill -TERM " + process.pid + "). If this process was killed hard, sweep the leftovers:");
  info(`  cd ${REPO} && node --import tsx ${relative(REPO, join(REPO, "test/lab/harness/sweep-cli.ts"))} ${lab.prefix}`);
  info("(logs are deleted at teardown; set UNDERSTUDY_LAB_LOGS=/some/dir before starting the demo to keep a copy)");
  out();
  out("press Ctrl-C to tear down");
}

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
let onKeepSignal: ((sig: NodeJS.Signals) => void) | undefined;

/**
 * One handler for SIGINT/SIGTERM/SIGHUP for the whole run, installed before the
 * lab exists (so it runs before the harness's own handler): with --keep it
 * ends the wait; in the middle of a step it tears down and exits 128+n. Either
 * way the harness's process 'exit' hook is the backstop.
 */
function installSignalHandlers(ctx: Ctx): void {
  const on = (sig: NodeJS.Signals): void => {
    if (onKeepSignal) {
      onKeepSignal(sig);
      return;
    }
    out();
    out(`${sig}: interrupted during step ${currentStep}/${STEPS}; tearing down`);
    ctx.c?.lab.teardownSync();
    if (ctx.c) {
      const left = leftovers(ctx.c.lab.prefix);
      out(left.length ? `   !! left namespaces: ${left.join(" ")}` : `   ok lab ${ctx.c.lab.prefix} torn down`);
    }
    process.exit(SIGNAL_EXIT[sig] ?? 1);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, on);
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    onKeepSignal = resolve;
  });
}

function leftovers(prefix: string): string[] {
  return listNetns().filter((n) => n.startsWith(`${prefix}-`));
}

async function teardown(ctx: Ctx): Promise<boolean> {
  const c = ctx.c;
  if (!c) return true;
  await ctx.obs?.stop().catch(() => undefined);
  await c.teardown();
  const left = leftovers(c.lab.prefix);
  if (left.length > 0) {
    out(`   !! teardown left namespaces: ${left.join(" ")}; run: node --import tsx test/lab/harness/sweep-cli.ts ${c.lab.prefix}`);
    return false;
  }
  ok(`lab ${c.lab.prefix} torn down in ${fmt(c.lab.timings.teardownMs ?? 0)}: processes killed, namespaces and temp dir removed`);
  return true;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    out(USAGE);
    return 0;
  }
  const unknown = args.filter((a) => a !== "--keep");
  if (unknown.length > 0) {
    process.stderr.write(`understudy demo: unknown argument ${unknown.join(" ")}\n${USAGE}\n`);
    return 2;
  }
  const keep = args.includes("--keep");
  if (process.getuid?.() !== 0) {
    process.stderr.write("understudy demo: run as root (the lab uses network namespaces)\n");
    return 1;
  }
  if (!existsSync(CLI)) {
    process.stderr.write(`understudy demo: ${CLI} is missing: run \`npm run build\` first\n`);
    return 1;
  }

  const ctx: Ctx = {};
  installSignalHandlers(ctx);
  let primary = "";
  try {
    primary = await demo(keep, ctx);
  } catch (e) {
    const msg = e instanceof StepFailed ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    out();
    out(`FAILED at step ${currentStep}/${STEPS}: ${msg}`);
    if (ctx.c && !ctx.c.lab.isTornDown) {
      const dest = join("/tmp", `understudy-demo-logs-${ctx.c.lab.prefix}`);
      try {
        ctx.c.lab.copyLogsTo(dest);
        out(`      lab logs copied to ${dest}`);
      } catch {
        /* best effort */
      }
    }
    out();
    out(`[7/${STEPS}] Tear down`);
    await teardown(ctx);
    return 1;
  }

  if (keep && ctx.c) {
    explore(ctx.c, primary);
    const sig = await waitForSignal();
    out();
    out(`[7/${STEPS}] ${sig}: tear down`);
    return (await teardown(ctx)) ? 0 : 1;
  }
  out();
  out(`[7/${STEPS}] Tear down`);
  const clean = await teardown(ctx);
  out();
  out(`demo ${clean ? "complete" : "finished with leftovers"} in ${fmt(Date.now() - t0Demo)}`);
  return clean ? 0 : 1;
}

main().then(
  async (code) => {
    // Give stdout a moment to drain, then leave (child handles may keep the loop alive).
    await sleep(10);
    process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`understudy demo: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
