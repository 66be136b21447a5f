/**
 * ProFTPD outage benchmark: how long real FTPS and SFTP logins through the VIP fail when the
 * primary dies (kill -9 of agent + daemon), loses its link (`ip link set eth0 down` in its
 * namespace), or hands over on purpose (`understudy switchover`), with the keepalived peer
 * (warm ProFTPD on every node, VRRP) measured the same way in the same run.
 *
 *   npm run bench:proftpd                                   # 5 runs per fault, both peers (~6 min)
 *   npm run bench:proftpd -- --runs 7 --json bench/proftpd/results-latest.json
 *   npm run bench:proftpd -- --only understudy --runs 5
 *
 * The client (prober.mjs, in the lab's client namespace) starts a real login per protocol every
 * 50 ms (overlapping while failing, 2 s per attempt): FTPS = AUTH TLS, verified handshake,
 * USER/PASS -> 230; SFTP = ssh2 with the pinned host keys, publickey login, sftp readdir.
 * Per protocol and fault: the failure window (start of the first failed login, not before the
 * fault, to the start of the first good one after the last failed one) and the time from the fault
 * (the kill / `ip link` command returned; the switchover request) to that good login; 0 when no
 * login failed.
 * Needs root, proftpd-mod-crypto, keepalived and `npm run build`. Traffic stays in the lab.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import { Lab, LabCluster, pollUntil, runOk, sleep, type LabNode, type Observer } from "../../test/lab/harness/index.js";
import { FTP_USER, ROOT_NAMES, makeProftpdSite, proftpdCommand, proftpdProbesYaml, proftpdRootPaths, proftpdRootsYaml, rootPath, type ProftpdSite } from "../../test/lab/harness/proftpd.js";
import { snapshotTree } from "../../test/lab/harness/sync.js";
import { forEachArg, stats, table, type Stats } from "../failover/lib.js";
import { startKeepalived } from "./keepalived.js";

type Fault = "kill9" | "linkdown" | "switchover";
type Proto = "ftps" | "sftp";
type Peer = "understudy" | "keepalived";
const FAULTS: Fault[] = ["kill9", "linkdown", "switchover"];
const PROTOS: Proto[] = ["ftps", "sftp"];
const PROBER = fileURLToPath(new URL("./prober.mjs", import.meta.url));
const INTERVAL_MS = 50;
const ATTEMPT_TIMEOUT_MS = 4000;

interface Options {
  runs: number;
  json: string | undefined;
  only: Set<Peer>;
  ttl: string;
  fenceMargin: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 5, json: undefined, only: new Set(["understudy", "keepalived"]), ttl: "2s", fenceMargin: "500ms" };
  forEachArg(argv, (a, val) => {
    if (a === "--runs") o.runs = Number(val());
    else if (a === "--json") o.json = val();
    else if (a === "--only")
      o.only = new Set(
        val()
          .split(",")
          .map((s) => s.trim()) as Peer[],
      );
    else if (a === "--ttl") o.ttl = val();
    else if (a === "--fence-margin") o.fenceMargin = val();
    else if (a === "--help" || a === "-h") {
      console.log("usage: bench/proftpd/run.ts [--runs N] [--json FILE] [--only understudy,keepalived] [--ttl 2s --fence-margin 500ms]");
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  });
  if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 20) throw new Error("--runs must be 1..20");
  return o;
}

const log = (s: string) => console.log(s);
const epoch = () => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------ prober

interface Attempt {
  ok: boolean;
  proto: Proto;
  start: number;
  end: number;
  reason: string;
}

class LoginProber {
  private constructor(
    readonly file: string,
    readonly child: ChildProcess,
  ) {}

  static async start(lab: Lab, site: ProftpdSite, tag: string): Promise<LoginProber> {
    const file = join(lab.logDir, `login-prober-${tag}.log`);
    const pw = join(lab.dir, "client", "ftps-password");
    writeFileSync(pw, `${site.password}\n`, { mode: 0o600 });
    const child = lab.spawn(
      lab.client,
      [
        process.execPath,
        PROBER,
        "--host",
        lab.vipAddress,
        "--out",
        file,
        "--user",
        FTP_USER,
        "--password-file",
        pw,
        "--ca",
        site.ca,
        "--key",
        lab.clientKey,
        "--known-hosts",
        site.knownHosts,
        "--interval-ms",
        String(INTERVAL_MS),
        "--timeout-ms",
        String(ATTEMPT_TIMEOUT_MS),
        "--max-seconds",
        "900",
        "--max-inflight",
        "4",
        "--slow-ms",
        "1000",
        "--steady-ms",
        "1000",
      ],
      { stdin: "pipe", logFile: join(lab.logDir, `login-prober-${tag}.stderr.log`) },
    );
    child.stdin?.on("error", () => undefined);
    const p = new LoginProber(file, child);
    if (!(await pollUntil(() => (existsSync(file) ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 }))) throw new Error("login prober did not start");
    return p;
  }

  attempts(): Attempt[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, "utf8")
      .split("\n")
      .flatMap((l) => {
        const m = /^([SF]) (ftps|sftp) ([\d.]+) ([\d.]+) ?(.*)$/.exec(l);
        return m ? [{ ok: m[1] === "S", proto: m[2] as Proto, start: Number(m[3]), end: Number(m[4]), reason: m[5] ?? "" }] : [];
      });
  }

  /** Each protocol's last `consecutive` logins that started at/after `since` succeeded (bounded). */
  async waitAllOk(since: number, timeoutMs: number, consecutive = 3): Promise<boolean> {
    return (
      (await pollUntil(
        () => {
          const a = this.attempts();
          return PROTOS.every((p) => {
            const mine = a.filter((x) => x.proto === p && x.start >= since).sort((x, y) => x.start - y.start);
            return mine.length >= consecutive && mine.slice(-consecutive).every((x) => x.ok);
          })
            ? true
            : undefined;
        },
        { timeoutMs, intervalMs: 25 },
      )) === true
    );
  }

  async stop(): Promise<void> {
    this.child.stdin?.end();
    await Promise.race([new Promise((r) => this.child.once("exit", r)), sleep(5000)]);
  }
}

