/**
 * Idle-agent benchmark: what an understudy agent costs while nothing happens,
 * against the peers the issue names, in the same run on the same host:
 *
 *   - understudy, 3 nodes, ttl 5 s (the default) and ttl 1 s: each agent's RSS
 *     and CPU, and its resident helpers (`ip -batch`, understudy-garp, the fence
 *     guard) beside it;
 *   - keepalived, 3 nodes, unicast VRRP, advert_int 1, a track script on sshd
 *     (the failover benchmark's setup): its processes (parent + VRRP child);
 *   - the Node baseline: `node -e "setInterval(()=>{},1e3)"`, and the same with
 *     the agent's own node flags (--max-semi-space-size=2 --v8-pool-size=1).
 *
 *   node --import tsx bench/idle/run.ts                 # 60 s windows
 *   node --import tsx bench/idle/run.ts --seconds 20 --only ttl5,baseline
 *   node --import tsx bench/idle/run.ts --only ttl5,whatif --agent-flags "--no-opt"   # a node flag's effect
 *   node --import tsx bench/idle/run.ts --only ttl5,whatif --agent-env "GLIBC_TUNABLES=glibc.malloc.arena_max=1"   # an environment's
 *   node --import tsx bench/idle/run.ts --settle 10     # include what settles after start-up
 *
 * CPU is the process's own utime+stime over the window (/proc/PID/stat), as %
 * of one core; RSS is VmRSS, sampled every second (median and max). A settle
 * (--settle, 60 s by default) precedes each window. Needs root and `npm run build`; traffic stays in
 * the lab namespaces (198.18.0.0/15); labs are torn down in `finally`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { Lab, LabCluster, NODE_FLAGS, sleep } from "../../test/lab/harness/index.js";
import { startKeepalived } from "../failover/keepalived.js";
import { CLK_TCK, procComm, procSample, type ProcSample } from "../failover/lib.js";

interface Options {
  seconds: number;
  only: Set<string>;
  /** Node flags for a what-if ttl 5 s profile ("whatif" in --only), e.g. "--no-opt". */
  agentFlags: string;
  /** Environment variables (NAME=VALUE, space-separated) for the what-if profile's lab, e.g. glibc's malloc tunables. */
  agentEnv: Record<string, string>;
  /** Seconds between start-up and the window: V8's memory reducer runs its full GCs ~25-50 s after an agent starts. */
  settle: number;
}

function parseArgs(argv: string[]): Options {
  let seconds = 60;
  let only = new Set(["ttl5", "ttl1", "keepalived", "baseline"]);
  let agentFlags = "";
  const agentEnv: Record<string, string> = {};
  let settle = 60;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i] ?? "";
    if (a === "--seconds") seconds = Number(val());
    else if (a === "--only") only = new Set(val().split(","));
    else if (a === "--agent-flags") agentFlags = val();
    else if (a === "--agent-env") {
      for (const kv of val().split(" ").filter(Boolean)) {
        const eq = kv.indexOf("=");
        if (eq <= 0) throw new Error(`--agent-env: "${kv}" is not NAME=VALUE`);
        agentEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
    } else if (a === "--settle") settle = Number(val());
    else
      throw new Error(
        `unknown option ${a}; usage: bench/idle/run.ts [--seconds S] [--only ttl5,ttl1,keepalived,baseline,whatif] [--agent-flags "--no-opt"] [--agent-env "NAME=VALUE ..."] [--settle S]`,
      );
  }
  if (!(seconds >= 5 && seconds <= 600)) throw new Error("--seconds must be 5..600");
  if (!(settle >= 0 && settle <= 600)) throw new Error("--settle must be 0..600");
  if (only.has("whatif") && !agentFlags && Object.keys(agentEnv).length === 0) throw new Error("--only whatif needs --agent-flags or --agent-env");
  return { seconds, only, agentFlags, agentEnv, settle };
}

