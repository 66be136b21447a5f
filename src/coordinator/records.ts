import { z } from "zod";
import type { BanRecord, DataProgress, DataRejoinRecord, FailsafeMembers, HistoryEvent, LeaderRecord, MemberRecord, ReleaseRecord, SwitchoverRequest, SyncGeneration } from "./port.js";

// Values are JSON, and whatever is in etcd is untrusted input: anyone who could
// write there (a bug, an old agent, an attacker with etcd access) must not be
// able to crash the loop or steer a decision with a malformed record. Every
// record is checked against a schema; one that fails is reported (the
// coordinator logs it once and counts it) and treated as absent: when in
// doubt, be a standby.

/** A decoded record, or why it was refused. */
export type Decoded<T> = { readonly ok: T } | { readonly problem: string };

// Bounds: names as in the config, counters as safe integers, text short enough to print.
const nodeName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const text = (max: number) => z.string().max(max);
// A time understudy wrote (toISOString). Anything Date.parse cannot read is refused here: a NaN
// compares false both ways, and made a wait bounded by it (a switchover's catch-up and failsafe
// hold waits, from its requestedAt) never end. Every time field is checked alike.
const isoTime = z
  .string()
  .max(40)
  .refine((s) => Number.isFinite(Date.parse(s)), "must be a time like 2026-12-05T17:50:00.000Z");

// acquired_at is shown, never computed with (it may be ""). The leader key is read leniently there:
// refusing it would make a led cluster look vacant to `status` (campaigns stay safe: they need the key absent).
const leaseId = z.string().regex(/^[0-9a-fA-F]{1,20}$/);
const leaderValue = z.object({ node: nodeName, lease: leaseId, acquired_at: z.string().max(40).optional() });

const dataLagSchema = z.object({
  acked: count,
  files: count,
  bytes: count,
  seconds: z.number().min(0).max(1e9),
  full: z.boolean(),
  paused: text(2000).nullable(),
});

const memberSchema = z.object({
  node: nodeName,
  role: z.enum(["primary", "standby", "fenced", "starting", "stopping"]),
  healthy: z.boolean(),
  notReady: text(8000).optional(),
  campaignHold: text(8000).optional(),
  priority: z.number().int().min(-1_000_000).max(1_000_000),
  nofailover: z.boolean(),
  generation: count,
  sync: z
    .object({
      behindSince: isoTime.nullable(),
      lastSuccessAt: isoTime.nullable(),
      lastError: text(8000).nullable(),
      failures: count,
      rescues: count,
      waiting: text(8000).nullable(),
      failedRoots: z.array(text(64)).max(256).optional(),
      step: text(8000).optional(),
    })
    .optional(),
  data: z
    .object({
      receiving: count.nullable(),
      rejoin: z.literal("pending").nullable(),
      freeBytes: count.nullable(),
      lag: dataLagSchema.nullable(),
      step: text(8000).optional(),
    })
    .optional(),
  address: text(100),
  version: text(100),
  decision: text(8000),
  probes: z.record(text(64), z.boolean()),
  vipHeld: z.boolean(),
  vipMissingSince: isoTime.optional(),
  vipHolder: z
    .string()
    .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
    .optional(),
  vipProblem: text(500).optional(),
  daemonRunning: z.boolean(),
  api: text(300).optional(),
  answersReady: z.literal(true).optional(),
  lease: leaseId.optional(),
  updatedAt: isoTime,
});

const switchoverSchema = z.object({
  kind: z.enum(["switchover", "failback", "failover"]),
  from: nodeName.nullable(),
  to: nodeName.nullable(),
  chosen: z.boolean().optional(),
  at: isoTime.nullable(),
  force: z.boolean(),
  requestedBy: text(500),
  reason: text(8000),
  requestedAt: isoTime,
  drainMs: count.max(86_400_000).optional(),
});

const releasedSchema = z.object({
  node: nodeName,
  term: count,
  at: isoTime,
  why: z.enum(["switchover", "shutdown", "handover", "veto"]),
  reason: text(8000).optional(),
  vipNotFree: text(500).optional(),
  drain: z.object({ drained: count, cut: count.optional(), waitedMs: count }).optional(),
});
const banSchema = z.object({ node: nodeName, until: isoTime, requestedBy: text(500), reason: text(8000) });
const syncSchema = z.object({
  generation: count,
  digest: text(200),
  roots: z.record(text(100), text(200)),
  files: count,
  source: nodeName,
  term: count,
  publishedAt: isoTime,
  displaced: z.object({ source: nodeName, generation: count }).optional(),
});
const historySchema = z.object({
  kind: z.enum([
    "failover",
    "switchover",
    "failback",
    "handover",
    "fence",
    "veto",
    "pause",
    "resume",
    "ban",
    "unban",
    "request",
    "stale_promotion",
    "rescue",
    "flap_damped",
    "flap_clear",
    "data_rejoin",
    "data_lag_promotion",
  ]),
  at: isoTime,
  node: nodeName,
  from: nodeName.nullable(),
  to: nodeName.nullable(),
  term: count.nullable(),
  reason: text(8000),
  requestedBy: text(500).optional(),
  requestedAt: isoTime.optional(),
  durations: z.record(text(64), z.number()).optional(),
  counts: z.record(text(64), count).optional(),
});

