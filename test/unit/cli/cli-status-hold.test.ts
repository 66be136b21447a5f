// Failsafe (issue 16 part 1, S4/S6): `understudy status` says which standby may not campaign now
// and why (its member key's campaignHold), so an operator sees why a switchover to it waits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { renderStatus } from "../../../src/cli/status.js";
import type { ClusterSnapshot } from "../../../src/coordinator/port.js";
import { member } from "./cli-helpers.js";

const HOLD = "not campaigning: I promised n1 (failsafe) not to campaign within 6000ms of its last grant request";

function snap(over: Partial<ClusterSnapshot>): ClusterSnapshot {
  return {
    revision: 5,
    leader: { node: "n1", term: 2, lease: "1", acquiredAt: "" },
    members: [member("n1", { role: "primary" }), member("n2")],
    paused: false,
    switchover: null,
    released: null,
    bans: [],
    sync: null,
    ...over,
  };
}

test("status: a held standby gets a line under the table; none without a hold; escape codes are escaped", () => {
  assert.doesNotMatch(renderStatus("c", snap({})), /Held:/);
  const out = renderStatus("c", snap({ members: [member("n1", { role: "primary" }), member("n2", { campaignHold: HOLD }), member("n3", { campaignHold: "x\x1b[2Jy" })] }));
  const lines = out.split("\n");
  assert.equal(lines.at(-2), `Held: n2: ${HOLD}`);
  assert.equal(lines.at(-1), "Held: n3: x\\x1b[2Jy");
});
