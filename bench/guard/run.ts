/**
 * Fence guard footprint and reaction time: the native guard
 * (dist/fence/understudy-fence-guard) against the Node guard it replaced
 * (src/fence/guard-main.ts at --old-ref, compiled with tsc into a temporary
 * directory and run with this node), with an idle `node` process as the
 * peer in the same run.
 *
 * For each of --runs starts: VmRSS (and its anonymous / file-backed parts)
 * from /proc idle (connected, disarmed) and armed (after a heartbeat), then
 * the fence latency: a heartbeat with a deadline 300 ms ahead and no other,
 * where the first fencing action (the keepalived track file, written by the
 * guard itself before any child) is a FIFO this script reads. The latency is
 * read time - deadline on CLOCK_MONOTONIC: an upper bound of the guard's own
 * (it includes this process's wake-up), the same for both guards. The
 * native guard also logs how late it started the fence by its own clock.
 *
 *   node --import tsx bench/guard/run.ts [--runs 7] [--old-ref REF]
 *
 * Needs `npm run build`; no root, no network.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { forEachArg, stats, table } from "../failover/lib.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NATIVE = join(ROOT, "dist/fence/understudy-fence-guard");
const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let runs = 7;
let oldRef: string | undefined;
forEachArg(process.argv.slice(2), (flag, value) => {
  if (flag === "--runs") runs = Number(value());
  else if (flag === "--old-ref") oldRef = value();
  else throw new Error(`unknown option ${flag} (--runs N, --old-ref REF)`);
});
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs: 1..50");
if (!existsSync(NATIVE)) throw new Error(`${NATIVE} missing: npm run build`);

const git = (args: string[]) => {
  const r = spawnSync("git", args, { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/** The Node guard as it was: its sources at the last commit that had them, compiled with this repo's tsc. */
function buildOldGuard(work: string): string {
  const ref = oldRef ?? `${git(["log", "-1", "--format=%H", "--", "src/fence/guard-main.ts"]).trim()}^`;
  const files = ["fence/guard-main.ts", "fence/core.ts", "fence/watchdog.ts", "fence/json-lines.ts", "platform/clock.ts", "platform/command.ts", "errors/catalogue.ts"];
  for (const f of files) {
    mkdirSync(dirname(join(work, "src", f)), { recursive: true });
    writeFileSync(join(work, "src", f), git(["show", `${ref}:src/${f}`]));
  }
  writeFileSync(join(work, "package.json"), '{ "type": "module" }\n'); // ES modules, as in the repo
  const tsc = spawnSync(
    process.execPath,
    [
      join(ROOT, "node_modules/typescript/bin/tsc"),
      "--outDir",
      join(work, "dist"),
      "--rootDir",
      join(work, "src"),
      "--module",
      "NodeNext",
      "--moduleResolution",
      "NodeNext",
      "--target",
      "ES2022",
      "--strict",
      "--skipLibCheck",
      "--typeRoots",
      join(ROOT, "node_modules/@types"),
      "--types",
      "node",
      join(work, "src/fence/guard-main.ts"),
    ],
    { encoding: "utf8", timeout: 120_000 },
  );
  if (tsc.status !== 0) throw new Error(`tsc of the old guard (${ref}) failed: ${tsc.stdout}${tsc.stderr}`);
  return join(work, "dist/fence/guard-main.js");
}

interface Rss {
  rss: number;
  anon: number;
  file: number;
}
function rss(pid: number): Rss {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") + kb("RssShmem") };
}

