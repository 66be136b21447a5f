import { hostname, userInfo } from "node:os";
import type { ClusterSnapshot, HistoryEvent, SwitchoverRequest } from "../coordinator/port.js";
import { UnderstudyError } from "../errors/catalogue.js";
import { formatListenAddress, isWildcardHost, parseListenAddress } from "../platform/listen-address.js";
import { SystemClock, type Clock } from "../platform/clock.js";
import { ApiClient, type ApiAnswer } from "./api-client.js";
import { NO_IMPLICIT_CONFIG, implicitConfig, readClientConfig, type ClientConfig } from "./client-config.js";
import { printable, type Io } from "./io.js";
import { clusterAnswerProblem, historyAnswerProblem, requireUsable } from "./answer-check.js";
import type { Parsed } from "./spec.js";
import { parseDuration } from "../config/duration.js";

// Operator commands that go through a node's REST API. Exit codes (./spec.ts EXIT):
// 0 done, 1 failure (unreachable, timed out), 2 usage, 3 refused by the cluster, 4 unauthorized.

export type Out = (line: string) => void;
type Values = Parsed["values"];
const str = (v: Values, name: string) => v[name] as string | undefined;

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

/** The API URL a node's api.listen is reached at from the node itself. */
export function apiUrlOf(listen: string, tls: boolean): string {
  const { host, port } = parseListenAddress(listen);
  return `${tls ? "https" : "http"}://${formatListenAddress(isWildcardHost(host) ? "127.0.0.1" : host, port)}`;
}

/**
 * The API to talk to and its token: --api, else the api.listen of --config,
 * else of the implicit config ($UNDERSTUDY_CONFIG or the package's file);
 * token from --token-file, else UNDERSTUDY_API_TOKEN, else that config's
 * api.token_file. A token file that cannot be read or is malformed is
 * US_E_API_TOKEN (exit 2); a token the API rejects is a 401 (exit 4).
 */
export async function client(values: Values, env: Io["env"], loaded?: ClientConfig, timeoutMs?: number): Promise<ApiClient> {
  let url = str(values, "api");
  let tokenFile = str(values, "token-file");
  const configFile = str(values, "config") ?? (url || loaded ? undefined : implicitConfig(env));
  const config = loaded ?? (configFile ? await readClientConfig(configFile) : undefined);
  if (config?.api) {
    url ??= apiUrlOf(config.api.listen, config.api.tls);
    tokenFile ??= config.api.token_file;
  }
  if (!url) throw usage(`name the API with --api URL, or --config FILE of a node that serves one (${configFile ? `${configFile} has no api section` : NO_IMPLICIT_CONFIG})`);
  let token: string | null = null;
  if (str(values, "token-file")) token = await readToken(str(values, "token-file")!);
  else if (env.UNDERSTUDY_API_TOKEN) token = env.UNDERSTUDY_API_TOKEN;
  else if (tokenFile) token = await readToken(tokenFile);
  return new ApiClient(url, token, timeoutMs);
}

async function readToken(file: string): Promise<string> {
  return (await import("../api/token.js")).readTokenFile(file);
}

/** undefined for a 2xx answer; else prints why and returns the exit code. */
export function exitFor(answer: ApiAnswer, out: Out, json: unknown): number | undefined {
  if (answer.status < 300) return undefined;
  const b = answer.body as { error?: string; message?: string };
  out(json ? JSON.stringify(answer.body) : printable(`refused (${answer.status} ${b.error ?? ""}): ${b.message ?? JSON.stringify(answer.body)}`));
  return answer.status === 401 ? 4 : answer.status === 400 || answer.status === 412 ? 3 : 1;
}

export function requester(values: Values): string {
  const named = str(values, "requested-by");
  if (named) return named;
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}

export const switchover = (p: Parsed, io: Io) => move("switchover", p, io);
export const failback = (p: Parsed, io: Io) => move("failback", p, io);
export const failover = (p: Parsed, io: Io) => move("failover", p, io);

