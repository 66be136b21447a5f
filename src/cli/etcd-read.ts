// Read-only etcd access for `understudy status` over etcd's HTTP/JSON gateway
// (POST /v3/kv/txn, /v3/kv/range on the client port; etcd >= 3.4): one plain
// HTTP request instead of the etcd3 library, whose gRPC stack takes ~0.2 s to load
// (docs/benchmarks.md, CLI). Same keys (../coordinator/keys.ts) and the same
// record decoders (../coordinator/records.ts) as EtcdCoordinator.snapshot(),
// which the agent keeps using; test/unit/cli/cli-status.test.ts holds the two equal.
import { clusterKeys, prefixEnd } from "../coordinator/keys.js";
import type { ClusterSnapshot } from "../coordinator/port.js";
import { decodeSnapshot } from "../coordinator/snapshot-decode.js";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { EtcdSecurity } from "../config/etcd-security.js";
import { classifyEtcdFailure } from "../coordinator/etcd-failure.js";
import { request, type TlsOptions } from "./http.js";

interface Kv {
  readonly key: string;
  readonly value?: string;
  readonly mod_revision?: string;
}
interface RangeAnswer {
  readonly kvs?: readonly Kv[];
  readonly count?: string;
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => Buffer.from(s ?? "", "base64").toString("utf8");

export interface GatewayOptions {
  readonly endpoints: readonly string[];
  /** Per endpoint; the next endpoint is tried after a failure. */
  readonly timeoutMs: number;
  /** etcd.tls / etcd.auth as the agent uses them (config/etcd-security.ts). */
  readonly security?: EtcdSecurity;
}

export class EtcdGateway {
  /** The auth token per endpoint (POST /v3/auth/authenticate), when etcd.auth is set. */
  private readonly tokens = new Map<string, string>();
  private readonly tls: TlsOptions | undefined;

  constructor(private readonly opts: GatewayOptions) {
    const t = opts.security?.tls;
    this.tls = t ? { ca: t.ca, ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}), ...(t.serverName ? { servername: t.serverName } : {}) } : undefined;
  }

  private async send<T>(endpoint: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    const res = await request("POST", new URL(path, endpoint), {
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...headers },
      timeoutMs: this.opts.timeoutMs,
      ...(this.tls ? { tls: this.tls } : {}),
    });
    if (res.status < 200 || res.status > 299) {
      // The gateway answers gRPC errors as JSON: {"error": "etcdserver: permission denied", "code": 7}.
      let why = res.text.slice(0, 200);
      try {
        why = String((JSON.parse(res.text) as { error?: unknown; message?: unknown }).error ?? (JSON.parse(res.text) as { message?: unknown }).message ?? why);
      } catch {
        /* not JSON: keep the text */
      }
      throw new UnderstudyError("US_E_ETCD_GATEWAY", { endpoint, path, answer: `HTTP ${res.status}: ${why}` });
    }
    return JSON.parse(res.text) as T;
  }

  private async token(endpoint: string): Promise<Record<string, string>> {
    const auth = this.opts.security?.auth;
    if (!auth) return {};
    let token = this.tokens.get(endpoint);
    if (token === undefined) {
      const r = await this.send<{ token?: string }>(endpoint, "/v3/auth/authenticate", { name: auth.user, password: auth.password });
      // The words etcd itself uses, so classifyEtcdFailure() reports US_E_ETCD_AUTH.
      if (!r.token) throw new UnderstudyError("US_E_ETCD_GATEWAY", { endpoint, path: "/v3/auth/authenticate", answer: "no token: etcdserver: authentication failed, invalid user ID or password" });
      token = r.token;
      this.tokens.set(endpoint, token);
    }
    return { authorization: token };
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const failures: UnderstudyError[] = [];
    for (const endpoint of this.opts.endpoints) {
      try {
        return await this.send<T>(endpoint, path, body, await this.token(endpoint));
      } catch (e) {
        const f = classifyEtcdFailure(e);
        failures.push(new UnderstudyError(f.code, { endpoints: endpoint, cause: f.cause }));
      }
    }
    // A TLS or auth refusal says more than "unreachable": report the first such one.
    const worst = failures.find((f) => f.code !== "US_E_ETCD_UNREACHABLE") ?? failures[0];
    throw new UnderstudyError(worst?.code ?? "US_E_ETCD_UNREACHABLE", {
      endpoints: this.opts.endpoints.join(","),
      cause: failures.map((f) => `${f.details.endpoints}: ${describeError(f.details.cause)}`).join("; "),
    });
  }

  /** One read-only txn (one revision), like EtcdCoordinator.snapshot(), plus how many keys the cluster has at all. */
  async snapshot(prefix: string, cluster: string): Promise<{ snap: ClusterSnapshot; keys: number }> {
    const k = clusterKeys(prefix, cluster);
    const range = (key: string, exact = false, countOnly = false) => ({
      request_range: { key: b64(key), ...(exact ? {} : { range_end: b64(prefixEnd(key)) }), ...(countOnly ? { count_only: true } : {}) },
    });
    const res = await this.post<{ header: { revision: string }; responses?: { response_range?: RangeAnswer }[] }>("/v3/kv/txn", {
      compare: [],
      success: [range(`${k.base}control/`), range(k.leader, true), range(k.membersPrefix), range(k.syncGeneration, true), range(k.dataProgress, true), range(k.base, false, true)],
    });
    const responses = res.responses ?? [];
    const kvs = responses
      .slice(0, 5)
      .flatMap((op) => op.response_range?.kvs ?? [])
      .map((kv) => ({
        key: unb64(kv.key),
        value: unb64(kv.value),
        modRevision: Number(kv.mod_revision ?? 0),
      }));
    const keys = Number(responses[5]?.response_range?.count ?? 0);
    return { snap: decodeSnapshot(k, kvs, Number(res.header.revision)), keys };
  }

  /** Nothing to close: each request is its own connection. */
  async close(): Promise<void> {}

  /** The cluster names that have keys under `prefix`, in order, at most `max` (one keys-only read each). */
  async clusterNames(prefix: string, max = 20): Promise<string[]> {
    const base = `${prefix.replace(/\/+$/, "")}/`;
    const end = b64(prefixEnd(base));
    const names: string[] = [];
    let from: Buffer = Buffer.from(base);
    while (names.length < max) {
      const r = await this.post<RangeAnswer>("/v3/kv/range", { key: b64(from), range_end: end, limit: 1, keys_only: true });
      const key = r.kvs?.[0]?.key;
      if (key === undefined) break;
      const name = unb64(key).slice(base.length).split("/")[0]!;
      names.push(name);
      from = prefixEnd(`${base}${name}/`);
    }
    return names;
  }
}
