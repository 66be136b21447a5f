// Records read from etcd are untrusted input (issue 11, item 2): each decoder
// checks a schema and says why it refuses; cross-record checks bound generations.
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import type { MemberRecord, SyncGeneration } from "../../../src/coordinator/port.js";
import { InvalidRecordLog } from "../../../src/coordinator/invalid-records.js";
import {
  checkMembers,
  decodeBanChecked,
  decodeHistoryChecked,
  decodeLeaderChecked,
  decodeMemberChecked,
  decodeSwitchoverChecked,
  decodeSyncGenerationChecked,
  encodeLeader,
} from "../../../src/coordinator/records.js";

const MEMBER: MemberRecord = {
  node: "n2",
  role: "standby",
  healthy: true,
  priority: 100,
  nofailover: false,
  generation: 4,
  address: "198.18.0.12",
  version: "0.1.0",
  decision: "no action: following n1 (term 7)",
  probes: { sftp: true },
  vipHeld: false,
  daemonRunning: false,
  api: "http://198.18.0.12:8470",
  updatedAt: "2026-12-04T14:00:00.000Z",
  sync: { behindSince: null, lastSuccessAt: "2026-12-04T13:59:00.000Z", lastError: null, failures: 0, rescues: 0, waiting: null },
};
const SYNC: SyncGeneration = { generation: 4, digest: "sha256:ab", roots: { ssh: "sha256:cd" }, files: 3, source: "n1", term: 7, publishedAt: "2026-12-04T13:58:00.000Z" };

test("a well-formed record of each kind decodes to itself", () => {
  assert.deepEqual(decodeMemberChecked(JSON.stringify(MEMBER)), { ok: MEMBER });
  assert.deepEqual(decodeSyncGenerationChecked(JSON.stringify(SYNC)), { ok: SYNC });
  assert.deepEqual(decodeLeaderChecked(encodeLeader("n1", "694d7a1b2c3d4e5f", "2026-12-04T13:00:00Z"), 41), {
    ok: { node: "n1", lease: "694d7a1b2c3d4e5f", term: 41, acquiredAt: "2026-12-04T13:00:00Z" },
  });
  // The etcd adapter writes lease ids as decimal strings of int64 (up to 20 digits).
  assert.equal(decodeLeaderChecked(encodeLeader("n1", "7587883449817071118", ""), 3).hasOwnProperty("ok"), true);
  const sw = { kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "ops@h", reason: "kernel", requestedAt: "2026-12-04T13:00:00Z" };
  assert.deepEqual(decodeSwitchoverChecked(JSON.stringify(sw)), { ok: sw });
  const h = { kind: "failover", at: "2026-12-04T13:00:00Z", node: "n2", from: "n1", to: "n2", term: 9, reason: "lease expired", durations: { gap_ms: 1200 } };
  assert.deepEqual(decodeHistoryChecked(JSON.stringify(h)), { ok: h });
});

test("malformed records are refused with the field and the reason, never thrown", () => {
  const cases: [string, string, RegExp][] = [
    ["member", "{not json", /not JSON/],
    ["member", "null", /\(record\)/],
    ["member", JSON.stringify({ ...MEMBER, role: "king" }), /^role:/],
    ["member", JSON.stringify({ ...MEMBER, node: "N1;rm -rf" }), /^node:/],
    ["member", JSON.stringify({ ...MEMBER, generation: 1e300 }), /^generation:/],
    ["member", JSON.stringify({ ...MEMBER, generation: -1 }), /^generation:/],
    ["member", JSON.stringify({ ...MEMBER, generation: 2.5 }), /^generation:/],
    ["member", JSON.stringify({ ...MEMBER, healthy: "yes" }), /^healthy:/],
    ["member", JSON.stringify({ ...MEMBER, decision: "x".repeat(9000) }), /^decision:/],
    ["member", "x".repeat(70_000), /larger than any record/],
    ["sync", JSON.stringify({ ...SYNC, generation: "7" }), /^generation:/],
    ["sync", JSON.stringify({ ...SYNC, roots: [] }), /^roots:/],
    ["ban", JSON.stringify({ node: 7, until: "", requestedBy: "", reason: "" }), /^node:/],
    ["history", JSON.stringify({ kind: "coup", at: "" }), /^kind:/],
    ["leader", JSON.stringify({ node: "n1", lease: "not-hex" }), /^lease:/],
  ];
  const decoders: Record<string, (v: string) => unknown> = {
    member: decodeMemberChecked,
    sync: decodeSyncGenerationChecked,
    ban: decodeBanChecked,
    history: decodeHistoryChecked,
    leader: (v) => decodeLeaderChecked(v, 1),
  };
  for (const [kind, value, why] of cases) {
    const d = decoders[kind]!(value) as { problem?: string };
    assert.ok(d.problem !== undefined, `${kind} ${value.slice(0, 60)} was accepted`);
    assert.match(d.problem, why, `${kind}: ${d.problem}`);
  }
});

const entry = (record: MemberRecord, keyNode = record.node) => ({ key: `/understudy/c/members/${keyNode}`, keyNode, modRevision: 5, record });

test("checkMembers: a claim beyond the published generation is lowered to it and reported; honest members are untouched", () => {
  const forged = { ...MEMBER, node: "n3", generation: 9_000_000_000 };
  const r = checkMembers([entry(MEMBER), entry(forged)], SYNC);
  assert.deepEqual(
    r.members.map((m) => [m.node, m.generation]),
    [
      ["n2", 4],
      ["n3", 4],
    ],
  );
  assert.equal(r.invalid.length, 1);
  assert.match(r.invalid[0]!.problem, /claims sync generation 9000000000, beyond the published 4/);
  // Nothing published: no member can claim any generation (all count as 0, none blocks another).
  assert.deepEqual(
    checkMembers([entry(MEMBER)], null).members.map((m) => m.generation),
    [0],
  );
});

test("checkMembers: a member key holding another node's record is dropped", () => {
  const r = checkMembers([entry({ ...MEMBER, node: "n1", role: "primary" }, "n2")], SYNC);
  assert.deepEqual(r.members, []);
  assert.match(r.invalid[0]!.problem, /the key names n2 but the record names n1/);
});

test("InvalidRecordLog warns once per key revision and counts by kind", () => {
  const lines: string[] = [];
  const log = new InvalidRecordLog(pino({ level: "warn" }, { write: (s: string) => void lines.push(s) }));
  const bad = { kind: "member" as const, key: "/understudy/c/members/n9", modRevision: 7, problem: "role: bad" };
  for (let i = 0; i < 20; i++) log.report(bad);
  log.report({ ...bad, modRevision: 8 });
  log.report({ ...bad, kind: "sync", key: "/understudy/c/sync/generation" });
  assert.equal(lines.length, 3);
  assert.deepEqual(log.totals(), { member: 2, sync: 1 });
});
