// Helpers for the CLI unit tests: captured Io, a strict fake of etcd's JSON
// gateway on 127.0.0.1, and the real REST API (buildApi) over FakeCoordinator.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Io } from "../../../src/cli/io.js";
import { main } from "../../../src/cli/run.js";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { MemberRecord } from "../../../src/coordinator/port.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
export { member } from "../../fakes/member.js";
import { member } from "../../fakes/member.js";

export interface Ran {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** The real main() with captured stdout/stderr and only the environment given. */
export async function cli(argv: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), env };
  const code = await main(argv, io);
  return { code, out: out.join("\n"), err: err.join("\n") };
}

interface Entry {
  value: string;
  createRevision: number;
  modRevision: number;
}

/**
 * etcd's /v3/kv/range and /v3/kv/txn (read-only range ops) as etcd 3.4 answers
 * them: base64 keys and values, int64 as strings, zero fields left out. Anything
 * else (another path, a compare, a put in a txn, a field it does not know) is a 400/404.
 */
export class FakeEtcdGateway {
  private readonly kv = new Map<string, Entry>();
  private revision = 1;
  readonly requests: string[] = [];
  private server: Server | undefined;

  put(key: string, value: string): void {
    const old = this.kv.get(key);
    this.revision++;
    this.kv.set(key, { value, createRevision: old?.createRevision ?? this.revision, modRevision: this.revision });
  }

  private range(req: Record<string, unknown>): Record<string, unknown> {
    const known = new Set(["key", "range_end", "limit", "keys_only", "count_only"]);
    for (const k of Object.keys(req)) if (!known.has(k)) throw new Error(`unknown range field ${k}`);
    if (typeof req.key !== "string") throw new Error("range without key");
    const key = Buffer.from(req.key, "base64");
    const end = typeof req.range_end === "string" ? Buffer.from(req.range_end, "base64") : undefined;
    const all = [...this.kv.keys()].map((k) => Buffer.from(k)).sort(Buffer.compare);
    const hits = all.filter((k) => (end ? Buffer.compare(k, key) >= 0 && (end.length === 1 && end[0] === 0 ? true : Buffer.compare(k, end) < 0) : k.equals(key)));
    const limited = typeof req.limit === "number" && req.limit > 0 ? hits.slice(0, req.limit) : hits;
    const out: Record<string, unknown> = { header: { revision: String(this.revision) } };
    if (hits.length > 0) out.count = String(hits.length);
    if (!req.count_only && limited.length > 0) {
      out.kvs = limited.map((k) => {
        const e = this.kv.get(k.toString())!;
        return {
          key: k.toString("base64"),
          create_revision: String(e.createRevision),
          mod_revision: String(e.modRevision),
          version: "1",
          ...(req.keys_only ? {} : { value: Buffer.from(e.value).toString("base64") }),
        };
      });
    }
    return out;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        this.requests.push(req.url ?? "");
        try {
          if (req.method !== "POST") throw new Error(`method ${req.method}`);
          const parsed = JSON.parse(body) as Record<string, unknown>;
          let answer: unknown;
          if (req.url === "/v3/kv/range") answer = this.range(parsed);
          else if (req.url === "/v3/kv/txn") {
            if (Array.isArray(parsed.compare) && parsed.compare.length > 0) throw new Error("compare in a read txn");
            const ops = parsed.success as { request_range?: Record<string, unknown> }[];
            answer = {
              header: { revision: String(this.revision) },
              succeeded: true,
              responses: ops.map((op) => {
                if (!op.request_range || Object.keys(op).length !== 1) throw new Error("only request_range in a txn");
                return { response_range: this.range(op.request_range) };
              }),
            };
          } else {
            res.writeHead(404).end("404 page not found");
            return;
          }
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
        } catch (e) {
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: String(e), code: 3 }));
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export const TOKEN = "s3cret-token-0123456789";

/** The real REST API on 127.0.0.1 over a FakeCoordinator holding n1 (primary) and n2. */
export async function realApi(opts: { authReads?: boolean; members?: MemberRecord[]; view?: Partial<NodeView> } = {}) {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(60_000);
  await etcd.campaign("n1", lease.id, "");
  for (const m of opts.members ?? [member("n1", { role: "primary" }), member("n2")]) await etcd.putMember(m, lease.id);
  const view: NodeView = {
    node: "n1",
    acting: "primary",
    term: 1,
    leaseRemainingMs: 3000,
    etcdReachable: true,
    decision: "",
    sinceLastCycleMs: 0,
    vipHeld: true,
    daemonRunning: true,
    probes: [],
    healthy: true,
    notReady: null,
    ...opts.view,
  };
  const app = buildApi({
    view: () => view,
    coordinator: etcd,
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
    clock,
    log: silentLogger(),
    token: TOKEN,
    authReads: opts.authReads ?? false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
  });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { url, etcd, close: () => app.close() };
}

/** A loopback URL nothing listens on. */
export async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
