// Control characters from etcd or an API never reach the terminal raw (issue 11,
// item 2), in every command that prints what a node's API answered, not only
// `status`. A hostile API (a forged etcd record passed through, or a node that
// is not what it claims) answers every route with every string field carrying
// escape sequences, CR, newlines and C1 controls; each command's output must
// show them as \xNN escapes: no raw control character, no forged line.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { TOKEN, cli, member, realApi } from "./cli-helpers.js";

// ESC [2J (clear screen), OSC 0 (window title) ended by BEL, CR, LF + a forged line, C1 CSI, DEL, NUL.
const EVIL = "\x1b[2J\x1b]0;pwned\x07\r\nFORGED-LINE\x9b31m\x7f\x00";
// Anything but the newline that separates printed lines.
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** Every string in `v` with EVIL appended (keys left alone). */
function evilify(v: unknown): unknown {
  if (typeof v === "string") return `${v}${EVIL}`;
  if (Array.isArray(v)) return v.map(evilify);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, evilify(x)]));
  return v;
}

/** A real cluster snapshot and history (from the real API over FakeCoordinator), every string made hostile. */
async function hostileAnswers(): Promise<{ cluster: unknown; history: unknown }> {
  const api = await realApi({
    members: [
      member("n1", { role: "primary", generation: 3, sync: { behindSince: null, lastSuccessAt: "2026-12-04T18:00:00Z", lastError: null, failures: 0, rescues: 0 } as never }),
      member("n2", { generation: 2, sync: { behindSince: "2026-12-04T18:00:00Z", lastSuccessAt: null, lastError: "US_E_SYNC_PULL: broken", failures: 1, rescues: 1, failedRoots: ["home"] } as never }),
    ],
  });
  try {
    const term = (await api.etcd.snapshot()).leader!.term;
    assert.ok(
      await api.etcd.publishGeneration(term, { generation: 3, digest: "0123456789abcdef", source: "n1", term: 1, publishedAt: "2026-12-04T18:00:00Z", files: 7 } as never),
      'await api.etcd.publishGeneration(term, { generation: 3, digest: "0123456789abcdef", source: "n1",...',
    );
    await api.etcd.appendHistory(
      { kind: "switchover", at: "2026-12-04T18:00:00Z", node: "n1", from: "n1", to: "n2", term: 1, reason: "operator", requestedBy: "ops@host", durations: { handover_ms: 812 } },
      null,
    );
    const cluster = (await (await fetch(`${api.url}/cluster`)).json()) as Record<string, unknown>;
    const history = await (await fetch(`${api.url}/history?limit=20`)).json();
    assert.ok(cluster.sync, "the snapshot carries a published generation");
    return { cluster: evilify(cluster), history: evilify(history) };
  } finally {
    await api.close();
  }
}

interface Hostile {
  url: string;
  /** When set, every mutation is refused with this status and a hostile error body. */
  refuse: number | null;
  close(): Promise<void>;
}