async function until<T>(fn: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const end = mono() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (mono() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

/** selfLateMs: how late the guard says it started the fence (native guard's log only). */
interface Sample {
  startMs: number;
  idle: Rss;
  armed: Rss;
  fenceLatencyMs: number;
  selfLateMs?: number;
}

async function once(argv: string[], dir: string): Promise<Sample> {
  const sock = join(dir, "g.sock");
  const pidfile = join(dir, "g.pid");
  const track = join(dir, "track");
  rmSync(track, { force: true });
  if (spawnSync("mkfifo", [track]).status !== 0) throw new Error("mkfifo failed");
  // Our reader, plus a writer of our own so the guard's open never blocks and we never see EOF.
  const rfd = openSync(track, constants.O_RDONLY | constants.O_NONBLOCK);
  const wfd = openSync(track, constants.O_WRONLY | constants.O_NONBLOCK);
  let fencedAt: number | undefined;
  const reader = new Socket({ fd: rfd, readable: true, writable: false });
  reader.on("data", () => (fencedAt ??= mono()));
  const t0 = mono();
  const child: ChildProcess = spawn(argv[0]!, [...argv.slice(1), "--socket", sock, "--pidfile", pidfile], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  let exited = false;
  child.on("exit", () => (exited = true));
  try {
    await until(() => (existsSync(pidfile) && readFileSync(pidfile, "utf8").endsWith("\n") ? true : undefined), "pidfile");
    const startMs = mono() - t0;
    const c = await new Promise<Socket>((res, rej) => {
      const s = connect(sock);
      s.once("connect", () => res(s));
      s.once("error", rej);
    });
    const send = (m: unknown) => c.write(`${JSON.stringify(m)}\n`);
    send({ watchdog: null });
    await sleep(300);
    const idle = rss(child.pid!);
    const orders = { dropVip: null, daemonPidfile: null, stopArgv: null, keepalivedTrackFile: track };
    for (let i = 0; i < 5; i++) {
      send({ arm: { deadlineMs: mono() + 60_000, orders } });
      await sleep(60);
    }
    const armed = rss(child.pid!);
    const D = mono() + 300;
    send({ arm: { deadlineMs: D, orders } });
    await until(() => fencedAt, "the fence");
    await until(() => (exited ? true : undefined), "the guard to exit");
    c.destroy();
    const late = /([\d.]+) ms after the deadline/.exec(log);
    return { startMs, idle, armed, fenceLatencyMs: fencedAt! - D, ...(late ? { selfLateMs: Number(late[1]) } : {}) };
  } finally {
    if (!exited) child.kill("SIGKILL");
    reader.destroy();
    closeSync(wfd);
  }
}

function idleNodeRss(): Promise<Rss> {
  const p = spawn(process.execPath, ["-e", "setInterval(() => {}, 1e9)"], { stdio: "ignore" });
  return sleep(500).then(() => {
    const r = rss(p.pid!);
    p.kill("SIGKILL");
    return r;
  });
}

const work = mkdtempSync(join(tmpdir(), "understudy-bench-guard-"));
try {
  const oldMain = buildOldGuard(join(work, "old"));
  const guards: [string, string[]][] = [
    ["node guard (before)", [process.execPath, oldMain]],
    ["native guard", [NATIVE]],
  ];
  const results = new Map<string, Sample[]>(guards.map(([n]) => [n, []]));
  const peer: Rss[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, so a busy moment of the machine falls on both.
    for (const [name, argv] of guards) {
      const dir = join(work, `run-${i}-${name.replace(/\W+/g, "-")}`);
      mkdirSync(dir);
      results.get(name)!.push(await once(argv, dir));
    }
    peer.push(await idleNodeRss());
  }
  const med = (v: number[]) => stats(v)!.median;
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  const rows = [["", "start ms", "idle RSS MB", "anon", "file", "armed RSS MB", "fence latency ms (median)", "p95", "max", "own log: late ms (median)", "max"]];
  for (const [name, samples] of results) {
    const lat = stats(samples.map((s) => s.fenceLatencyMs))!;
    rows.push([
      name,
      med(samples.map((s) => s.startMs)).toFixed(0),
      mb(med(samples.map((s) => s.idle.rss))),
      mb(med(samples.map((s) => s.idle.anon))),
      mb(med(samples.map((s) => s.idle.file))),
      mb(med(samples.map((s) => s.armed.rss))),
      lat.median.toFixed(2),
      lat.p95.toFixed(2),
      lat.max.toFixed(2),
      ...((l) => (l ? [l.median.toFixed(3), l.max.toFixed(3)] : ["", ""]))(stats(samples.flatMap((s) => (s.selfLateMs === undefined ? [] : [s.selfLateMs])))),
    ]);
  }
  rows.push(["peer: idle `node -e`", "", mb(med(peer.map((p) => p.rss))), mb(med(peer.map((p) => p.anon))), mb(med(peer.map((p) => p.file))), "", "", "", "", "", ""]);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`fence guard, ${runs} starts each (medians), node ${process.version}, load ${load}`);
  console.log(table(rows));
} finally {
  rmSync(work, { recursive: true, force: true });
}
