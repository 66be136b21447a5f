// A throw-away etcd on 127.0.0.1 (random ports, data in a temp dir) for the CLI
// bench and test/lab/cli.lab.test.ts. Bounded start, always cleaned up by stop().
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface LoopbackEtcd {
  readonly endpoint: string;
  stop(): Promise<void>;
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

export async function startEtcd(bin = "etcd", startTimeoutMs = 15_000): Promise<LoopbackEtcd> {
  const dir = mkdtempSync(join(tmpdir(), "understudy-cli-etcd-"));
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  let child: ChildProcess | undefined = spawn(bin, [
    "--name", "bench", "--data-dir", join(dir, "data"),
    "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `bench=http://127.0.0.1:${peer}`, "--log-level", "error",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child!.once("exit", () => r()));
  const stop = async () => {
    if (child) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child?.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(killer);
      child = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = performance.now() + startTimeoutMs;
  while (performance.now() < deadline) {
    const ok = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) return { endpoint, stop };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`etcd did not become healthy on ${endpoint} within ${startTimeoutMs} ms: ${stderr}`);
}

/** Put one key through etcd's JSON gateway. */
export async function put(endpoint: string, key: string, value: string): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const r = await fetch(`${endpoint}/v3/kv/put`, { method: "POST", body: JSON.stringify({ key: b64(key), value: b64(value) }), signal: AbortSignal.timeout(3000) });
  if (!r.ok) throw new Error(`put ${key}: HTTP ${r.status} ${await r.text()}`);
}
