// A throw-away etcd on 127.0.0.1 (random ports, data in a temp dir) for the CLI
// bench and the loopback lab tests (test/lab/cli-status.lab.test.ts,
// test/lab/etcd.lab.test.ts). Bounded start, always cleaned up by stop().
//
// `secure: true` is the lab's default setup (test/lab/harness/etcd-auth.ts, as
// Lab.create does it): client TLS with client-certificate verification, and
// etcd authentication with root plus a least-privilege user whose role reaches
// `rolePrefixes` only. Plain http (the default here) is what the CLI bench
// measures: `status --etcd` over etcd's JSON gateway, which cannot serve an etcd
// that wants client certificates (src/cli/etcd-grpc-read.ts says why).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authSetupSteps, etcdServerTlsArgs, etcdctlTlsArgs, makeEtcdCredentials, type LabEtcdCredentials } from "../../test/lab/harness/etcd-auth.js";
import { run, type ExecResult } from "../../test/lab/harness/exec.js";

export interface LoopbackEtcd {
  readonly endpoint: string;
  /** The CA, certificates, the agents' user and password file (secure only). */
  readonly credentials: LabEtcdCredentials | undefined;
  /** etcd.tls and etcd.auth for an EtcdCoordinator / readEtcdSecurity (secure only). */
  readonly securitySettings: { tls: { ca: string; cert: string; key: string }; auth: { user: string; password_file: string } } | undefined;
  /** The same as a flow-style YAML fragment (", tls: {...}, auth: {...}"), empty when plain. */
  readonly securityYaml: string;
  /** etcdctl against this etcd (as root once auth is on). */
  etcdctl(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** Send a signal to the etcd process (SIGSTOP/SIGCONT to freeze it). */
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  bin?: string;
  startTimeoutMs?: number;
  /** TLS + client certificates + auth (default false: plain http, what the CLI bench measures). */
  secure?: boolean;
  /** Key prefixes the agents' role may read and write (secure only); default ["/understudy/lab/"]. */
  rolePrefixes?: readonly string[];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<LoopbackEtcd> {
  const bin = opts.bin ?? "etcd";
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  const dir = mkdtempSync(join(tmpdir(), "understudy-cli-etcd-"));
  let creds: LabEtcdCredentials | undefined;
  try {
    if (opts.secure) {
      const made = await makeEtcdCredentials(join(dir, "pki"), []);
      creds = { ...made, rolePrefix: opts.rolePrefixes?.[0] ?? made.rolePrefix };
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `${creds ? "https" : "http"}://127.0.0.1:${client}`;
  let child: ChildProcess | undefined = spawn(
    bin,
    [
      "--name",
      "bench",
      "--data-dir",
      join(dir, "data"),
      "--listen-client-urls",
      endpoint,
      "--advertise-client-urls",
      endpoint,
      "--listen-peer-urls",
      `http://127.0.0.1:${peer}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peer}`,
      "--initial-cluster",
      `bench=http://127.0.0.1:${peer}`,
      "--log-level",
      "error",
      ...(creds ? etcdServerTlsArgs(creds) : []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child!.once("exit", () => r()));
  let authOn = false;
  const etcdctl = (args: readonly string[], o: { input?: string; timeoutMs?: number } = {}) =>
    run(["etcdctl", `--endpoints=${endpoint}`, ...(creds ? etcdctlTlsArgs(creds) : []), ...(creds && authOn ? [`--user=root:${creds.rootPassword}`] : []), ...args], {
      timeoutMs: o.timeoutMs ?? 15_000,
      env: { ETCDCTL_API: "3" },
      ...(o.input !== undefined ? { input: o.input } : {}),
    });
  const stop = async () => {
    if (child) {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const killer = setTimeout(() => child?.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(killer);
      child = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const healthy = async () =>
    creds
      ? (await etcdctl(["endpoint", "health", "--dial-timeout=1s", "--command-timeout=1s"], { timeoutMs: 3000 })).code === 0
      : fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) }).then(
          (r) => r.ok,
          () => false,
        );
  const deadline = performance.now() + startTimeoutMs;
  let up = false;
  while (performance.now() < deadline) {
    if (await healthy()) {
      up = true;
      break;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!up) {
    await stop();
    throw new Error(`etcd did not become healthy on ${endpoint} within ${startTimeoutMs} ms: ${stderr}`);
  }
  try {
    if (creds) {
      // The setup docs/security.md describes (root, then the agents' least-privilege role), as Lab.create does it.
      const agentPassword = readFileSync(creds.passwordFile, "utf8").trim();
      for (const step of authSetupSteps(creds, agentPassword)) {
        const r = await etcdctl(step.args, step.input !== undefined ? { input: step.input } : {});
        if (r.code !== 0) throw new Error(`etcdctl ${step.args.slice(0, 2).join(" ")} failed: ${r.stderr.trim()}`);
      }
      authOn = true;
      for (const p of opts.rolePrefixes?.slice(1) ?? []) {
        const r = await etcdctl(["role", "grant-permission", creds.user, "readwrite", p, "--prefix=true"]);
        if (r.code !== 0) throw new Error(`etcdctl role grant-permission ${p} failed: ${r.stderr.trim()}`);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const securitySettings = creds ? { tls: { ca: creds.ca, cert: creds.cert, key: creds.key }, auth: { user: creds.user, password_file: creds.passwordFile } } : undefined;
  const securityYaml = creds ? `, tls: { ca: ${creds.ca}, cert: ${creds.cert}, key: ${creds.key} }, auth: { user: ${creds.user}, password_file: ${creds.passwordFile} }` : "";
  return {
    endpoint,
    credentials: creds,
    securitySettings,
    securityYaml,
    etcdctl,
    stop,
    signal: (sig) => void child?.kill(sig),
  };
}

/** Put one key through etcd's JSON gateway (plain etcd only). */
export async function put(endpoint: string, key: string, value: string): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const r = await fetch(`${endpoint}/v3/kv/put`, { method: "POST", body: JSON.stringify({ key: b64(key), value: b64(value) }), signal: AbortSignal.timeout(3000) });
  if (!r.ok) throw new Error(`put ${key}: HTTP ${r.status} ${await r.text()}`);
}
