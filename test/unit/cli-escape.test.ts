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
    assert.ok(await api.etcd.publishGeneration(term, { generation: 3, digest: "0123456789abcdef", source: "n1", term: 1, publishedAt: "2026-12-04T18:00:00Z", files: 7 } as never));
    await api.etcd.appendHistory({ kind: "switchover", at: "2026-12-04T18:00:00Z", node: "n1", from: "n1", to: "n2", term: 1, reason: "operator", requestedBy: "ops@host", durations: { handover_ms: 812 } }, null);
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
      send(404, { error: `US_E_NOT_FOUND${EVIL}`, message: `no ${path}${EVIL}` });
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
    if (r.out.includes("\\x1b")) showed++;
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
  assert.ok(showed >= 8, `escaped hostile text shown by ${showed} of ${COMMANDS.length} commands`);
});
