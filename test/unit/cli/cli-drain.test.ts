// `understudy switchover --drain`: the flag's checks, the request it writes,
// the progress it prints while the primary drains, and the drain counts in
// `understudy history`. The real CLI main() against the real API over a
// FakeCoordinator (no agent: the request stays pending while the CLI follows).
import assert from "node:assert/strict";
import { test } from "node:test";
import { TOKEN, cli, member, realApi } from "./cli-helpers.js";

test("switchover --drain: a bad duration is a usage error (exit 2), nothing requested", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  for (const bad of ["soon", "500ms", "25h"]) {
    const r = await cli(["switchover", "--to", "n2", "--drain", bad, "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
    assert.equal(r.code, 2, `${bad}: ${r.out}${r.err}`);
    assert.match(r.out + r.err, /--drain takes a duration from 1s to 24h/);
  }
  assert.equal(api.etcd.switchover, null);
});

test("switchover --drain: the request carries drainMs; the CLI prints sessions left and seconds waited as the primary says them", async (t) => {
  const decision = "switchover to n2: draining, 1 session left, 3.4s of 30s waited (new sessions refused by an nftables rule (table inet understudy_drain) on 198.18.0.100 port 22)";
  const api = await realApi({ members: [member("n1", { role: "primary", decision }), member("n2")] });
  t.after(() => api.close());
  const r = await cli(["switchover", "--to", "n2", "--drain", "30s", "--wait", "1", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
  assert.equal(api.etcd.switchover?.drainMs, 30_000);
  assert.match(r.out, /^switchover from n1 to n2 requested$/m);
  assert.match(r.out, /^draining on n1: 1 session left, 3s of 30s waited$/m);
  assert.equal(r.out.match(/draining on/g)?.length, 1, "printed once per change");
  // No agent carries it out here: the CLI gives up after --wait.
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /timed out/);
});

test("history: a drained switchover's counts are printed beside its durations", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  await api.etcd.appendHistory(
    {
      kind: "switchover",
      at: "2026-12-05T03:00:00.000Z",
      node: "n2",
      from: "n1",
      to: "n2",
      term: 2,
      reason: "",
      requestedBy: "ops@host",
      durations: { handover_ms: 357, drain_ms: 5049 },
      counts: { drained: 1, cut: 0 },
    },
    null,
  );
  const h = await cli(["history", "--api", api.url]);
  assert.equal(h.code, 0, h.err);
  assert.match(h.out, /switchover +n1 -> n2 term 2 .*\(handover_ms 357, drain_ms 5049\) \[drained 1, cut 0\]/);
});

test("switchover --drain 24h: followed for the whole drain by default; --wait may grow with the drain", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const tooLong = await cli(["switchover", "--to", "n2", "--drain", "1h", "--wait", "7300", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
  assert.equal(tooLong.code, 2, tooLong.out + tooLong.err);
  assert.match(tooLong.out + tooLong.err, /--wait takes seconds from 0 to 7200/);
  const scheduled = await cli(["switchover", "--to", "n2", "--drain", "24h", "--at", "2099-01-01T00:00:00Z", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
  assert.equal(scheduled.code, 0, scheduled.out + scheduled.err);
  assert.equal(api.etcd.switchover?.drainMs, 86_400_000);
  assert.equal(api.etcd.switchover?.at, "2099-01-01T00:00:00.000Z");
});
