// Answers from a node's REST API are untrusted input for the CLI as etcd records
// are for the agent (issue 11, item 2): /cluster and /history are checked with
// the same record schemas (coordinator/records.ts) before anything is printed,
// so a malformed answer is one coded error, not a TypeError half-way through a table.
import { UnderstudyError } from "../errors/catalogue.js";
import { decodeBanChecked, decodeHistoryChecked, decodeMemberChecked, decodeSwitchoverChecked, decodeSyncGenerationChecked, type Decoded } from "../coordinator/records.js";

type Check = (value: string) => Decoded<unknown>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function list(body: Record<string, unknown>, field: string, check: Check): string | null {
  const items = body[field];
  if (!Array.isArray(items)) return `${field}: not a list`;
  for (const [i, item] of items.entries()) {
    const d = check(JSON.stringify(item ?? null));
    if ("problem" in d) return `${field}[${i}]: ${d.problem}`;
  }
  return null;
}

function optional(body: Record<string, unknown>, field: string, check: Check): string | null {
  if (body[field] === null || body[field] === undefined) return null;
  const d = check(JSON.stringify(body[field]));
  return "problem" in d ? `${field}: ${d.problem}` : null;
}

/** Why a GET /cluster answer cannot be used, or null. */
export function clusterAnswerProblem(body: unknown): string | null {
  if (!isObject(body)) return "not an object";
  const leader = body.leader;
  if (leader !== null && !(isObject(leader) && typeof leader.node === "string" && Number.isSafeInteger(leader.term))) return "leader: not null or a record with a node name and an integer term";
  if (typeof body.paused !== "boolean") return "paused: not true or false";
  return (
    list(body, "members", decodeMemberChecked) ?? list(body, "bans", decodeBanChecked) ?? optional(body, "sync", decodeSyncGenerationChecked) ?? optional(body, "switchover", decodeSwitchoverChecked)
  );
}

/** Why a GET /history answer cannot be used, or null. */
export function historyAnswerProblem(body: unknown): string | null {
  if (!isObject(body)) return "not an object";
  return list(body, "events", decodeHistoryChecked);
}

/** Throws US_E_API_ANSWER when `problem` found one. */
export function requireUsable(url: string, path: string, problem: string | null): void {
  if (problem !== null) throw new UnderstudyError("US_E_API_ANSWER", { url, path, problem: problem.slice(0, 300) });
}
