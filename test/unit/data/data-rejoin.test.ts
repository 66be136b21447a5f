// The rejoin merge planner (src/data/rejoin.ts) as a table: each inbox file a
// returning former primary held gives one step and one reason sentence; no
// step ever deletes from the live tree.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { conflictName, mergeSummary, planMerge, type MergeInput } from "../../../src/data/rejoin.js";

const WALL = Date.UTC(2026, 11, 4, 22, 5, 9, 123);

function input(over: Partial<MergeInput> = {}): MergeInput {
  return { path: "alice/in/a.csv", live: { kind: "absent" }, deletedHere: false, from: "n1", term: 8, wallMs: WALL, taken: new Set(), ...over };
}

const cases: { name: string; i: MergeInput; kind: string; target?: string; reason: string }[] = [
  {
    name: "absent here -> moved into place",
    i: input(),
    kind: "move",
    target: "alice/in/a.csv",
    reason: "moving n1's copy of alice/in/a.csv into place: this primary never received it",
  },
  {
    name: "same content here -> dropped from the inbox",
    i: input({ live: { kind: "same" } }),
    kind: "drop",
    reason: "dropping n1's copy of alice/in/a.csv: this primary holds the same content",
  },
  {
    name: "different here -> both kept, the incoming one under the conflict name",
    i: input({ live: { kind: "different" } }),
    kind: "conflict",
    target: "alice/in/a.understudy-conflict-n1-20261204T220509Z.csv",
    reason: "keeping both: alice/in/a.csv differs here, n1's copy goes to a.understudy-conflict-n1-20261204T220509Z.csv",
  },
  {
    name: "deleted here during the failover window -> restored, and said so",
    i: input({ deletedHere: true }),
    kind: "move",
    target: "alice/in/a.csv",
    reason: "restoring alice/in/a.csv from n1: it was deleted here in term 8, but n1 held a copy this primary never received (nothing acknowledged is dropped)",
  },
];

for (const c of cases) {
  test(`merge: ${c.name}`, () => {
    const s = planMerge(c.i);
    assert.equal(s.kind, c.kind);
    assert.equal(s.reason, c.reason);
    if (c.target !== undefined) assert.equal("target" in s ? s.target : undefined, c.target);
  });
}

test("conflict names: the last extension stays last, dotfiles and top-level files, taken names skipped", () => {
  assert.equal(conflictName("r.tar.gz", "n1", WALL), "r.tar.understudy-conflict-n1-20261204T220509Z.gz");
  assert.equal(conflictName("bob/.profile", "n1", WALL), "bob/.profile.understudy-conflict-n1-20261204T220509Z");
  assert.equal(conflictName("bob/README", "n1", WALL), "bob/README.understudy-conflict-n1-20261204T220509Z");
  const taken = new Set(["a.understudy-conflict-n1-20261204T220509Z.csv", "a.understudy-conflict-n1-20261204T220509Z-2.csv"]);
  assert.equal(conflictName("x/a.csv", "n1", WALL, taken), "x/a.understudy-conflict-n1-20261204T220509Z-3.csv");
});

test("merge: a path outside the root is refused; the summary counts every kind", () => {
  assert.throws(
    () => planMerge(input({ path: "../etc/passwd" })),
    (e: unknown) => isUnderstudyError(e) && e.code === "US_E_DATA_CONFIG",
  );
  const steps = [input(), input({ live: { kind: "same" } }), input({ live: { kind: "different" } }), input({ deletedHere: true })].map(planMerge);
  assert.deepEqual(mergeSummary(steps), { moved: 2, restored: 1, conflicts: 1, dropped: 1 });
});
