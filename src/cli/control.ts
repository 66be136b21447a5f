import { hostname, userInfo } from "node:os";
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.js";
import type { ClusterSnapshot, HistoryEvent, SwitchoverRequest } from "../coordinator/port.js";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { readTokenFile } from "../api/token.js";
import { ApiClient, type ApiAnswer } from "./api-client.js";

// Operator commands that go through a node's REST API. Exit codes:
// 0 done, 1 failure (unreachable, timed out), 2 usage, 3 refused by the cluster, 4 unauthorized.

export const COMMON = {
  api: { type: "string" },
  config: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  reason: { type: "string" },
  "requested-by": { type: "string" },
} as const;

export type Out = (line: string) => void;

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

export async function client(values: { api?: string; config?: string; "token-file"?: string }): Promise<ApiClient> {
  let url = values.api;
  let tokenFile = values["token-file"];
  if (values.config) {
    const config = await loadConfigFile(values.config, { hostChecks: false });
    if (!url && config.api) {
      const listen = config.api.listen;
      const host = listen.slice(0, listen.lastIndexOf(":"));
      const port = listen.slice(listen.lastIndexOf(":") + 1);
      url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`;
    }
    tokenFile ??= config.api?.token_file;
  }
  if (!url) throw usage("name the API with --api URL, or --config FILE of a node that serves one");
  const token = process.env.UNDERSTUDY_API_TOKEN ?? (tokenFile ? await readTokenFile(tokenFile) : null);
  return new ApiClient(url, token);
}

export function exitFor(answer: ApiAnswer, out: Out, json: boolean | undefined): number | undefined {
  if (answer.status < 300) return undefined;
  const b = answer.body as { error?: string; message?: string };
  out(json ? JSON.stringify(answer.body) : `refused (${answer.status} ${b.error ?? ""}): ${b.message ?? JSON.stringify(answer.body)}`);
  return answer.status === 401 ? 4 : answer.status === 400 || answer.status === 412 ? 3 : 1;
}

export function requester(values: { "requested-by"?: string }): string {
  if (values["requested-by"]) return values["requested-by"];
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}

/** switchover | failback | failover: request, then (unless scheduled or --wait 0) follow it to the end. */
export async function move(kind: SwitchoverRequest["kind"], args: readonly string[], out: Out): Promise<number> {
  const { values } = parse(args, { ...COMMON, to: { type: "string" }, at: { type: "string" }, force: { type: "boolean" }, wait: { type: "string" } });
  if (kind === "failover" && !values.to) throw usage("failover needs --to NODE");
  if (kind !== "failover" && values.force) throw usage("--force is for failover only");
  if (kind !== "switchover" && values.at) throw usage("--at is for switchover only");
  const waitS = values.wait === undefined ? 30 : Number(values.wait);
  if (!Number.isFinite(waitS) || waitS < 0 || waitS > 3600) throw usage(`--wait takes seconds from 0 to 3600, got ${JSON.stringify(values.wait)}`);
  let at: string | undefined;
  if (values.at) {
    const t = Date.parse(values.at);
    if (Number.isNaN(t)) throw usage(`--at ${JSON.stringify(values.at)} is not a date-time (like 2026-11-23T03:00:00Z)`);
    at = new Date(t).toISOString();
  }
  const api = await client(values);
  const body = {
    ...(values.to ? { to: values.to } : {}), ...(at ? { at } : {}), ...(values.force ? { force: true } : {}),
    reason: values.reason ?? "", requested_by: requester(values),
  };
  const answer = await api.send<{ request: SwitchoverRequest }>("POST", `/${kind}`, body);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  const req = answer.body.request;
  if (!values.json) out(`${kind} ${req.from ? `from ${req.from} ` : ""}to ${req.to ?? "the best candidate"} requested${req.at ? ` for ${req.at}` : ""}`);
  if (req.at || waitS === 0) {
    if (values.json) out(JSON.stringify({ requested: req }));
    return 0;
  }
  const done = await follow(api, req, waitS * 1000);
  if (values.json) out(JSON.stringify({ requested: req, ...done }));
  else if (done.outcome === "done") out(`${kind} done: ${done.primary} is the primary (term ${done.term})${done.handoverMs !== undefined ? `; handover took ${done.handoverMs} ms` : ""}`);
  else out(`${kind} ${done.outcome}: ${done.detail}`);
  return done.outcome === "done" ? 0 : done.outcome === "cancelled" ? 3 : 1;
}

interface FollowResult {
  outcome: "done" | "cancelled" | "timed out";
  primary?: string;
  term?: number;
  handoverMs?: number;
  detail?: string;
}

/** Poll /cluster (bounded) until the request is gone from etcd, then read how it ended from /history. */
async function follow(api: ApiClient, req: SwitchoverRequest, timeoutMs: number): Promise<FollowResult> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    const c = await api.get<ClusterSnapshot>("/cluster").catch(() => undefined);
    if (!c || c.status !== 200) continue;
    const snap = c.body;
    if (snap.switchover && snap.switchover.requestedAt === req.requestedAt) continue;
    const h = await api.get<{ events: HistoryEvent[] }>("/history?limit=50");
    const events = h.status === 200 ? h.body.events : [];
    const finished = [...events].reverse().find((e) => e.kind === req.kind && e.requestedBy === req.requestedBy);
    const failed = [...events].reverse().find((e) => e.kind === req.kind && e.reason.startsWith("not done:"));
    if (snap.leader && snap.leader.node !== req.from && finished) {
      return { outcome: "done", primary: snap.leader.node, term: snap.leader.term, ...(finished.durations?.handover_ms !== undefined ? { handoverMs: finished.durations.handover_ms } : {}) };
    }
    if (failed) return { outcome: "cancelled", detail: failed.reason.replace(/^not done: /, "") };
    if (snap.leader && snap.leader.node !== req.from) return { outcome: "done", primary: snap.leader.node, term: snap.leader.term };
  }
  return { outcome: "timed out", detail: `no new primary within ${Math.round(timeoutMs / 1000)}s; see \`understudy history\`` };
}

export async function simple(command: "pause" | "resume", args: readonly string[], out: Out): Promise<number> {
  const { values } = parse(args, COMMON);
  const api = await client(values);
  const answer = await api.send("POST", `/${command}`, { reason: values.reason ?? "", requested_by: requester(values) });
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  out(values.json ? JSON.stringify(answer.body) : command === "pause" ? "paused: no automatic failover until `understudy resume`" : "resumed: automatic failover is on");
  return 0;
}

export async function ban(command: "ban" | "unban", args: readonly string[], out: Out): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, for: { type: "string" } }, true);
  const node = positionals[0];
  if (!node || positionals.length > 1) throw usage(`${command} takes exactly one NODE`);
  if (command === "ban" && !values.for) throw usage("ban needs --for DURATION, like 30m");
  const api = await client(values);
  const body = { node, reason: values.reason ?? "", requested_by: requester(values), ...(command === "ban" ? { duration: values.for } : {}) };
  const answer = await api.send<{ until?: string }>("POST", `/${command}`, body);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  out(values.json ? JSON.stringify(answer.body) : command === "ban" ? `${node} banned until ${answer.body.until}` : `${node} may be elected again`);
  return 0;
}

