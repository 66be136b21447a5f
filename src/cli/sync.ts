// `understudy sync status | resync | authorized-key`: file sync as operators
// see it, through a node's REST API (authorized-key reads the config only).
import { readFile } from "node:fs/promises";
import type { ClusterSnapshot, MemberRecord } from "../coordinator/port.js";
import { UnderstudyError } from "../errors/catalogue.js";
import { client, exitFor, requester } from "./control.js";
import { printable, type Io } from "./io.js";
import { clusterAnswerProblem, requireUsable } from "./answer-check.js";
import type { Parsed } from "./spec.js";

const str = (p: Parsed, name: string) => p.values[name] as string | undefined;

async function loadConfig(file: string) {
  return (await import("../config/load.js")).loadConfigFile(file, { hostChecks: false });
}

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

/** Per node: generation held, lag behind the published one, last success, last error. */
export async function syncStatus({ values }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  const api = await client(values, io.env);
  const answer = await api.get<ClusterSnapshot>("/cluster");
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  requireUsable(api.baseUrl, "/cluster", clusterAnswerProblem(answer.body));
  const snap = answer.body;
  const members = [...snap.members].sort((a, b) => a.node.localeCompare(b.node));
  if (values.json) {
    out(JSON.stringify({ published: snap.sync, members: members.map((m) => ({ node: m.node, role: m.role, generation: m.generation, ...m.sync })) }, null, 2));
    return 0;
  }
  const { SystemClock } = await import("../platform/clock.js");
  out(renderSyncStatus(snap, members, new SystemClock().wallMs()));
  return 0;
}

export function renderSyncStatus(snap: ClusterSnapshot, members: readonly MemberRecord[], nowMs: number): string {
  const pub = snap.sync;
  const lines = [
    printable(
      pub
        ? `Published: generation ${pub.generation} by ${pub.source} (term ${pub.term}) at ${pub.publishedAt}, ${pub.files} files, digest ${pub.digest.slice(0, 12)}`
        : "Published: nothing yet (no primary has published its sync roots)",
    ),
  ];
  const rows = [["Member", "Role", "Generation", "In sync", "Lag", "Last success", "Rescues", "Last error / waiting / step"]];
  for (const m of members) {
    const s = m.sync;
    const inSync = pub ? m.generation === pub.generation : m.generation === 0;
    const lag = s?.behindSince ? `${((nowMs - Date.parse(s.behindSince)) / 1000).toFixed(1)}s` : inSync ? "0" : "?";
    const row = [
      m.node,
      m.role,
      String(m.generation),
      s ? (inSync ? "yes" : "NO") : "no sync",
      lag,
      s?.lastSuccessAt ?? "-",
      String(s?.rescues ?? 0),
      ((s?.failedRoots?.length ? `roots failing: ${s.failedRoots.join(", ")}; ` : "") + (s?.lastError ?? s?.waiting ?? s?.step ?? "")).slice(0, 100),
    ];
    rows.push(row.map(printable));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    lines.push(
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    );
  return lines.join("\n");
}

/** Ask one node (--node NAME, found through the cluster view, or the --api node itself) to re-pull or republish everything. */
export async function resync({ values }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  let api = await client(values, io.env);
  if (values.node) {
    const cluster = await api.get<ClusterSnapshot>("/cluster");
    const refused = exitFor(cluster, out, values.json);
    if (refused !== undefined) return refused;
    requireUsable(api.baseUrl, "/cluster", clusterAnswerProblem(cluster.body));
    const m = cluster.body.members.find((x) => x.node === values.node);
    if (!m?.api) {
      out(`refused: ${printable(values.node)} is not a live member with an API (see \`understudy status\`)`);
      return 3;
    }
    api = api.withBaseUrl(m.api);
  }
  const answer = await api.send<{ node: string }>("POST", "/resync", { reason: (values.reason as string | undefined) ?? "", requested_by: requester(values) });
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  out(values.json ? JSON.stringify(answer.body) : printable(`resync requested on ${answer.body.node}`));
  return 0;
}

/**
 * The authorized_keys line for the sync key: the forced command is rsync's
 * daemon with the config the agent writes to sync.serve_config, which serves
 * this node's roots read-only.
 */
export async function authorizedKey(p: Parsed, io: Io): Promise<number> {
  const configFile = str(p, "config")!;
  const keyFile = str(p, "public-key")!;
  const config = await loadConfig(configFile);
  if (!config.sync) throw usage(`${configFile} has no sync section`);
  const publicKey = await readFile(keyFile, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw usage(`cannot read --public-key ${keyFile}: ${e.code ?? e.message}`);
  });
  const fromArg = str(p, "from");
  const from = fromArg ? fromArg.split(",").filter(Boolean) : [];
  const { authorizedKeysLine } = await import("../sync/rsyncd.js");
  io.out(authorizedKeysLine(publicKey, { config: config.sync.serve_config, rsyncPath: config.sync.rsync_path, from }));
  return 0;
}

/** The rsync daemon config for this node's roots (what the agent writes to sync.serve_config at start). */
export async function rsyncdConf(p: Parsed, io: Io): Promise<number> {
  const configFile = str(p, "config")!;
  const config = await loadConfig(configFile);
  if (!config.sync) throw usage(`${configFile} has no sync section`);
  const { renderRsyncdConf } = await import("../sync/rsyncd.js");
  io.out(renderRsyncdConf(config.sync.roots, { daemonUser: config.sync.ssh.user }).trimEnd());
  return 0;
}