async function hostileApi(): Promise<Hostile> {
  const { cluster, history } = await hostileAnswers();
  const request = { kind: "switchover", from: `n1${EVIL}`, to: `n2${EVIL}`, at: `2030-01-01T00:00:00Z${EVIL}`, requestedAt: "2026-12-04T18:00:00Z", requestedBy: `ops${EVIL}`, reason: EVIL };
  const mutations: Record<string, unknown> = {
    "/switchover": { request },
    "/failover": { request: { ...request, kind: "failover" } },
    "/failback": { request: { ...request, kind: "failback" } },
    "/ban": { node: `n2${EVIL}`, until: `2026-12-04T18:05:00Z${EVIL}` },
    "/unban": { node: `n2${EVIL}` },
    "/pause": { paused: true, note: EVIL },
    "/resume": { paused: false, note: EVIL },
    "/flap/clear": { wasDamped: true, damped: { at: `2026-12-04T18:00:00Z${EVIL}`, reason: EVIL } },
    "/resync": { node: `n1${EVIL}` },
  };
  const state: Hostile = { url: "", refuse: null, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!;
      const send = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (req.method === "GET" && path === "/cluster") return send(200, cluster);
      if (req.method === "GET" && path === "/history") return send(200, history);
      if (req.method === "POST" && path in mutations) {
        if (state.refuse !== null) return send(state.refuse, { error: `US_E_API_BAD_REQUEST${EVIL}`, message: `refused${EVIL}` });
        return send(202, mutations[path]);
      }
      return send(404, { error: `US_E_NOT_FOUND${EVIL}`, message: `no ${path}${EVIL}` });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((r) => server.close(() => r()));
  return state;
}

// Every command that prints API- or etcd-supplied text, with the arguments it needs.
const COMMANDS: readonly (readonly string[])[] = [
  ["status"],
  ["history"],
  ["history", "--limit", "5"],
  ["sync", "status"],
  ["switchover", "--to", "n2", "--wait", "0"],
  ["switchover", "--at", "2030-01-01T00:00:00Z"],
  ["failover", "--to", "n2", "--force", "--wait", "0"],
  ["failback", "--wait", "0"],
  ["ban", "n2", "--for", "5m"],
  ["unban", "n2"],
  ["pause"],
  ["resume"],
  ["flap", "clear"],
  ["resync"],
];
const MUTATIONS = COMMANDS.filter((c) => !["status", "history", "sync"].includes(c[0]!));

function assertEscaped(argv: readonly string[], r: { code: number; out: string; err: string }): void {
  const all = `${r.out}\n${r.err}`;
  const where = `${argv.join(" ")} (exit ${r.code}):\n${JSON.stringify(all)}`;
  assert.doesNotMatch(all, RAW_CONTROL, `a raw control character reached the terminal: ${where}`);
  assert.ok(!all.split("\n").some((l) => l.startsWith("FORGED-LINE")), `a value forged a line of its own: ${where}`);
}

test("every printing command escapes control characters from a hostile API (answers and refusals)", async (t) => {
  const api = await hostileApi();
  t.after(() => api.close());
  const env = { UNDERSTUDY_API_TOKEN: TOKEN };
  let tried = 0;
  let showed = 0;
  for (const argv of COMMANDS) {
    const r = await cli([...argv, "--api", api.url], env);
    assertEscaped(argv, r);
    tried++;
    if (`${r.out}${r.err}`.includes("\\x1b")) showed++;
    // Names with escape codes fail the record schemas: the read commands refuse the whole answer, coded.
    if (["status", "history", "sync"].includes(argv[0]!)) {
      assert.equal(r.code, 1, `${argv.join(" ")}: ${r.err}`);
      assert.match(r.err, /US_E_API_ANSWER/);
      assert.equal(r.out, "", `${argv.join(" ")} printed nothing of the answer`);
    }
  }
  // Each mutation again, refused with a hostile error body (the refusal printer).
  api.refuse = 400;
  for (const argv of MUTATIONS) {
    const r = await cli([...argv, "--api", api.url], env);
    assert.equal(r.code, 3, `${argv.join(" ")} refused with 400 exits 3`);
    assertEscaped(argv, r);
    assert.match(r.out, /refused \(400 US_E_API_BAD_REQUEST\\x1b\[2J/);
    tried++;
  }
  // Read commands against a 404 with a hostile body.
  for (const argv of [["history"], ["sync", "status"], ["status"]]) {
    const r = await cli([...argv, "--api", `${api.url}/nowhere`], env);
    assertEscaped(argv, r);
    tried++;
  }
  assert.equal(tried, COMMANDS.length + MUTATIONS.length + 3);
  // The hostile text itself is shown (escaped), not dropped, wherever the command prints it.
  // switchover (2), failover, failback, ban, flap clear, resync echo the answer; pause, resume and
  // unban print fixed text or the command line; the 4 reads refuse the answer (above).
  assert.equal(showed, 7, `escaped hostile text shown by ${showed} of ${COMMANDS.length} commands`);
});

/** A server answering GET /cluster and /history with the given bodies. */
async function answering(bodies: { cluster?: unknown; history?: unknown }): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!;
      const body = path === "/cluster" ? bodies.cluster : path === "/history" ? bodies.history : undefined;
      res.writeHead(body === undefined ? 404 : 200, { "content-type": "application/json" }).end(JSON.stringify(body ?? { error: "US_E_NOT_FOUND", message: "no" }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test("honest answers from the real API pass the answer checks: status, history and sync status print them", async (t) => {
  const api = await realApi();
  t.after(() => api.close());
  const term = (await api.etcd.snapshot()).leader!.term;
  assert.ok(
    await api.etcd.publishGeneration(term, { generation: 1, digest: "sha256:0123456789abcdef", roots: { home: "sha256:ab" }, files: 2, source: "n1", term, publishedAt: "2026-12-04T18:00:00.000Z" }),
    'await api.etcd.publishGeneration(term, { generation: 1, digest: "sha256:0123456789abcdef", roots:...',
  );
  await api.etcd.appendHistory(
    { kind: "switchover", at: "2026-12-04T18:00:00.000Z", node: "n1", from: "n2", to: "n1", term, reason: "operator", requestedBy: "ops@host", durations: { handover_ms: 812 } },
    null,
  );
  const status = await cli(["status", "--api", api.url]);
  assert.equal(status.code, 0, status.err);
  const history = await cli(["history", "--api", api.url]);
  assert.equal(history.code, 0, history.err);
  assert.match(history.out, /switchover +n2 -> n1 .*operator \[by ops@host\] \(handover_ms 812\)/);
  const sync = await cli(["sync", "status", "--api", api.url]);
  assert.equal(sync.code, 0, sync.err);
  assert.match(sync.out, /Published: generation 1 by n1/);
});

test("malformed /cluster and /history answers are one coded error (US_E_API_ANSWER), nothing printed from them", async (t) => {
  const { cluster, history } = await hostileAnswers();
  const c = cluster as Record<string, unknown>;
  const m0 = (c.members as Record<string, unknown>[])[0]!;
  const clusters: [string, unknown][] = [
    ["a list", []],
    ["a string", "cluster"],
    ["null", null],
    ["members null", { ...c, members: null }],
    ["members an object", { ...c, members: {} }],
    ["a member without fields", { ...c, members: [{ node: "n1" }] }],
    ["a member name as a number", { ...c, members: [{ ...m0, node: 5 }] }],
    ["a member generation as a string", { ...c, members: [{ ...m0, generation: "3" }] }],
    ["leader missing", { ...c, leader: undefined }],
    ["leader term as a string", { ...c, leader: { node: "n1", term: "1" } }],
    ["paused as a string", { ...c, paused: "no" }],
    ["bans null", { ...c, bans: null }],
    ["a ban node as a number", { ...c, bans: [{ node: 7, until: "", requestedBy: "", reason: "" }] }],
    ["sync generation as a string", { ...c, sync: { generation: "3" } }],
    ["switchover kind coup", { ...c, switchover: { kind: "coup" } }],
  ];
  const histories: [string, unknown][] = [
    ["events null", { events: null }],
    ["events an object", { events: {} }],
    ["an event kind 7", { events: [{ kind: 7, at: null, from: 3, reason: {} }] }],
    ["an event without fields", { events: [{}] }],
    ["a list", [history]],
  ];
  let tried = 0;
  for (const [what, body] of clusters) {
    const srv = await answering({ cluster: body });
    t.after(() => srv.close());
    for (const argv of [["status"], ["sync", "status"]]) {
      const r = await cli([...argv, "--api", srv.url]);
      assert.equal(r.code, 1, `${argv.join(" ")} / ${what}: exit ${r.code} ${r.err}`);
      assert.match(r.err, /US_E_API_ANSWER: .* answered \/cluster/, `${what}: ${r.err}`);
      assert.equal(r.out, "", `${what}: printed`);
      tried++;
    }
  }
  for (const [what, body] of histories) {
    const srv = await answering({ history: body });
    t.after(() => srv.close());
    for (const argv of [["history"], ["history", "--json"]]) {
      const r = await cli([...argv, "--api", srv.url]);
      assert.equal(r.code, 1, `${argv.join(" ")} / ${what}: exit ${r.code} ${r.err}`);
      assert.match(r.err, /US_E_API_ANSWER: .* answered \/history/, `${what}: ${r.err}`);
      assert.equal(r.out, "", `${what}: printed`);
      tried++;
    }
  }
  assert.equal(tried, 2 * clusters.length + 2 * histories.length);
});
