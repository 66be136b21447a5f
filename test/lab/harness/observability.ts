/**
 * Real Prometheus and HAProxy (Debian packages) in the lab's client
 * namespace, pointed at the agents' REST APIs: what an operator's monitoring
 * and load balancer would see.
 */
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab } from "./lab.js";
import { pollUntil } from "./exec.js";

export const API_PORT = 8470;

export interface PrometheusHandle {
  readonly process: ChildProcess;
  /** Instant query from inside the client namespace; the vector's samples. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
}

/** Prometheus scraping every node's /metrics every 500 ms, listening on 127.0.0.1:9090 in the client namespace. */
export async function startPrometheus(lab: Lab): Promise<PrometheusHandle> {
  const dir = join(lab.dir, "prometheus");
  mkdirSync(join(dir, "data"), { recursive: true });
  const targets = lab.nodes.map((n) => `'${n.address}:${API_PORT}'`).join(", ");
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global: { scrape_interval: 500ms, scrape_timeout: 400ms, evaluation_interval: 500ms }
scrape_configs:
  - job_name: understudy
    static_configs: [ { targets: [${targets}] } ]
`,
  );
  const proc = lab.spawn(
    lab.client,
    ["/usr/bin/prometheus", `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, "--web.listen-address=127.0.0.1:9090", "--query.lookback-delta=2s"],
    { logFile: join(lab.logDir, "prometheus.log") },
  );
  const query = async (promql: string) => {
    const url = `http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(promql)}`;
    const script = `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e));process.exit(1)})`;
    const r = await lab.exec(lab.client, [process.execPath, "-e", script], { timeoutMs: 5000 });
    if (r.code !== 0) throw new Error(`prometheus query failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (j.status !== "success") throw new Error(`prometheus query ${promql}: ${r.stdout}`);
    return j.data.result;
  };
  const ready = await pollUntil(async () => ((await query("up").catch(() => [])).length > 0 ? true : undefined), { timeoutMs: 20_000, intervalMs: 250 });
  if (!ready) throw new Error("prometheus did not come up");
  return { process: proc, query };
}

/**
 * HAProxy in the client namespace: TCP frontend 127.0.0.1:2222 to the nodes'
 * port 22, each server checked with `GET /primary` on the agent's API
 * (200 only on the lease holder), every 200 ms.
 */
export async function startHaproxy(lab: Lab, port = 2222): Promise<ChildProcess> {
  const dir = join(lab.dir, "haproxy");
  mkdirSync(dir, { recursive: true });
  const servers = lab.nodes.map((n) => `  server ${n.name} ${n.address}:22 check port ${API_PORT} inter 200ms fall 1 rise 1`).join("\n");
  writeFileSync(
    join(dir, "haproxy.cfg"),
    `global
  maxconn 100
defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s
frontend sftp
  bind 127.0.0.1:${port}
  default_backend primary
backend primary
  option httpchk
  http-check send meth GET uri /primary
  http-check expect status 200
${servers}
`,
  );
  const check = await lab.exec(lab.client, ["/usr/sbin/haproxy", "-c", "-f", join(dir, "haproxy.cfg")]);
  if (check.code !== 0) throw new Error(`haproxy config: ${check.stderr}${check.stdout}`);
  const proc = lab.spawn(lab.client, ["/usr/sbin/haproxy", "-db", "-f", join(dir, "haproxy.cfg")], { logFile: join(lab.logDir, "haproxy.log") });
  if (!(await lab.waitForListen(lab.client, port, 5000))) throw new Error("haproxy is not listening");
  return proc;
}
