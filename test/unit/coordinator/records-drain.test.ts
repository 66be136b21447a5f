// A drained switchover's fields in etcd records are untrusted input too:
// control/switchover's drainMs and control/released's drain summary.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeReleasedChecked, decodeSwitchoverChecked } from "../../../src/coordinator/records.js";

const SW = { kind: "switchover", from: "n1", to: "n2", at: null, force: false, requestedBy: "ops", reason: "", requestedAt: "2026-12-05T03:00:00.000Z" };
const REL = { node: "n1", term: 7, at: "2026-12-05T03:00:05.000Z", why: "switchover" };

test("records: a switchover request keeps a drainMs within 0..24h; anything else refuses the record", () => {
  assert.deepEqual(decodeSwitchoverChecked(JSON.stringify({ ...SW, drainMs: 30_000 })), { ok: { ...SW, drainMs: 30_000 } });
  assert.deepEqual(decodeSwitchoverChecked(JSON.stringify(SW)), { ok: SW });
  for (const drainMs of [-1, 1.5, 86_400_001, "30s", null]) assert.ok("problem" in decodeSwitchoverChecked(JSON.stringify({ ...SW, drainMs })), String(drainMs));
});

test("records: a release record keeps its drain summary (cut optional); malformed ones are refused", () => {
  const drain = { drained: 2, cut: 1, waitedMs: 30_000 };
  assert.deepEqual(decodeReleasedChecked(JSON.stringify({ ...REL, drain })), { ok: { ...REL, drain } });
  assert.deepEqual(decodeReleasedChecked(JSON.stringify({ ...REL, drain: { drained: 0, waitedMs: 5 } })), { ok: { ...REL, drain: { drained: 0, waitedMs: 5 } } });
  for (const bad of [{ drained: -1, waitedMs: 0 }, { drained: 1 }, { drained: 1, cut: "x", waitedMs: 0 }])
    assert.ok("problem" in decodeReleasedChecked(JSON.stringify({ ...REL, drain: bad })), JSON.stringify(bad));
});

test("records: a switchover request keeps `chosen` (the API's pick, src/ha/switchover.ts) when boolean; anything else refuses the record", () => {
  assert.deepEqual(decodeSwitchoverChecked(JSON.stringify({ ...SW, chosen: true })), { ok: { ...SW, chosen: true } });
  for (const chosen of ["yes", 1, null]) assert.ok("problem" in decodeSwitchoverChecked(JSON.stringify({ ...SW, chosen })), String(chosen));
});
