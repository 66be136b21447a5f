// VIP truth in status, /cluster and the member key (issue 12, failure 1).
import assert from "node:assert/strict";
import { test } from "node:test";
import { renderStatus } from "../../../src/cli/status.js";
import { decodeMemberChecked, decodeReleasedChecked } from "../../../src/coordinator/records.js";
import type { ClusterSnapshot, MemberRecord } from "../../../src/coordinator/port.js";
import { VipWitness, memberVipFields, vipFindings, vipNotFree } from "../../../src/ha/vip-truth.js";
import { FakeClock } from "../../fakes/clock.js";

function member(node: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return {
    node,
    role: "standby",
    healthy: true,
    priority: 100,
    nofailover: false,
    generation: 0,
    address: "198.18.0.1",
    version: "t",
    decision: "",
    probes: {},
    vipHeld: false,
    daemonRunning: false,
    updatedAt: "2026-12-04T17:00:00.000Z",
    ...over,
  };
}
const snap = (members: MemberRecord[], leader = "n1"): ClusterSnapshot => ({
  revision: 9,
  leader: { node: leader, term: 7, lease: "a1", acquiredAt: "" },
  members,
  paused: false,
  switchover: null,
  released: null,
  bans: [],
  sync: null,
});

test("a healthy cluster has no VIP findings", () => {
  assert.deepEqual(vipFindings(snap([member("n1", { role: "primary", vipHeld: true }), member("n2")])), []);
});

test("primary without its VIP, held by another host: status says unhealthy with the MAC", () => {
  const s = snap([member("n1", { role: "primary", vipMissingSince: "2026-12-04T17:00:01.000Z", vipHolder: "02:75:07:00:00:13", vipProblem: "US_E_VIP_DUPLICATE: ..." }), member("n2")]);
  assert.deepEqual(vipFindings(s), ["primary n1 without its floating IP since 2026-12-04T17:00:01.000Z: VIP held by 02:75:07:00:00:13 (another host answers ARP for it)"]);
  const text = renderStatus("lab", s);
  assert.match(text, /\| n1 .*\| primary .*\| no: primary without VIP \| MISSING: held by 02:75:07:00:00:13 \|/);
  assert.match(text, /^UNHEALTHY: primary n1 without its floating IP since .*: VIP held by 02:75:07:00:00:13/m);
});

test("primary without its VIP because a tool is missing; a standby holding it", () => {
  const s = snap([member("n1", { role: "primary", vipMissingSince: "2026-12-04T17:00:01.000Z", vipProblem: "US_E_TOOL_MISSING: arping ..." }), member("n2", { vipHeld: true })]);
  assert.deepEqual(vipFindings(s), ["primary n1 without its floating IP since 2026-12-04T17:00:01.000Z: US_E_TOOL_MISSING: arping ...", "VIP held by n2, which is not the primary (n1 is)"]);
  assert.match(renderStatus("lab", s), /\| n2 .*\| held \(NOT primary\) \|/);
});

test("member records: the new fields are optional (old records stay valid) and checked", () => {
  const old = member("n1");
  assert.ok("ok" in decodeMemberChecked(JSON.stringify(old)), '"ok" in decodeMemberChecked(JSON.stringify(old))');
  assert.ok(
    "ok" in decodeMemberChecked(JSON.stringify({ ...old, vipMissingSince: "2026-12-04T17:00:01.000Z", vipHolder: "02:75:07:00:00:13", vipProblem: "x" })),
    '"ok" in decodeMemberChecked(JSON.stringify({ ...old, vipMissingSince: "2026-12-04T17:00:01.000Z",...',
  );
  assert.ok(
    "problem" in decodeMemberChecked(JSON.stringify({ ...old, vipHolder: "not a mac; rm -rf /" })),
    '"problem" in decodeMemberChecked(JSON.stringify({ ...old, vipHolder: "not a mac; rm -rf /" }))',
  );
  const release = { node: "n1", term: 7, at: "2026-12-04T17:00:01.000Z", why: "handover" };
  assert.ok("ok" in decodeReleasedChecked(JSON.stringify(release)), '"ok" in decodeReleasedChecked(JSON.stringify(release))');
  assert.ok(
    "ok" in decodeReleasedChecked(JSON.stringify({ ...release, reason: "handing over: ...", vipNotFree: "held by 02:75:07:00:00:13" })),
    '"ok" in decodeReleasedChecked(JSON.stringify({ ...release, reason: "handing over: ...", vipNotFre...',
  );
});

test("vipNotFree: the successor skips its duplicate check only when the releaser held the address", () => {
  assert.deepEqual(vipNotFree({ desired: true, held: true, lastError: undefined }), {});
  assert.deepEqual(vipNotFree({ desired: true, held: false, lastError: "US_E_VIP_DUPLICATE: x", foreignMac: "02:75:07:00:00:13" }), { vipNotFree: "held by 02:75:07:00:00:13" });
  assert.deepEqual(vipNotFree({ desired: true, held: undefined, lastError: "US_E_TOOL_MISSING: arping" }), { vipNotFree: "US_E_TOOL_MISSING: arping" });
  assert.deepEqual(vipNotFree({ desired: false, held: false, lastError: undefined }), {});
});

test("VipWitness: missing time in wall-clock ISO, stable across cycles; nothing for a standby", async () => {
  const clock = new FakeClock();
  let state: { desired: boolean; held: boolean | undefined; lastError: string | undefined; missingSinceMs?: number | null; foreignMac?: string | null } = {
    desired: true,
    held: false,
    lastError: "US_E_VIP_DUPLICATE: x",
    missingSinceMs: clock.monotonicMs(),
    foreignMac: "02:75:07:00:00:13",
  };
  const w = new VipWitness({ state: () => state }, clock);
  const first = w.truth("primary");
  await clock.advance(5000);
  const later = w.truth("primary");
  assert.equal(later.missingSince, first.missingSince);
  assert.equal(later.missingMs, 5000);
  assert.deepEqual(memberVipFields(later), { vipMissingSince: first.missingSince!, vipHolder: "02:75:07:00:00:13", vipProblem: "US_E_VIP_DUPLICATE: x" });
  assert.deepEqual(w.view("standby"), { vipMissingMs: null, vipHolder: null, vipProblem: null });
  state = { desired: true, held: true, lastError: undefined };
  assert.deepEqual(memberVipFields(w.truth("primary")), {});
});
