// The chaos checker's part for replicated uploads (test/chaos/data-checks.ts): strict tables.
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkReplicatedUploads, dataRpoTable, formatDataRpo } from "../../chaos/data-checks.js";
import type { FaultRecord, UploadRecord } from "../../chaos/types.js";

const up = (name: string, end: number, ok = true): UploadRecord => ({ name, sha256: `h-${name}`, bytes: 10, start: end - 5, end, ok });
const fault: FaultRecord = { id: 1, kind: "agent_kill9", injectAt: 100, healAt: 200, settledAt: 300, settled: true };
const faultAt = (t: number) => (t >= fault.injectAt && t <= fault.settledAt ? fault : undefined);

test("chaos data: an acknowledged upload missing or different on any node at the end is upload_unreplicated", () => {
  const v = checkReplicatedUploads([up("a", 50), up("b", 150), up("c", 160, false)], { n1: { a: "h-a", b: "h-b" }, n2: { a: "h-a", b: "other" }, n3: { b: "h-b" } }, faultAt);
  assert.deepEqual(
    v.map((x) => [x.kind, x.fault, x.detail]),
    [
      ["upload_unreplicated", "none", "a (10 B) was acknowledged but at the end is not on n3 (missing)"],
      ["upload_unreplicated", "agent_kill9", "b (10 B) was acknowledged but at the end is not on n2 (different)"],
    ],
  );
  assert.deepEqual(checkReplicatedUploads([up("a", 50), up("c", 60, false)], { n1: { a: "h-a" }, n2: { a: "h-a" } }, faultAt), [], "unacknowledged uploads are not owed");
});

test("chaos data: RPO at promotion per fault kind, median and max", () => {
  const rows = dataRpoTable(
    [
      { t: 150, node: "n2", listedAt: 151, missing: ["x", "y"], acknowledged: 10 },
      { t: 250, node: "n3", listedAt: 251, missing: [], acknowledged: 20 },
      { t: 290, node: "n1", listedAt: 291, missing: ["z"], acknowledged: 30 },
      { t: 500, node: "n2", listedAt: 501, missing: [], acknowledged: 40 },
    ],
    faultAt,
  );
  assert.deepEqual(rows, [
    { kind: "agent_kill9", promotions: 3, missingMedian: 1, missingMax: 2, acknowledged: 60 },
    { kind: "none", promotions: 1, missingMedian: 0, missingMax: 0, acknowledged: 40 },
  ]);
  assert.match(formatDataRpo(rows).join("\n"), /\| agent_kill9 +\| 3 +\| 1 +\| 2 +\|/);
  assert.deepEqual(formatDataRpo([]), ["data roots: no leader change during the run"]);
});