const dataProgressSchema = z.object({
  node: nodeName,
  term: count,
  head: count,
  at: isoTime,
  standbys: z.record(nodeName, dataLagSchema),
});

function decode<S extends z.ZodType>(schema: S, value: string): Decoded<z.output<S>> {
  if (value.length > 64 * 1024) return { problem: `value of ${value.length} bytes is larger than any record understudy writes` };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { problem: "not JSON" };
  }
  const r = schema.safeParse(json);
  if (r.success) return { ok: r.data };
  const issue = r.error.issues[0]!;
  return { problem: `${issue.path.map(String).join(".") || "(record)"}: ${issue.message}` };
}

export function encodeLeader(node: string, lease: string, acquiredAt: string): string {
  return JSON.stringify({ node, lease, acquired_at: acquiredAt });
}

/** `modRevision`: the key's mod_revision, its term (a campaign creates the key, a handover puts it; a keepalive changes neither). */
export function decodeLeaderChecked(value: string, modRevision: number): Decoded<LeaderRecord> {
  const d = decode(leaderValue, value);
  if ("problem" in d) return d;
  return { ok: { node: d.ok.node, lease: d.ok.lease, term: modRevision, acquiredAt: d.ok.acquired_at ?? "" } };
}

export const decodeMemberChecked = (value: string): Decoded<MemberRecord> => decode(memberSchema, value) as Decoded<MemberRecord>;
export const decodeSwitchoverChecked = (value: string): Decoded<SwitchoverRequest> => decode(switchoverSchema, value) as Decoded<SwitchoverRequest>;
export const decodeReleasedChecked = (value: string): Decoded<ReleaseRecord> => decode(releasedSchema, value) as Decoded<ReleaseRecord>;
export const decodeBanChecked = (value: string): Decoded<BanRecord> => decode(banSchema, value);
export const decodeSyncGenerationChecked = (value: string): Decoded<SyncGeneration> => decode(syncSchema, value) as Decoded<SyncGeneration>;
export const decodeHistoryChecked = (value: string): Decoded<HistoryEvent> => decode(historySchema, value) as Decoded<HistoryEvent>;

const okOrUndefined = <T>(d: Decoded<T>): T | undefined => ("ok" in d ? d.ok : undefined);
export const decodeLeader = (value: string, modRevision: number) => okOrUndefined(decodeLeaderChecked(value, modRevision));

/** A record refused while reading a snapshot: its key, its mod revision (to report it once) and why. */
export interface InvalidRecord {
  readonly kind: "leader" | "member" | "switchover" | "released" | "ban" | "sync" | "history" | "data_rejoin" | "data_progress" | "failsafe_members";
  readonly key: string;
  readonly modRevision: number;
  readonly problem: string;
}

/**
 * Cross-record checks on decoded members: a member key must carry its own
 * node's record, and no member may claim a sync generation beyond the one
 * published (nor any when none is): such a claim would make every honest
 * standby look behind and block every promotion and switchover. The claim is
 * lowered to the published generation and reported.
 */
export function checkMembers(
  members: readonly { readonly key: string; readonly keyNode: string; readonly modRevision: number; readonly record: MemberRecord }[],
  published: SyncGeneration | null,
): { members: MemberRecord[]; invalid: InvalidRecord[] } {
  const out: MemberRecord[] = [];
  const invalid: InvalidRecord[] = [];
  const ceiling = published?.generation ?? 0;
  for (const m of members) {
    if (m.record.node !== m.keyNode) {
      invalid.push({ kind: "member", key: m.key, modRevision: m.modRevision, problem: `the key names ${m.keyNode} but the record names ${m.record.node}` });
      continue;
    }
    if (m.record.generation > ceiling) {
      invalid.push({ kind: "member", key: m.key, modRevision: m.modRevision, problem: `claims sync generation ${m.record.generation}, beyond the published ${ceiling}; counted as ${ceiling}` });
      out.push({ ...m.record, generation: ceiling });
      continue;
    }
    out.push(m.record);
  }
  return { members: out, invalid };
}

/** history/<zero-padded epoch ms>-<node>: keys sort in time order. */
export function historyKey(prefix: string, event: HistoryEvent, wallMs: number): string {
  return `${prefix}${String(wallMs).padStart(15, "0")}-${event.node}-${event.kind}`;
}

export const decodeDataProgress = (value: string): Decoded<DataProgress> => decode(dataProgressSchema, value) as Decoded<DataProgress>;

const failsafeMembersSchema = z.object({ term: count, nodes: z.array(nodeName).min(1).max(64) });
export const decodeFailsafeMembers = (value: string): Decoded<FailsafeMembers> => decode(failsafeMembersSchema, value);

const dataRejoinSchema = z.object({ node: nodeName, by: nodeName, term: count, done: z.boolean(), moved: count, conflicts: count, at: isoTime });
export const decodeDataRejoin = (value: string): Decoded<DataRejoinRecord> => decode(dataRejoinSchema, value);
