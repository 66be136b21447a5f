// How `understudy switchover` reports the end of the move it requested, from /cluster and /history.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TOKEN, cli, member, realApi } from "./cli-helpers.js";

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(ok(), "the CLI made its request within 4 s");
}

/** `understudy switchover ARGS` against a real API on a fake etcd (n1 primary, n2, n3), once its request is in etcd. */
async function requested(t: { after(fn: () => unknown): void }, args: string[]) {
  const api = await realApi({ members: [member("n1", { role: "primary" }), member("n2"), member("n3")] });
  t.after(() => api.close());
  const run = cli(["switchover", ...args, "--wait", "4", "--api", api.url], { UNDERSTUDY_API_TOKEN: TOKEN });
  await until(() => api.etcd.switchover !== null);
  const sw = api.etcd.switchover!;
  return { api, run, sw, at: (ms: number) => new Date(Date.parse(sw.requestedAt) + ms).toISOString() };
}

test("a move the role overtook (cancelled 'not done' by a third node): exit 3 with the reason, not success", async (t) => {
  const { api, run, sw } = await requested(t, ["--to", "n3"]);
  // n3 gave the key back and n2 won: n2 cancels the request and records why (switchover.ts, chronicle.ts).
  api.etcd.leader = { node: "n2", lease: api.etcd.leader!.lease, term: 99, acquiredAt: "" };
  await api.etcd.cancelSwitchover();
  const why = "the role went to n2 (term 99), not to n3";
  await api.etcd.appendHistory(
    { kind: "switchover", at: new Date(Date.parse(sw.requestedAt) + 1000).toISOString(), node: "n2", from: sw.from, to: sw.to, term: null, reason: `not done: ${why}`, requestedBy: sw.requestedBy },
    null,
  );
  const r = await run;
  assert.equal(r.code, 3, r.out);
  assert.match(r.out, new RegExp(`switchover cancelled: ${why.replace(/[()]/g, "\\$&")}`));
});

test("an older 'not done' of the same requester does not turn a successful move into a cancellation", async (t) => {
  const { api, run, sw, at } = await requested(t, ["--to", "n2", "--requested-by", "ops"]);
  await api.etcd.appendHistory({ kind: "switchover", at: at(-3_600_000), node: "n1", from: "n1", to: "n3", term: null, reason: "not done: n3 is not a live standby", requestedBy: "ops" }, null);
  api.etcd.leader = { node: "n2", lease: api.etcd.leader!.lease, term: 42, acquiredAt: "" };
  await api.etcd.cancelSwitchover();
  await api.etcd.appendHistory(
    { kind: "switchover", at: new Date().toISOString(), node: "n2", from: "n1", to: "n2", term: 42, reason: sw.reason, requestedBy: "ops", durations: { handover_ms: 31 } },
    42,
  );
  const r = await run;
  assert.equal(r.code, 0, `${r.out} | ${r.err}`);
  assert.match(r.out, /switchover done: n2 is the primary \(term 42\); handover took 31 ms/);
});

test("the 'not done' of the same requester's request seconds before (another requestedAt) is not this one's: the event names its request", async (t) => {
  const { api, run, sw, at } = await requested(t, ["--to", "n2", "--requested-by", "ops"]);
  // The previous request, to the same target, cancelled 2 s before this one was made (inside the clock-skew window).
  await api.etcd.appendHistory(
    {
      kind: "switchover",
      at: at(-2000),
      node: "n1",
      from: "n1",
      to: "n2",
      term: null,
      reason: "not done: n2 did not answer that it is ready to take over within 5s (timeout)",
      requestedBy: "ops",
      requestedAt: at(-8000),
    },
    null,
  );
  api.etcd.leader = { node: "n2", lease: api.etcd.leader!.lease, term: 43, acquiredAt: "" };
  await api.etcd.cancelSwitchover();
  await api.etcd.appendHistory(
    {
      kind: "switchover",
      at: new Date().toISOString(),
      node: "n2",
      from: "n1",
      to: "n2",
      term: 43,
      reason: sw.reason,
      requestedBy: "ops",
      requestedAt: sw.requestedAt,
      durations: { handover_ms: 12 },
    },
    43,
  );
  const r = await run;
  assert.equal(r.code, 0, `${r.out} | ${r.err}`);
  assert.match(r.out, /switchover done: n2 is the primary \(term 43\); handover took 12 ms/);
});