export async function history(args: readonly string[], out: Out): Promise<number> {
  const { values } = parse(args, { ...COMMON, limit: { type: "string" } });
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usage(`--limit takes 1 to 1000, got ${JSON.stringify(values.limit)}`);
  const api = await client(values);
  const answer = await api.get<{ events: HistoryEvent[] }>(`/history?limit=${limit}`);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  if (values.json) {
    out(JSON.stringify(answer.body.events, null, 2));
    return 0;
  }
  for (const e of answer.body.events) {
    const move = e.from || e.to ? ` ${e.from ?? "-"} -> ${e.to ?? "-"}` : "";
    const took = e.durations ? ` (${Object.entries(e.durations).map(([k, v]) => `${k} ${v}`).join(", ")})` : "";
    out(`${e.at}  ${e.kind.padEnd(10)}${move}${e.term !== null ? ` term ${e.term}` : ""}  ${e.reason}${e.requestedBy ? ` [by ${e.requestedBy}]` : ""}${took}`);
  }
  if (answer.body.events.length === 0) out("no history yet");
  return 0;
}

export function parse<T extends Record<string, { type: "string" | "boolean" }>>(args: readonly string[], options: T, positionals = false) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: positionals, strict: true });
  } catch (e) {
    throw usage(describeError(e));
  }
}
