// `understudy data notify PATH...` and `understudy data status` (docs/data.md).
//
// `data notify` is what an upload hook runs (ProFTPD ExecOnCommand, an SFTPGo
// event action): it tells the LOCAL agent that these files just closed so they
// ship now. It must never fail an upload. By the time the hook runs, the file is
// on the primary's disk; the inotify watcher journals it anyway (close_write), and
// the periodic full pass catches whatever both miss. So everything that is not a
// mistake in the hook's own command line (unknown option, no PATH, bad --timeout)
// is printed on stderr, where the daemon logs it, and exits 0: a standby, a path
// outside every data root, an agent that is down or slow, a token the hook cannot
// read. `--strict` gives those their usual exit codes, for scripts that must know.
import { resolve } from "node:path";
import type { ClusterSnapshot } from "../coordinator/port.js";
import type { DataStatus, ShipTargetStatus } from "../data/port.js";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { SystemClock } from "../platform/clock.js";
import type { ApiAnswer, ApiClient } from "./api-client.js";
import { clusterAnswerProblem, requireUsable } from "./answer-check.js";
import { client, exitFor } from "./control.js";
import { DEFAULT_CONFIG, implicitConfig } from "./client-config.js";
import { exitCodeFor } from "./run.js";
import { printable, type Io } from "./io.js";
import type { Parsed } from "./spec.js";

/** The whole `data notify` run (every request) within this, by default: an upload hook must not hang the daemon's session. */
export const NOTIFY_TIMEOUT_S = 2;
/** Paths per request and JSON bytes per request: under the API's 1000 paths and 64 KiB (src/api/data.ts). */
const CHUNK_PATHS = 1000;
const CHUNK_BYTES = 60 * 1024;

const str = (p: Parsed, name: string) => p.values[name] as string | undefined;

function usage(problem: string): UnderstudyError {
  return new UnderstudyError("US_E_CLI_USAGE", { problem });
}