/**
 * outageMs: the failure window (first failed login's start, not before the fault, to the first
 * good login after the last failed one). fromFaultMs: the fault (the kill / `ip link` command
 * returned; the switchover request sent) to that first good login; 0 when nothing failed.
 */
interface Outage {
  outageMs: number | null;
  fromFaultMs: number | null;
  failures: number;
  reasons: Record<string, number>;
}

/**
 * The outage of one protocol around a fault at t0 (epoch ms), from attempts that ended after t0;
 * failures that started after `recovered` (when every protocol was back) belong to what followed.
 */
function outageOf(attempts: readonly Attempt[], proto: Proto, t0: number, tFault: number, recovered: number): Outage {
  const a = attempts.filter((x) => x.proto === proto && x.end >= t0).sort((x, y) => x.start - y.start);
  const fails = a.filter((x) => !x.ok && x.start < recovered);
  const reasons: Record<string, number> = {};
  for (const f of fails) reasons[f.reason] = (reasons[f.reason] ?? 0) + 1;
  if (fails.length === 0) return { outageMs: 0, fromFaultMs: 0, failures: 0, reasons };
  const first = Math.max(t0, fails[0]!.start);
  const lastFailStart = Math.max(...fails.map((f) => f.start));
  const back = a.find((x) => x.ok && x.start > lastFailStart);
  return {
    outageMs: back ? Math.round(back.start - first) : null,
    fromFaultMs: back ? Math.round(Math.max(0, back.start - tFault)) : null,
    failures: fails.length,
    reasons,
  };
}

