// CLI start-up: medians of N runs of `node -e 0` (the floor), `understudy
// --version`, `--help`, and `status` against a real etcd on 127.0.0.1 (started
// and stopped here; by --etcd, and by a node's --config) and against a node's
// real REST API (buildApi over that etcd, --api).
// Cases are interleaved run by run so a busy machine slows them alike.
//   npm run bench:cli [-- --runs 15] [--node /path/to/node]
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadavg, tmpdir } from "node:os";
import { EtcdCoordinator } from "../../src/coordinator/etcd.js";
import { buildApi } from "../../src/api/server.js";
import { AgentMetrics } from "../../src/api/metrics.js";
import { SystemClock } from "../../src/platform/clock.js";
import { silentLogger } from "../../src/platform/logger.js";
import type { MemberRecord } from "../../src/coordinator/port.js";
import type { NodeView } from "../../src/ha/events.js";
import { startEtcd } from "./etcd.js";
import { NODE_FLAGS } from "../../test/lab/harness/cluster.js";

const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const FLAGS = NODE_FLAGS; // the CLI's shebang flags

const { values } = parseArgs({ options: { runs: { type: "string", default: "15" }, node: { type: "string", default: process.execPath } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 3 || runs > 200) throw new Error("--runs takes 3 to 200");
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
const node = values.node!;

// CPU time (user + sys) from GNU time (Debian package `time`), when installed:
// on a busy machine it varies far less than wall time.
const GNU_TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const scratch = mkdtempSync(join(tmpdir(), "understudy-bench-cli-"));

/** Wall (and CPU) time from spawn to exit; async, because this process serves the API that `status --api` asks. */
function timed(cmd: string, argv: readonly string[]): Promise<{ ms: number; cpuMs: number | undefined; status: number | null; stderr: string }> {
  const cpuFile = join(scratch, "cpu");
  const [file, args] = GNU_TIME ? [GNU_TIME, ["-f", "%U %S", "-o", cpuFile, cmd, ...argv]] : [cmd, [...argv]];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("exit", (status) => {
      const ms = performance.now() - t0;
      let cpuMs: number | undefined;
      if (GNU_TIME) {
        const [u, s] = readFileSync(cpuFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
        cpuMs = (u! + s!) * 1000;
      }
      resolve({ ms, cpuMs, status, stderr });
    });
  });
}

function member(name: string, role: "primary" | "standby"): MemberRecord {
  return {
    node: name,
    role,
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 3,
    address: "127.0.0.1",
    version: "bench",
    decision: role === "primary" ? `no action: I am ${name}` : "no action: n1 holds the lease",
    probes: {},
    vipHeld: role === "primary",
    daemonRunning: role === "primary",
    updatedAt: new Date().toISOString(),
  };
}

const etcd = await startEtcd();
const clock = new SystemClock();
const coordinator = new EtcdCoordinator({ endpoints: [etcd.endpoint], prefix: "/understudy", cluster: "bench", requestTimeoutMs: 3000, dialTimeoutMs: 3000, clock, log: silentLogger() });
let app: ReturnType<typeof buildApi> | undefined;
try {
  const lease = await coordinator.grantLease(3_600_000); // outlives any run: the keys must not expire mid-bench
  await coordinator.campaign("n1", lease.id, new Date().toISOString());
  for (const m of [member("n1", "primary"), member("n2", "standby"), member("n3", "standby")]) await coordinator.putMember(m, lease.id);
  const view: NodeView = {
    node: "n1",
    acting: "primary",
    term: 1,
    leaseRemainingMs: 5000,
    etcdReachable: true,
    decision: "",
    sinceLastCycleMs: 0,
    vipHeld: true,
    daemonRunning: true,
    probes: [],
    healthy: true,
    notReady: null,
  };
  app = buildApi({
    view: () => view,
    coordinator,
    metrics: new AgentMetrics(() => view, { cluster: "bench", node: "n1" }),
    clock,
    log: silentLogger(),
    token: null,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
  });
  const apiUrl = await app.listen({ host: "127.0.0.1", port: 0 });
  // A node's config as operators pass it: status then also loads the config (yaml + zod).
  const configFile = join(scratch, "understudy.yaml");
  writeFileSync(
    configFile,
    `cluster: bench\nnode: { name: n1, address: 127.0.0.1 }\netcd: { endpoints: ["${etcd.endpoint}"] }\ndaemon: { backend: systemd, unit: ssh.service }\napi: { listen: "${new URL(apiUrl).host}" }\n`,
  );

  const cases: { name: string; argv: string[]; code: number }[] = [
    { name: "node -e 0", argv: ["-e", "0"], code: 0 },
    { name: "understudy --version", argv: [...FLAGS, CLI, "--version"], code: 0 },
    { name: "understudy --help", argv: [...FLAGS, CLI, "--help"], code: 0 },
    { name: "understudy status (etcd)", argv: [...FLAGS, CLI, "status", "--etcd", etcd.endpoint, "--cluster", "bench"], code: 0 },
    { name: "understudy status --config", argv: [...FLAGS, CLI, "status", "--config", configFile], code: 0 },
    { name: "understudy status --api", argv: [...FLAGS, CLI, "status", "--api", apiUrl], code: 0 },
  ];
  const times = new Map(cases.map((c) => [c.name, [] as number[]]));
  const cpu = new Map(cases.map((c) => [c.name, [] as number[]]));
  // One unmeasured round: warms the page cache and (Node >= 22.1) the compile cache.
  for (let r = -1; r < runs; r++) {
    for (const c of cases) {
      const { ms, cpuMs, status, stderr } = await timed(node, c.argv);
      if (status !== c.code) throw new Error(`${c.name}: exit ${status}, wanted ${c.code}: ${stderr}`);
      if (r >= 0) times.get(c.name)!.push(ms);
      if (r >= 0 && cpuMs !== undefined) cpu.get(c.name)!.push(cpuMs);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const floor = median(times.get("node -e 0")!);
  const cpuFloor = GNU_TIME ? median(cpu.get("node -e 0")!) : 0;
  const s3 = (ms: number) => (ms / 1000).toFixed(3);
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  console.log(
    `CLI start-up, node ${version}, ${runs} runs each, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  console.log(`| command | wall median s | min s | max s | over \`node -e 0\` |${GNU_TIME ? " CPU median s | CPU over `node -e 0` |" : ""}`);
  console.log(`|---|---|---|---|---|${GNU_TIME ? "---|---|" : ""}`);
  for (const c of cases) {
    const xs = times.get(c.name)!;
    const m = median(xs);
    const peer = c.name === "node -e 0";
    const cpuCols = GNU_TIME ? ` ${s3(median(cpu.get(c.name)!))} | ${peer ? "-" : `+${s3(median(cpu.get(c.name)!) - cpuFloor)}`} |` : "";
    console.log(`| ${c.name} | ${s3(m)} | ${s3(Math.min(...xs))} | ${s3(Math.max(...xs))} | ${peer ? "-" : `+${s3(m - floor)}`} |${cpuCols}`);
  }
} finally {
  await app?.close();
  await coordinator.close();
  await etcd.stop();
  rmSync(scratch, { recursive: true, force: true });
}
