// `understudy status`: the cluster from etcd (its HTTP/JSON gateway, ./etcd-read.ts)
// or from a node's API (GET /cluster). With --config, an unreachable etcd falls
// back to that node's API, said on stderr. When the node cannot read etcd either,
// its own view (GET /health: role, lease, decision), labelled as such.
// Exit: 0 a primary, 6 none now, 5 an unknown cluster (US_E_CLUSTER_UNKNOWN),
// 7 only a node's own view, 1 nothing reachable.
import { vipFindings } from "../ha/vip-truth.js";
import type { ClusterSnapshot } from "../coordinator/port.js";
import type { NodeView } from "../ha/events.js";
import { UnderstudyError, describeError, isUnderstudyError } from "../errors/catalogue.js";
import { clusterKeys } from "../coordinator/keys.js";
import { EtcdGateway } from "./etcd-read.js";
import { grpcReader, type SnapshotReader } from "./etcd-grpc-read.js";
import { readEtcdSecurity, type EtcdSecurity } from "../config/etcd-security.js";
import { NO_IMPLICIT_CONFIG, implicitConfig, readClientConfig, type ClientConfig } from "./client-config.js";
import { apiUrlOf, client, exitFor } from "./control.js";
import { printable, type Io } from "./io.js";
import { clusterAnswerProblem, requireUsable } from "./answer-check.js";
import { EXIT, closest, type Parsed } from "./spec.js";
import { renderNodeView, renderStatus } from "./status.js";

const TIMEOUT_MS = 3000;

interface Source {
  /** The cluster's name when known (not through --api alone). */
  readonly cluster: string | undefined;
  /** The snapshot, a node's own view when nobody could read etcd, or an exit code after printing why. */
  read(io: Io): Promise<{ snap: ClusterSnapshot; via: string } | { view: NodeView; via: string } | number>;
}

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

function etcdSource(endpoints: readonly string[], prefix: string, cluster: string, security?: EtcdSecurity): Source {
  return {
    cluster,
    async read() {
      // A client certificate: etcd's gateway would refuse it (./etcd-grpc-read.ts); gRPC then, like the agent.
      const reader: SnapshotReader = security?.tls?.cert ? await grpcReader(endpoints, TIMEOUT_MS, security) : new EtcdGateway({ endpoints, timeoutMs: TIMEOUT_MS, ...(security ? { security } : {}) });
      try {
        const { snap, keys } = await reader.snapshot(prefix, cluster);
        if (keys === 0) throw await unknownCluster(reader, endpoints, prefix, cluster);
        return { snap, via: "etcd" };
      } finally {
        await reader.close();
      }
    },
  };
}

/** US_E_CLUSTER_UNKNOWN, naming the clusters that do exist under the prefix. */
async function unknownCluster(gw: SnapshotReader, endpoints: readonly string[], prefix: string, cluster: string): Promise<UnderstudyError> {
  // Not listing the clusters leaves the answer (unknown cluster) standing; the message says why the list is missing.
  let names: string[] | undefined;
  let unlisted = "";
  try {
    names = await gw.clusterNames(prefix);
  } catch (e) {
    unlisted = describeError(e);
  }
  const guess = names && closest(cluster, names);
  const known =
    names === undefined
      ? `could not list the clusters there (${unlisted})`
      : names.length === 0
        ? `nothing at all under ${prefix.replace(/\/+$/, "")}/ (wrong --prefix, or another etcd?)`
        : `clusters under ${prefix.replace(/\/+$/, "")}/: ${names.join(", ")}${names.length >= 20 ? ", ..." : ""}${guess ? `; did you mean ${guess}?` : ""}`;
  return new UnderstudyError("US_E_CLUSTER_UNKNOWN", { cluster, endpoints: endpoints.join(","), base: clusterKeys(prefix, cluster).base, known });
}