interface RunRecord {
  peer: Peer;
  fault: Fault;
  run: number;
  from: string;
  to: string | null;
  ok: boolean;
  ftps: Outage;
  sftp: Outage;
  error?: string;
  t0: number;
  tFault: number;
  recovered: number | null;
}

/**
 * Apply the fault and wait until every protocol is back through the new holder. The outages are
 * computed later (finish()), once attempts still in flight from the outage have ended: the
 * caller restores the old node meanwhile.
 */
async function measure(prober: LoginProber, lab: Lab, peer: Peer, fault: Fault, run: number, from: string, act: () => Promise<void>, newHolder: () => Promise<string | null>): Promise<RunRecord> {
  const t0 = epoch();
  const none = (): Outage => ({ outageMs: null, fromFaultMs: null, failures: 0, reasons: {} });
  const rec: RunRecord = { peer, fault, run, from, to: null, ok: false, ftps: none(), sftp: none(), t0, tFault: t0, recovered: null };
  try {
    await act();
    // kill -9 and link down: the fault is complete when the command returned; a switchover starts with the request.
    if (fault !== "switchover") rec.tFault = epoch();
    // The new holder has the VIP configured (a kill -9'd keepalived leaves it on the old one too:
    // the observer's two-holder count shows that).
    const moved = await pollUntil(
      async () => {
        const to = await newHolder();
        if (!to || to === from) return undefined;
        return (await lab.vipConfiguredOn()).includes(to) ? to : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    if (!moved) throw new Error("the VIP did not move to a new holder within 30 s");
    rec.to = moved;
    if (!(await prober.waitAllOk(t0, 30_000))) throw new Error("logins did not come back within 30 s");
    rec.recovered = epoch();
  } catch (e) {
    rec.error = (e as Error).message;
  }
  return rec;
}

/** Compute the outages once the attempts in flight during the outage have ended (bounded by their timeout). */
async function finish(prober: LoginProber, rec: RunRecord): Promise<RunRecord> {
  if (rec.recovered !== null) {
    const wait = rec.recovered + ATTEMPT_TIMEOUT_MS + 300 - epoch();
    if (wait > 0) await sleep(wait);
    const attempts = prober.attempts();
    rec.ftps = outageOf(attempts, "ftps", rec.t0, rec.tFault, rec.recovered);
    rec.sftp = outageOf(attempts, "sftp", rec.t0, rec.tFault, rec.recovered);
    rec.ok = rec.ftps.outageMs !== null && rec.sftp.outageMs !== null;
  }
  const { peer, fault, run, from } = rec;
  const f = (o: Outage) => (o.outageMs === null ? "n/a" : `${o.outageMs} ms (from the fault ${o.fromFaultMs} ms)`);
  log(
    `  ${peer} ${fault} ${run}: ${from} -> ${rec.to ?? "?"}  ftps ${f(rec.ftps)} (${rec.ftps.failures} failed ${JSON.stringify(rec.ftps.reasons)})  sftp ${f(rec.sftp)} (${rec.sftp.failures} failed ${JSON.stringify(rec.sftp.reasons)})${rec.error ? `  ERROR ${rec.error}` : ""}`,
  );
  return rec;
}

interface PeerResult {
  peer: Peer;
  runs: RunRecord[];
  observer: { samples: number; maxHolders: number; twoHolder: number } | null;
  error?: string;
  wallSeconds: number;
}

function observerCount(obs: Observer, samples: ReturnType<Observer["samples"]>) {
  const holders = obs.holders(samples);
  return { samples: samples.length, maxHolders: obs.maxSimultaneousHolders(samples), twoHolder: holders.filter((h) => h.holders.length >= 2).length };
}

// -------------------------------------------------------------- understudy

function sameRoots(from: LabNode, to: LabNode): boolean {
  return ROOT_NAMES.every((r) => JSON.stringify(snapshotTree(rootPath(to, r))) === JSON.stringify(snapshotTree(rootPath(from, r))));
}

async function understudyPeer(o: Options): Promise<PeerResult> {
  const w0 = performance.now();
  log(`=== understudy: 3 agents, ProFTPD cold (process backend), ttl ${o.ttl}, fence_margin ${o.fenceMargin}, LAN-tuned etcd`);
  const lab = await Lab.create({ nodes: 3, etcdTuned: true });
  const res: PeerResult = { peer: "understudy", runs: [], observer: null, wallSeconds: 0 };
  let obs: Observer | undefined;
  try {
    const site = await makeProftpdSite(lab, lab.nodes[0]!);
    const c = await LabCluster.create({
      lab,
      start: false,
      ttl: o.ttl,
      fenceMargin: o.fenceMargin,
      priorities: [300, 200, 100],
      daemonCommand: proftpdCommand,
      // Probes report only (critical: false): on this shared 2-core box (load 20-30) ProFTPD's
      // greeting after a fault's login storm takes seconds, and a critical probe then restarts the
      // daemon and hands over, again and again (no flap damping on main yet): the figure would be
      // the ping-pong, not the fault. Measured: see docs/operations.md, ProFTPD.
      probesYaml: () => proftpdProbesYaml(site, { interval: "2s", timeout: "2s", fall: 3, critical: false }),
      sync: {
        rootPaths: proftpdRootPaths,
        rootsYaml: (n) => proftpdRootsYaml(n),
        authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
        extraYaml: "  reconcile_interval: 5s\n  retry_max: 1s\n  maximum_lag_on_failover: 10m",
      },
    });
    const [n1] = lab.nodes as [LabNode];
    c.startAgent(n1.name);
    if ((await c.waitForLeader({ timeoutMs: 30_000 }))?.node !== n1.name) throw new Error("n1 did not become the first primary");
    for (const n of lab.nodes.slice(1)) c.startAgent(n.name);
    const allStandby = async () => {
      const leader = (await c.leader())?.node;
      const others = lab.nodes.filter((n) => n.name !== leader);
      const ok =
        (await c.waitForStandbys(
          others.map((n) => n.name),
          60_000,
        )) && (await pollUntil(() => (others.every((n) => sameRoots(lab.node(leader!), n)) ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 }));
      if (!ok) log("  (the standbys did not all come back healthy and in sync within 90 s; going on)");
    };
    await allStandby();
    obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 800 });
    const prober = await LoginProber.start(lab, site, "understudy");
    if (!(await prober.waitAllOk(epoch(), 30_000))) throw new Error("no login through the VIP before the first fault");
    for (let run = 1; run <= o.runs; run++) {
      for (const fault of FAULTS) {
        const from = (await c.leader())?.node;
        if (!from) throw new Error("no primary");
        const ns = lab.node(from);
        const act = async () => {
          if (fault === "kill9") {
            await c.signalAgent(from, "SIGKILL");
            for (const pid of lab.pidsIn(ns, "proftpd")) process.kill(pid, "SIGKILL");
          } else if (fault === "linkdown") await lab.execOk(ns, ["ip", "link", "set", "eth0", "down"]);
          else {
            const r = await c.cli(["switchover"], { via: from });
            if (r.code !== 0) throw new Error(`switchover refused: ${r.stdout}${r.stderr}`);
          }
        };
        const rec = await measure(prober, lab, "understudy", fault, run, from, act, async () => (await c.leader())?.node ?? null);
        // The old primary "reboots" (kill -9), gets its link back, or just stays a standby.
        if (fault === "kill9") c.startAgent(from);
        if (fault === "linkdown") await lab.execOk(ns, ["ip", "link", "set", "eth0", "up"]);
        res.runs.push(await finish(prober, rec));
        await allStandby();
      }
    }
    await prober.stop();
    const samples = await obs.stop();
    res.observer = observerCount(obs, samples);
  } catch (e) {
    res.error = (e as Error).message;
    log(`  understudy ERROR ${res.error}`);
  } finally {
    await obs?.stop().catch(() => undefined);
    await lab.teardown();
  }
  res.wallSeconds = Math.round((performance.now() - w0) / 1000);
  return res;
}