interface Measured {
  what: string;
  rssMedianMb: number;
  rssMaxMb: number;
  cpuPct: number;
  /** Also the children it waited for in the window (`ip`, `arping`, probes spawned and reaped). */
  cpuWithChildrenPct: number;
}

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${s}`);

/** Sample each pid every second for `seconds`: RSS median/max and CPU over the window. */
async function measure(groups: { what: string; pids: number[] }[], seconds: number): Promise<Measured[]> {
  const first = new Map<number, ProcSample | undefined>(groups.flatMap((g) => g.pids.map((p) => [p, procSample(p)] as const)));
  const rss = new Map<string, number[]>(groups.map((g) => [g.what, []]));
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    for (const g of groups) rss.get(g.what)!.push(g.pids.reduce((sum, p) => sum + (procSample(p)?.rssKb ?? 0), 0) / 1024);
  }
  return groups.map((g) => {
    let ticks = 0;
    let childTicks = 0;
    let wall = 0;
    for (const p of g.pids) {
      const a = first.get(p);
      const b = procSample(p);
      if (!a || !b) continue;
      ticks += b.selfTicks - a.selfTicks;
      childTicks += b.childTicks - a.childTicks;
      wall = Math.max(wall, (b.t - a.t) / 1000);
    }
    const r = [...rss.get(g.what)!].sort((x, y) => x - y);
    const pct = (t: number) => (wall > 0 ? (t / CLK_TCK / wall) * 100 : 0);
    return { what: g.what, rssMedianMb: r[Math.floor(r.length / 2)] ?? 0, rssMaxMb: r[r.length - 1] ?? 0, cpuPct: pct(ticks), cpuWithChildrenPct: pct(ticks + childTicks) };
  });
}

/** Direct children of pid (from /proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(" ").map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

async function understudy(ttl: string, seconds: number, settle: number, flags = "", env: Record<string, string> = {}): Promise<Measured[]> {
  // The harness passes UNDERSTUDY_LAB_AGENT_FLAGS to the agents it starts (test/lab/harness/README.md),
  // and every process of the lab inherits this process's environment when it starts.
  if (flags) process.env.UNDERSTUDY_LAB_AGENT_FLAGS = flags;
  else delete process.env.UNDERSTUDY_LAB_AGENT_FLAGS;
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  let c: LabCluster;
  try {
    c = await LabCluster.create({ ttl });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const what = [flags, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(" ");
  ttl = what ? `${ttl} ${what}` : ttl;
  try {
    const leader = (await c.leader())?.node;
    log(`understudy ttl ${ttl}: cluster up (${c.lab.prefix}), leader ${leader}; settling ${settle} s`);
    await sleep(settle * 1000);
    const groups: { what: string; pids: number[] }[] = [];
    for (const n of c.lab.nodes) {
      const agent = c.lab.pidsIn(n.name, "node")[0];
      if (agent === undefined) throw new Error(`no agent process in ${n.name}`);
      const role = n.name === leader ? "primary" : "standby";
      const kids = childrenOf(agent);
      const ip = kids.filter((p) => procComm(p) === "ip");
      const garp = kids.filter((p) => procComm(p) === "understudy-garp");
      const guard = c.lab.pidsIn(n.name).filter((p) => (procComm(p) ?? "").startsWith("understudy-fenc"));
      groups.push({ what: `ttl ${ttl} ${role} ${n.name}: agent`, pids: [agent] });
      groups.push({ what: `ttl ${ttl} ${role} ${n.name}: helpers (ip -batch ${ip.length}, garp ${garp.length}, fence guard ${guard.length})`, pids: [...ip, ...garp, ...guard] });
    }
    return await measure(groups, seconds);
  } finally {
    await c.teardown();
  }
}

async function keepalived(seconds: number, settle: number): Promise<Measured[]> {
  const lab = await Lab.create({ nodes: 3, startEtcd: false });
  try {
    for (const n of lab.nodes) await lab.startSshd(n);
    for (const n of lab.nodes) startKeepalived(lab, n);
    log(`keepalived: 3 nodes up; settling ${settle} s`);
    await sleep(settle * 1000);
    const groups = lab.nodes.map((n) => ({ what: `keepalived ${n.name} (all its processes)`, pids: lab.pidsIn(n.name, "keepalived") }));
    return await measure(groups, seconds);
  } finally {
    await lab.teardown();
  }
}

async function baseline(seconds: number, settle: number): Promise<Measured[]> {
  const kids: ChildProcess[] = [
    spawn(process.execPath, ["-e", "setInterval(()=>{},1e3)"], { stdio: "ignore" }),
    spawn(process.execPath, [...NODE_FLAGS, "-e", "setInterval(()=>{},1e3)"], { stdio: "ignore" }),
  ];
  try {
    log(`node baseline: settling ${settle} s`);
    await sleep(settle * 1000);
    return await measure(
      [
        { what: 'node -e "setInterval(()=>{},1e3)"', pids: [kids[0]!.pid!] },
        { what: `node ${NODE_FLAGS.join(" ")} -e "setInterval(()=>{},1e3)"`, pids: [kids[1]!.pid!] },
      ],
      seconds,
    );
  } finally {
    for (const k of kids) k.kill("SIGKILL");
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  log(
    `idle benchmark: ${opts.seconds} s windows after ${opts.settle} s; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; node ${process.version}`,
  );
  const rows: Measured[] = [];
  if (opts.only.has("ttl5")) rows.push(...(await understudy("5s", opts.seconds, opts.settle)));
  if (opts.only.has("ttl1")) rows.push(...(await understudy("1s", opts.seconds, opts.settle)));
  if (opts.only.has("whatif")) rows.push(...(await understudy("5s", opts.seconds, opts.settle, opts.agentFlags, opts.agentEnv)));
  if (opts.only.has("keepalived")) rows.push(...(await keepalived(opts.seconds, opts.settle)));
  if (opts.only.has("baseline")) rows.push(...(await baseline(opts.seconds, opts.settle)));
  const w = Math.max(...rows.map((r) => r.what.length));
  console.log(`\n${"process".padEnd(w)}  RSS median  RSS max  CPU % of a core  +reaped children`);
  for (const r of rows)
    console.log(
      `${r.what.padEnd(w)}  ${r.rssMedianMb.toFixed(1).padStart(7)} MB  ${r.rssMaxMb.toFixed(1).padStart(5)} MB  ${r.cpuPct.toFixed(2).padStart(15)}  ${r.cpuWithChildrenPct.toFixed(2).padStart(16)}`,
    );
  console.log(
    `\nload average at end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; targets (issue 16 part 4): agent <= 1 % of a core and <= 70 MB RSS at ttl 5 s`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