function apiSource(values: Parsed["values"], cluster: string | undefined, loaded?: ClientConfig): Source {
  return {
    cluster,
    async read(io) {
      const api = await client(values, io.env, loaded);
      const answer = await api.get<ClusterSnapshot & { node?: string }>("/cluster");
      if (answer.status === 503 && (answer.body as { error?: string }).error === "US_E_ETCD_UNREACHABLE") {
        // The node cannot read etcd either: what it knows of itself, which needs no etcd.
        const own = await api.get<NodeView>("/health");
        const view = own.body as Partial<NodeView> | undefined;
        if ((own.status === 200 || own.status === 503) && typeof view?.node === "string" && typeof view.acting === "string") {
          io.err(
            `understudy: the node's API (${api.baseUrl}) cannot read etcd either (${printable((answer.body as { message?: string }).message ?? "")}); showing only ${printable(view.node)}'s own view`,
          );
          return { view: view as NodeView, via: `${view.node} (${api.baseUrl})` };
        }
      }
      const refused = exitFor(answer, io.err, false);
      if (refused !== undefined) return refused;
      requireUsable(api.baseUrl, "/cluster", clusterAnswerProblem(answer.body));
      return { snap: answer.body, via: `the API of ${answer.body.node ?? api.baseUrl} (${api.baseUrl})` };
    },
  };
}

/** etcd first; when it is unreachable and the config names an API, that node's API, said on stderr. */
function withFallback(primary: Source, fallback: Source, apiUrl: string): Source {
  return {
    cluster: primary.cluster,
    async read(io) {
      try {
        return await primary.read(io);
      } catch (e) {
        if (!isUnderstudyError(e) || e.code !== "US_E_ETCD_UNREACHABLE") throw e;
        io.err(`understudy: ${printable(describeError(e))}; asking this node's API at ${apiUrl} instead`);
        return fallback.read(io);
      }
    },
  };
}

async function sourceFor(p: Parsed, env: Io["env"]): Promise<Source> {
  const v = p.values as Record<string, string | undefined>;
  if (v.api) {
    if (v.etcd || v.cluster) throw usage("status takes --api URL, or --etcd URL with --cluster NAME, not both");
    return apiSource(p.values, undefined);
  }
  const configFile = v.config ?? (v.etcd || v.cluster ? undefined : implicitConfig(env));
  if (configFile) {
    const config = await readClientConfig(configFile);
    // The same TLS material and etcd user as the node's agent (an operator running status as root, or as the agent's user).
    const security = config.etcd.tls || config.etcd.auth ? await readEtcdSecurity(configFile, config.etcd) : undefined;
    const etcd = etcdSource(v.etcd ? v.etcd.split(",") : config.etcd.endpoints, v.prefix ?? config.etcd.prefix, v.cluster ?? config.cluster, security);
    if (!config.api) return etcd;
    return withFallback(etcd, apiSource(p.values, config.cluster, config), apiUrlOf(config.api.listen, config.api.tls));
  }
  if (v.etcd && v.cluster) return etcdSource(v.etcd.split(","), v.prefix ?? "/understudy", v.cluster);
  const none = v.etcd || v.cluster ? "" : ` (${NO_IMPLICIT_CONFIG})`;
  throw usage(`status needs --config FILE, or --etcd URL and --cluster NAME, or --api URL${none}`);
}

export async function status(p: Parsed, io: Io): Promise<number> {
  const source = await sourceFor(p, io.env);
  const json = Boolean(p.values.json);
  const show = async (): Promise<number> => {
    const got = await source.read(io);
    if (typeof got === "number") return got;
    if ("view" in got) {
      // Not the cluster's state: one node's, from its memory, while etcd is out of everybody's reach here.
      if (json) io.out(JSON.stringify({ cluster: source.cluster ?? null, source: "node", view: got.view }, null, 2));
      else io.out(renderNodeView(source.cluster, got.view, got.via));
      return EXIT.NODE_VIEW.code;
    }
    const { snap, via } = got;
    if (json) io.out(JSON.stringify({ cluster: source.cluster ?? null, source: via === "etcd" ? "etcd" : "api", ...snap, vipProblems: vipFindings(snap) }, null, 2));
    else {
      io.out(renderStatus(source.cluster ?? `(as ${via} sees it)`, snap));
      if (via !== "etcd") io.out(`Source: etcd as read by ${printable(via)}, not from here.`);
    }
    return snap.leader ? EXIT.OK.code : EXIT.NO_PRIMARY.code;
  };
  if (!p.values.watch) return show();
  // Until Ctrl-C; an error is shown and retried, not fatal.
  let stop = false;
  process.once("SIGINT", () => (stop = true));
  const { SystemClock } = await import("../platform/clock.js");
  const clock = new SystemClock();
  while (!stop) {
    io.out("\x1b[2J\x1b[H");
    await show().catch((e: unknown) => io.out(printable(describeError(e))));
    io.out(`\n${new Date(clock.wallMs()).toISOString()}  (Ctrl-C to stop)`);
    await clock.sleep(2000);
  }
  return EXIT.OK.code;
}