// -------------------------------------------------------------- keepalived

async function keepalivedPeer(o: Options): Promise<PeerResult> {
  const w0 = performance.now();
  log("=== keepalived: VRRP unicast, advert_int 1, nopreempt, track script = ProFTPD listening on :21 and :2022, ProFTPD warm on every node");
  const lab = await Lab.create({ nodes: 3, startEtcd: false });
  const res: PeerResult = { peer: "keepalived", runs: [], observer: null, wallSeconds: 0 };
  let obs: Observer | undefined;
  try {
    const [n1] = lab.nodes as [LabNode];
    const site = await makeProftpdSite(lab, n1);
    // The same files on every node, copied once (keepalived syncs nothing).
    for (const n of lab.nodes.slice(1))
      for (const r of ROOT_NAMES) {
        mkdirSync(rootPath(n, r), { recursive: true });
        await runOk(["cp", "-a", `${rootPath(n1, r)}/.`, rootPath(n, r)]);
      }
    const startFtpd = async (n: LabNode) => {
      lab.spawn(n, proftpdCommand(n), { logFile: join(lab.logDir, `${n.name}-proftpd.log`) });
      if (!(await lab.waitForListen(n, 2022, 10_000))) throw new Error(`proftpd did not start on ${n.name}`);
    };
    for (const n of lab.nodes) await startFtpd(n);
    for (const n of lab.nodes) startKeepalived(lab, n);
    // The VRRP master: the node that configured the VIP last is the one keepalived made master.
    const holder = async () => {
      const on = await lab.vipConfiguredOn();
      return on.length === 1 ? on[0]! : undefined;
    };
    const newHolder = async (from: string) => (await lab.vipConfiguredOn()).find((x) => x !== from) ?? null;
    if (!(await pollUntil(holder, { timeoutMs: 30_000, intervalMs: 100 }))) throw new Error("no VRRP master within 30 s");
    obs = await lab.startObserver({ intervalMs: 20, maxSeconds: 800 });
    const prober = await LoginProber.start(lab, site, "keepalived");
    if (!(await prober.waitAllOk(epoch(), 30_000))) throw new Error("no login through the VIP before the first fault");
    for (let run = 1; run <= o.runs; run++) {
      for (const fault of FAULTS) {
        const from = await holder();
        if (!from) throw new Error("no single VRRP master");
        const n = lab.node(from);
        const act = async () => {
          if (fault === "kill9") {
            for (const pid of [...lab.pidsIn(n, "keepalived"), ...lab.pidsIn(n, "proftpd")]) process.kill(pid, "SIGKILL");
          } else if (fault === "linkdown") await lab.execOk(n, ["ip", "link", "set", "eth0", "down"]);
          else for (const pid of lab.pidsIn(n, "keepalived")) process.kill(pid, "SIGTERM");
        };
        const rec = await measure(prober, lab, "keepalived", fault, run, from, act, () => newHolder(from));
        if (fault === "kill9") {
          // A killed keepalived leaves its address behind (nothing removes it): a reboot would clear it.
          await runOk(["ip", "-n", n.ns, "addr", "del", lab.vip, "dev", "eth0"]).catch(() => undefined);
          await startFtpd(n);
        }
        if (fault === "linkdown") await lab.execOk(n, ["ip", "link", "set", "eth0", "up"]);
        if (fault !== "linkdown") {
          await pollUntil(() => (lab.pidsIn(n, "keepalived").length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
          startKeepalived(lab, n);
        }
        res.runs.push(await finish(prober, rec));
        // Settle: the returning node is a BACKUP (nopreempt), one holder.
        await sleep(1000);
        if (!(await holder())) throw new Error("keepalived did not settle on one master");
      }
    }
    await prober.stop();
    const samples = await obs.stop();
    res.observer = observerCount(obs, samples);
  } catch (e) {
    res.error = (e as Error).message;
    log(`  keepalived ERROR ${res.error}`);
  } finally {
    await obs?.stop().catch(() => undefined);
    await lab.teardown();
  }
  res.wallSeconds = Math.round((performance.now() - w0) / 1000);
  return res;
}

// ------------------------------------------------------------------ report

function report(results: PeerResult[]): string {
  const s = (v: Stats | undefined) => (v ? [`${v.median.toFixed(0)}`, `${v.p95.toFixed(0)}`, `${v.min.toFixed(0)}`, `${v.max.toFixed(0)}`] : ["-", "-", "-", "-"]);
  const rows: string[][] = [["peer / fault / protocol", "n", "window median ms", "p95", "min", "max", "from fault median ms", "p95", "failed runs"]];
  const medians: Record<string, number | undefined> = {};
  for (const r of results)
    for (const fault of FAULTS)
      for (const proto of PROTOS) {
        const runs = r.runs.filter((x) => x.fault === fault);
        const v = runs.map((x) => x[proto].outageMs).filter((x): x is number => x !== null);
        const ff = stats(runs.map((x) => x[proto].fromFaultMs).filter((x): x is number => x !== null));
        const st = stats(v);
        medians[`${r.peer}/${fault}/${proto}`] = ff?.median;
        rows.push([`${r.peer} ${fault} ${proto}`, String(v.length), ...s(st), ff ? ff.median.toFixed(0) : "-", ff ? ff.p95.toFixed(0) : "-", String(runs.filter((x) => !x.ok).length)]);
      }
  const lines = [table(rows), ""];
  for (const r of results) {
    lines.push(
      `${r.peer}: ${r.runs.length} faults in ${r.wallSeconds} s; ARP observer: ${r.observer ? `${r.observer.samples} samples, max ${r.observer.maxHolders} holder(s), ${r.observer.twoHolder} two-holder samples` : "n/a"}${r.error ? `; ERROR ${r.error}` : ""}`,
    );
  }
  for (const fault of FAULTS)
    for (const proto of PROTOS) {
      const u = medians[`understudy/${fault}/${proto}`];
      const k = medians[`keepalived/${fault}/${proto}`];
      if (u !== undefined && k !== undefined && k > 0)
        lines.push(`${fault} ${proto}, fault -> first good login: understudy median ${(u / 1000).toFixed(2)} s vs keepalived ${(k / 1000).toFixed(2)} s (${(u / k).toFixed(2)}x)`);
    }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync("/usr/lib/proftpd/mod_tls.so") || !existsSync("/usr/lib/proftpd/mod_sftp.so")) throw new Error("needs proftpd-mod-crypto (mod_tls, mod_sftp): scripts/install-deps.sh test");
  const w0 = performance.now();
  const results: PeerResult[] = [];
  if (o.only.has("understudy")) results.push(await understudyPeer(o));
  if (o.only.has("keepalived")) results.push(await keepalivedPeer(o));
  const text = report(results);
  log(`\n${text}`);
  const wall = Math.round((performance.now() - w0) / 1000);
  log(`\nwall time ${wall} s`);
  if (o.json) {
    const file = resolve(o.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), options: { runs: o.runs, ttl: o.ttl, fenceMargin: o.fenceMargin, intervalMs: INTERVAL_MS, attemptTimeoutMs: ATTEMPT_TIMEOUT_MS }, node: process.version, cores: cpus().length, wallSeconds: wall, results, report: text.split("\n") }, null, 2)}\n`,
    );
  }
  if (results.some((r) => r.error || r.runs.some((x) => !x.ok))) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