/** switchover | failback | failover: request, then (unless scheduled or --wait 0) follow it to the end. */
async function move(kind: SwitchoverRequest["kind"], p: Parsed, io: Io): Promise<number> {
  const values = p.values;
  const out = io.out;
  const waitArg = str(values, "wait");
  const drainArg = str(values, "drain");
  const drainMs = drainArg === undefined ? undefined : parseDuration(drainArg);
  if (drainArg !== undefined && (drainMs === undefined || drainMs < 1000 || drainMs > 24 * 3_600_000))
    throw usage(`--drain takes a duration from 1s to 24h, like 30s, got ${JSON.stringify(drainArg)}`);
  // A drained switchover is followed for its drain plus the usual 30 s.
  const waitS = waitArg === undefined ? 30 + Math.ceil((drainMs ?? 0) / 1000) : Number(waitArg);
  // A long drain may be followed to its end: the bound grows with it.
  const maxWaitS = 3600 + Math.ceil((drainMs ?? 0) / 1000);
  if (!Number.isFinite(waitS) || waitS < 0 || waitS > maxWaitS) throw usage(`--wait takes seconds from 0 to ${maxWaitS}, got ${JSON.stringify(waitArg)}`);
  let at: string | undefined;
  const atArg = str(values, "at");
  if (atArg) {
    const t = Date.parse(atArg);
    if (Number.isNaN(t)) throw usage(`--at ${JSON.stringify(atArg)} is not a date-time (like 2026-11-23T03:00:00Z)`);
    at = new Date(t).toISOString();
  }
  const api = await client(values, io.env);
  const to = str(values, "to");
  const body = {
    ...(to ? { to } : {}),
    ...(at ? { at } : {}),
    ...(values.force ? { force: true } : {}),
    ...(drainArg !== undefined ? { drain: drainArg } : {}),
    reason: str(values, "reason") ?? "",
    requested_by: requester(values),
  };
  const answer = await api.send<{ request: SwitchoverRequest }>("POST", `/${kind}`, body);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  const req = answer.body.request;
  if (!values.json) out(printable(`${kind} ${req.from ? `from ${req.from} ` : ""}to ${req.to ?? "the best candidate"} requested${req.at ? ` for ${req.at}` : ""}`));
  if (req.at || waitS === 0) {
    if (values.json) out(JSON.stringify({ requested: req }));
    return 0;
  }
  const done = await follow(api, req, waitS * 1000, values.json ? () => undefined : out);
  if (values.json) out(JSON.stringify({ requested: req, ...done }));
  else if (done.outcome === "done") out(printable(`${kind} done: ${done.primary} is the primary (term ${done.term})${done.handoverMs !== undefined ? `; handover took ${done.handoverMs} ms` : ""}`));
  else out(printable(`${kind} ${done.outcome}: ${done.detail}`));
  return done.outcome === "done" ? 0 : done.outcome === "cancelled" ? 3 : 1;
}

interface FollowResult {
  outcome: "done" | "cancelled" | "timed out";
  primary?: string;
  term?: number;
  handoverMs?: number;
  detail?: string;
}

/** How long `follow` waits for the successor's history event once the leader key has moved. */
const HISTORY_GRACE_MS = 5000;
/** How far an agent's clock may trail the API node's when `follow` matches history to a request. */
const CLOCK_SKEW_MS = 5000;

/** Poll /cluster (bounded) until the request is gone from etcd, then read how it ended from /history. */
async function follow(api: ApiClient, req: SwitchoverRequest, timeoutMs: number, progress: Out, clock: Clock = new SystemClock()): Promise<FollowResult> {
  const deadline = clock.monotonicMs() + timeoutMs;
  let said = "";
  let movedAt: number | undefined;
  let moved: FollowResult | undefined;
  while (clock.monotonicMs() < deadline) {
    await clock.sleep(200);
    const c = await api.get<ClusterSnapshot>("/cluster").catch(() => undefined);
    if (!c || c.status !== 200) continue;
    const snap = c.body;
    requireUsable(api.baseUrl, "/cluster", clusterAnswerProblem(snap));
    if (snap.switchover && snap.switchover.requestedAt === req.requestedAt) {
      said = drainProgress(snap, req, said, progress);
      continue;
    }
    const h = await api.get<{ events: HistoryEvent[] }>("/history?limit=50");
    if (h.status === 200) requireUsable(api.baseUrl, "/history", historyAnswerProblem(h.body));
    // This request's outcome: the event naming its requestedAt; from an older agent (none named), its
    // kind and requester, written after it was made (agents' clocks may trail the API's a little). A
    // cancellation is checked first: a move the role overtook ends "not done" with a new primary
    // that is not the old one.
    const ours = (e: HistoryEvent) => (e.requestedAt !== undefined ? e.requestedAt === req.requestedAt : Date.parse(e.at) >= Date.parse(req.requestedAt) - CLOCK_SKEW_MS);
    const events = (h.status === 200 ? h.body.events : []).filter((e) => e.kind === req.kind && e.requestedBy === req.requestedBy && ours(e));
    const failed = [...events].reverse().find((e) => e.reason.startsWith("not done:"));
    const finished = [...events].reverse().find((e) => !e.reason.startsWith("not done:"));
    if (failed) return { outcome: "cancelled", detail: failed.reason.replace(/^not done: /, "") };
    if (snap.leader && snap.leader.node !== req.from && finished) {
      return { outcome: "done", primary: snap.leader.node, term: snap.leader.term, ...(finished.durations?.handover_ms !== undefined ? { handoverMs: finished.durations.handover_ms } : {}) };
    }
    // The successor writes its history event just after it takes the leader key: wait for it a
    // little (bounded), so the handover time is reported, then report without it.
    if (snap.leader && snap.leader.node !== req.from) {
      movedAt ??= clock.monotonicMs();
      moved = { outcome: "done", primary: snap.leader.node, term: snap.leader.term };
      if (clock.monotonicMs() - movedAt >= HISTORY_GRACE_MS) return moved;
    }
  }
  return moved ?? { outcome: "timed out", detail: `no new primary within ${Math.round(timeoutMs / 1000)}s; see \`understudy history\`` };
}