/** Paths in request-sized groups, in order. */
export function chunkPaths(paths: readonly string[]): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const size = Buffer.byteLength(JSON.stringify(p)) + 1;
    if (cur.length > 0 && (cur.length >= CHUNK_PATHS || bytes + size > CHUNK_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

interface NotifyBody {
  readonly node?: string;
  readonly role?: string;
  readonly accepted?: number;
  readonly ignored?: readonly string[];
  readonly error?: string;
  readonly message?: string;
}

/** A problem that is not the hook's: stderr, and exit 0 unless --strict. */
class Soft {
  constructor(
    readonly message: string,
    readonly strictCode: number,
  ) {}
}

export async function dataNotify(p: Parsed, io: Io): Promise<number> {
  const timeoutArg = str(p, "timeout");
  const timeoutS = timeoutArg === undefined ? NOTIFY_TIMEOUT_S : Number(timeoutArg);
  if (!Number.isFinite(timeoutS) || timeoutS < 0.1 || timeoutS > 60) throw usage(`--timeout takes seconds from 0.1 to 60, got ${JSON.stringify(timeoutArg)}`);
  // Relative paths are the hook's working directory's; the agent takes absolute paths only.
  const paths = p.positionals.map((x) => resolve(x));
  const strict = p.values.strict === true;
  const say = (line: string) => io.err(printable(`understudy data notify: ${line}`));
  const results: NotifyBody[] = [];
  const soft = await notifyAll(p, io, paths, timeoutS * 1000, results).catch((e: unknown) => new Soft(describeError(e), exitCodeFor(e)));
  if (p.values.json) io.out(JSON.stringify({ results, ...(soft ? { problem: soft.message } : {}) }));
  const ignored = results.flatMap((r) => r.ignored ?? []);
  if (ignored.length > 0 && results.some((r) => r.role === "primary")) {
    say(`${ignored.length} path(s) outside every data root, not journaled: ${ignored.slice(0, 5).join(", ")}${ignored.length > 5 ? ", ..." : ""}`);
  }
  if (!soft) return strict && ignored.length > 0 ? 3 : 0;
  say(`${soft.message}${strict ? "" : " (exit 0: the upload stands; the watcher or the next full pass ships it)"}`);
  return strict ? soft.strictCode : 0;
}

async function notifyAll(p: Parsed, io: Io, paths: readonly string[], timeoutMs: number, results: NotifyBody[]): Promise<Soft | undefined> {
  const clock = new SystemClock();
  const deadline = clock.monotonicMs() + timeoutMs;
  // An upload hook names nothing: the node's own config (a missing file is an error naming it).
  const values = p.values.api || p.values.config ? p.values : { ...p.values, config: implicitConfig(io.env) ?? DEFAULT_CONFIG };
  const base = await client(values, io.env, undefined, timeoutMs);
  for (const chunk of chunkPaths(paths)) {
    const left = Math.round(deadline - clock.monotonicMs());
    if (left <= 0) return new Soft(`timed out after ${timeoutMs} ms with ${paths.length - results.reduce((n, r) => n + (r.accepted ?? 0) + (r.ignored?.length ?? 0), 0)} path(s) not sent`, 1);
    const api = base.withTimeout(left);
    const answer: ApiAnswer<NotifyBody> = await api.send<NotifyBody>("POST", "/data/notify", { paths: chunk });
    const b = typeof answer.body === "object" && answer.body !== null ? answer.body : { message: String(answer.body) };
    results.push(b);
    if (answer.status === 202) continue;
    if (answer.status === 409)
      return new Soft(`${b.node ?? "this node"} is ${b.role === "standby" ? "a standby" : `not the primary (${b.role ?? "?"})`}: only the primary ships data; nothing was journaled`, 3);
    if (answer.status === 404) return new Soft(`${b.message ?? "no data section on this node"}`, 3);
    return new Soft(`refused (${answer.status} ${b.error ?? ""}): ${b.message ?? ""}`, answer.status === 401 ? 4 : answer.status === 400 ? 3 : 1);
  }
  return undefined;
}

// ---------------------------------------------------------------- data status

type StatusBody = DataStatus & { readonly node: string };

/** GET /data on the asked node; on a standby, the primary's too (found through /cluster), which holds the per-standby lag. */
export async function dataStatus(p: Parsed, io: Io): Promise<number> {
  const api = await client(p.values, io.env);
  const answer = await api.get<StatusBody>("/data");
  if (answer.status === 404) {
    io.out(printable(`refused (404): ${(answer.body as { message?: string }).message ?? "no data section on this node"}`));
    return 3;
  }
  const refused = exitFor(answer, io.out, p.values.json);
  if (refused !== undefined) return refused;
  const here = answer.body;
  let primary: StatusBody | null = here.role === "primary" ? here : null;
  let primaryProblem: string | null = null;
  if (!primary) {
    const found = await primaryStatus(api).catch((e: unknown) => describeError(e));
    if (typeof found === "string") primaryProblem = found;
    else primary = found;
  }
  if (p.values.json) {
    io.out(JSON.stringify({ node: here, ...(primary && primary !== here ? { primary } : {}), ...(primaryProblem ? { primaryProblem } : {}) }, null, 2));
    return 0;
  }
  io.out(renderDataStatus(here, primary, primaryProblem));
  return 0;
}

async function primaryStatus(api: ApiClient): Promise<StatusBody | string> {
  const c = await api.get<ClusterSnapshot>("/cluster");
  if (c.status !== 200) return `GET /cluster answered ${c.status}`;
  requireUsable(api.baseUrl, "/cluster", clusterAnswerProblem(c.body));
  const leader = c.body.leader?.node;
  if (!leader) return "the cluster has no primary now";
  const m = c.body.members.find((x) => x.node === leader);
  if (!m?.api) return `the primary ${leader} publishes no API address`;
  const d = await api.withBaseUrl(m.api).get<StatusBody>("/data");
  if (d.status !== 200) return `the primary ${leader} answered GET /data with ${d.status}`;
  return d.body;
}

/** 1536 -> "1.5 KiB". */
export function bytes(n: number | null): string {
  if (n === null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
}

function standbyRow(s: ShipTargetStatus): string[] {
  return [
    s.node,
    String(s.files) + (s.full ? "+ (full pass)" : ""),
    bytes(s.bytes),
    s.seconds.toFixed(1),
    s.paused ? "PAUSED" : "no",
    s.lastSuccessAt ?? "-",
    (s.paused ?? s.lastError ?? s.step).slice(0, 160),
  ].map(printable);
}

export function renderDataStatus(here: StatusBody, primary: StatusBody | null, primaryProblem: string | null): string {
  const lines: string[] = [];
  const s = here.self;
  lines.push(
    printable(
      `Data on ${here.node}: ${here.role}${here.term !== null ? ` (term ${here.term})` : ""}` +
        (here.role === "standby" ? `, receiving ${s.receiving !== null ? `term ${s.receiving}'s files` : "nothing"}${s.rejoin ? ", rejoin pending" : ""}` : "") +
        (here.journal ? `; journal head ${here.journal.head}, ${here.journal.pending} pending, ${here.journal.ready} ready` : ""),
    ),
  );
  for (const r of here.roots) lines.push(printable(`  root ${r.name}: ${r.path} (${bytes(r.freeBytes)} free)`));
  if (s.step) lines.push(printable(`  step: ${s.step}`));
  if (here.role !== "primary" && s.lag)
    lines.push(printable(`  lag as the primary last published it: ${s.lag.files} file(s), ${bytes(s.lag.bytes)}, ${s.lag.seconds.toFixed(1)} s${s.lag.paused ? `; ${s.lag.paused}` : ""}`));
  if (!primary) {
    lines.push(printable(`Standbys: not shown (${primaryProblem ?? "no primary"})`));
    return lines.join("\n");
  }
  if (primary !== here) lines.push(printable(`Standbys as the primary ${primary.node} (term ${primary.term ?? "?"}) ships to them:`));
  if (primary.standbys.length === 0) {
    lines.push("  no standby to ship to");
    return lines.join("\n");
  }
  const rows = [["Standby", "Lag files", "Lag bytes", "Lag s", "Paused", "Last success", "Step / last error"], ...[...primary.standbys].sort((a, b) => a.node.localeCompare(b.node)).map(standbyRow)];
  lines.push(...table(rows));
  return lines.join("\n");
}