/** A drained switchover's progress as the primary's decision says it (sessions left, seconds waited), once per change. */
function drainProgress(snap: ClusterSnapshot, req: SwitchoverRequest, said: string, out: Out): string {
  if (req.drainMs === undefined) return said;
  const primary = snap.members.find((m) => m.node === snap.leader?.node);
  const m = primary ? /draining, (.*?), ([\d.]+)s of ([\d.]+)s waited/.exec(primary.decision) : null;
  if (!m) return said;
  const line = `draining on ${primary!.node}: ${m[1]}, ${Math.floor(Number(m[2]))}s of ${m[3]}s waited`;
  if (line !== said) out(printable(line));
  return line;
}

export const pause = (p: Parsed, io: Io) => simple("pause", p, io);
export const resume = (p: Parsed, io: Io) => simple("resume", p, io);

async function simple(command: "pause" | "resume", { values }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  const api = await client(values, io.env);
  const answer = await api.send("POST", `/${command}`, { reason: str(values, "reason") ?? "", requested_by: requester(values) });
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  out(values.json ? JSON.stringify(answer.body) : command === "pause" ? "paused: no automatic failover until `understudy resume`" : "resumed: automatic failover is on");
  return 0;
}

export const ban = (p: Parsed, io: Io) => banOrUnban("ban", p, io);
export const unban = (p: Parsed, io: Io) => banOrUnban("unban", p, io);

async function banOrUnban(command: "ban" | "unban", { values, positionals }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  const node = positionals[0]!;
  const api = await client(values, io.env);
  const body = { node, reason: str(values, "reason") ?? "", requested_by: requester(values), ...(command === "ban" ? { duration: str(values, "for") } : {}) };
  const answer = await api.send<{ until?: string }>("POST", `/${command}`, body);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  out(values.json ? JSON.stringify(answer.body) : printable(command === "ban" ? `${node} banned until ${answer.body.until}` : `${node} may be elected again`));
  return 0;
}

/** `understudy flap clear`: end flap damping; health-driven moves are counted afresh from now. */
export async function flapClear({ values }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  const api = await client(values, io.env);
  const answer = await api.send<{ wasDamped: boolean; damped?: { at: string; reason: string } }>("POST", "/flap/clear", { reason: str(values, "reason") ?? "", requested_by: requester(values) });
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  const b = answer.body;
  out(
    values.json
      ? JSON.stringify(b)
      : printable(
          b.wasDamped ? `flap damping cleared (damped since ${b.damped!.at}: ${b.damped!.reason}); automatic handovers resume` : "flap damping was not in force; the move count starts again from now",
        ),
  );
  return 0;
}

export async function history({ values }: Parsed, io: Io): Promise<number> {
  const out = io.out;
  const limitArg = str(values, "limit");
  const limit = limitArg === undefined ? 20 : Number(limitArg);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usage(`--limit takes 1 to 1000, got ${JSON.stringify(limitArg)}`);
  const api = await client(values, io.env);
  const answer = await api.get<{ events: HistoryEvent[] }>(`/history?limit=${limit}`);
  const refused = exitFor(answer, out, values.json);
  if (refused !== undefined) return refused;
  requireUsable(api.baseUrl, "/history", historyAnswerProblem(answer.body));
  if (values.json) {
    out(JSON.stringify(answer.body.events, null, 2));
    return 0;
  }
  for (const e of answer.body.events) {
    const move = e.from || e.to ? ` ${e.from ?? "-"} -> ${e.to ?? "-"}` : "";
    const took = e.durations
      ? ` (${Object.entries(e.durations)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")})`
      : "";
    const counted = e.counts
      ? ` [${Object.entries(e.counts)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}]`
      : "";
    out(printable(`${e.at}  ${e.kind.padEnd(10)}${move}${e.term !== null ? ` term ${e.term}` : ""}  ${e.reason}${e.requestedBy ? ` [by ${e.requestedBy}]` : ""}${took}${counted}`));
  }
  if (answer.body.events.length === 0) out("no history yet");
  return 0;
}
