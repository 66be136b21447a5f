// `understudy data notify` and `understudy data status` (src/cli/data.ts)
// through the real main() against the real REST API (buildApi) over a strict
// fake DataControl. The rule under test for notify: an upload hook never fails
// the upload; only a wrong command line is non-zero, unless --strict.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import { chunkPaths, renderDataStatus } from "../../../src/cli/data.js";
import type { DataControl, DataStatus } from "../../../src/data/port.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";
import { cli, deadUrl, member, TOKEN } from "./cli-helpers.js";

const ENV = { UNDERSTUDY_API_TOKEN: TOKEN };
const ROOT = "/srv/sftp";

function status(role: DataStatus["role"], over: Partial<DataStatus> = {}): DataStatus {
  return {
    role,
    term: role === "primary" ? 7 : null,
    roots: [{ name: "uploads", path: ROOT, freeBytes: 5 * 1024 ** 3 }],
    journal: role === "primary" ? { head: 42, pending: 1, ready: 3 } : null,
    standbys:
      role === "primary"
        ? [
            {
              node: "n3",
              acked: 10,
              files: 32,
              bytes: 33_554_432,
              seconds: 41,
              full: false,
              paused: "paused: n3's data volume is full (0 B free, reserve 64 MiB)",
              step: "paused",
              lastError: null,
              lastSuccessAt: null,
            },
            {
              node: "n2",
              acked: 40,
              files: 2,
              bytes: 2048,
              seconds: 0.4,
              full: false,
              paused: null,
              step: "shipping 2 change(s), 2048 B to n2: seq 41..42",
              lastError: null,
              lastSuccessAt: "2026-01-01T00:00:00.000Z",
            },
          ]
        : [],
    self: { receiving: role === "standby" ? 7 : null, rejoin: null, freeBytes: 5 * 1024 ** 3, lag: null, step: role === "primary" ? "shipping" : "receiving term 7's files from n1" },
    ...over,
  };
}

/** Fails on calls it was not set up for; records every notify. */
class StrictData implements DataControl {
  readonly notified: string[][] = [];
  constructor(
    private readonly role: DataStatus["role"] | null,
    private readonly st: DataStatus | null = null,
  ) {}
  notify(paths: readonly string[]) {
    if (this.role === null) assert.fail(`unexpected notify(${paths.length} paths)`);
    this.notified.push([...paths]);
    if (this.role !== "primary") return { role: this.role, accepted: 0, ignored: [...paths] };
    return { role: this.role, accepted: paths.filter((p) => p.startsWith(`${ROOT}/`)).length, ignored: paths.filter((p) => !p.startsWith(`${ROOT}/`)) };
  }
  status(): DataStatus {
    if (!this.st) assert.fail("unexpected status()");
    return this.st;
  }
  progress(): never {
    return assert.fail("unexpected progress()");
  }
}

async function agentApi(node: string, data: DataControl | undefined, etcd: FakeCoordinator, clock: FakeClock) {
  const view: NodeView = {
    node,
    acting: node === "n1" ? "primary" : "standby",
    term: node === "n1" ? 7 : null,
    leaseRemainingMs: node === "n1" ? 3000 : null,
    etcdReachable: true,
    decision: "",
    sinceLastCycleMs: 0,
    vipHeld: node === "n1",
    daemonRunning: node === "n1",
    probes: [],
    healthy: true,
    notReady: null,
  };
  const app = buildApi({
    view: () => view,
    coordinator: etcd,
    metrics: new AgentMetrics(() => view, { cluster: "c", node }),
    clock,
    log: silentLogger(),
    token: TOKEN,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    ...(data ? { data } : {}),
  });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { url, close: () => app.close() };
}

async function oneApi(data: DataControl | undefined, node = "n1") {
  const clock = new FakeClock();
  return agentApi(node, data, new FakeCoordinator(clock), clock);
}

test("data notify on the primary: exit 0, nothing printed, relative paths made absolute from the working directory", async () => {
  const data = new StrictData("primary");
  const api = await oneApi(data);
  try {
    const r = await cli(["data", "notify", "--api", api.url, `${ROOT}/alice/in/a.csv`, "b.csv"], ENV);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "");
    assert.deepEqual(data.notified, [[`${ROOT}/alice/in/a.csv`, `${process.cwd()}/b.csv`]]);
    // b.csv (relative to this test's cwd) is outside the root: said on stderr, still exit 0.
    assert.match(r.err, /1 path\(s\) outside every data root, not journaled: .*b\.csv/);
    const strict = await cli(["data", "notify", "--api", api.url, "--strict", "b.csv"], ENV);
    assert.equal(strict.code, 3, "--strict: a path outside every root is a refusal");
    const json = await cli(["data", "notify", "--api", api.url, "--json", `${ROOT}/x`], ENV);
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.out), { results: [{ node: "n1", role: "primary", accepted: 1, ignored: [] }] });
  } finally {
    await api.close();
  }
});

test("data notify on a standby or a node without data roots: stderr says so, exit 0 (3 with --strict)", async () => {
  for (const [data, node, says] of [
    [new StrictData("standby"), "n2", /n2 is a standby: only the primary ships data; nothing was journaled/],
    [undefined, "n1", /data replication is not configured on this node \(no data section\)/],
  ] as const) {
    const api = await oneApi(data, node);
    try {
      const r = await cli(["data", "notify", "--api", api.url, `${ROOT}/a`], ENV);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, says);
      assert.match(r.err, /exit 0: the upload stands/);
      const strict = await cli(["data", "notify", "--api", api.url, "--strict", `${ROOT}/a`], ENV);
      assert.equal(strict.code, 3);
      assert.doesNotMatch(strict.err, /exit 0/);
    } finally {
      await api.close();
    }
  }
});

test("data notify with a wrong token or no agent: stderr, exit 0 (4 / 1 with --strict)", async () => {
  const data = new StrictData(null);
  const api = await oneApi(data);
  try {
    const bad = await cli(["data", "notify", "--api", api.url, `${ROOT}/a`], { UNDERSTUDY_API_TOKEN: "wrong-token-0123456789" });
    assert.equal(bad.code, 0);
    assert.match(bad.err, /refused \(401 US_E_API_UNAUTHORIZED\)/);
    assert.equal((await cli(["data", "notify", "--api", api.url, "--strict", `${ROOT}/a`], { UNDERSTUDY_API_TOKEN: "wrong-token-0123456789" })).code, 4);
  } finally {
    await api.close();
  }
  const dead = await deadUrl();
  const r = await cli(["data", "notify", "--api", dead, `${ROOT}/a`], ENV);
  assert.equal(r.code, 0);
  assert.match(r.err, /US_E_API_UNREACHABLE|cannot reach the understudy API/);
  assert.equal((await cli(["data", "notify", "--api", dead, "--strict", `${ROOT}/a`], ENV)).code, 1);
  // A config the hook's user cannot read is the node's problem, not the upload's.
  const noConfig = await cli(["data", "notify", "--config", "/nonexistent/understudy.yaml", `${ROOT}/a`], ENV);
  assert.equal(noConfig.code, 0);
  assert.match(noConfig.err, /\/nonexistent\/understudy\.yaml/);
  assert.equal((await cli(["data", "notify", "--config", "/nonexistent/understudy.yaml", "--strict", `${ROOT}/a`], ENV)).code, 2);
});

test("data notify against an agent that accepts but never answers: gives up at --timeout, exit 0", async () => {
  const sockets = new Set<Socket>();
  const server = createServer((s) => void sockets.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const t0 = performance.now();
    const r = await cli(["data", "notify", "--api", url, "--timeout", "0.3", `${ROOT}/a`], ENV);
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /timed out|US_E_HTTP_TIMEOUT|300/);
    // 0.3 s asked; the bound is generous for a loaded machine but far under the 5 s default of other commands.
    assert.ok(ms < 2500, `took ${Math.round(ms)} ms`);
    assert.equal((await cli(["data", "notify", "--api", url, "--timeout", "0.3", "--strict", `${ROOT}/a`], ENV)).code, 1);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("data notify usage errors are the only non-zero exits without --strict", async () => {
  assert.equal((await cli(["data", "notify", "--api", "http://127.0.0.1:1"], ENV)).code, 2, "no PATH");
  for (const t of ["abc", "0", "61", "-1"]) {
    const r = await cli(["data", "notify", "--api", "http://127.0.0.1:1", `--timeout=${t}`, `${ROOT}/a`], ENV);
    assert.equal(r.code, 2, `--timeout ${t}`);
    assert.match(r.err, /--timeout takes seconds from 0.1 to 60/);
  }
  assert.equal((await cli(["data", "notify", "--nope", `${ROOT}/a`], ENV)).code, 2);
});

test("data notify splits long lists under the API's 1000 paths / 64 KiB, in order", async () => {
  const data = new StrictData("primary");
  const api = await oneApi(data);
  try {
    const paths = Array.from({ length: 2500 }, (_, i) => `${ROOT}/u/${String(i).padStart(40, "0")}`);
    const r = await cli(["data", "notify", "--api", api.url, ...paths], ENV);
    assert.equal(r.code, 0, r.err);
    assert.ok(data.notified.length >= 3, "data.notified.length >= 3");
    assert.ok(
      data.notified.every((c) => c.length <= 1000 && JSON.stringify({ paths: c }).length < 64 * 1024),
      "data.notified.every((c) => c.length <= 1000 && JSON.stringify({ paths: c }).length < 64 * 1024)",
    );
    assert.deepEqual(data.notified.flat(), paths);
  } finally {
    await api.close();
  }
  const long = Array.from({ length: 300 }, (_, i) => `/${String(i).padStart(400, "x")}`);
  const chunks = chunkPaths(long);
  assert.ok(chunks.length > 1 && chunks.every((c) => JSON.stringify({ paths: c }).length < 64 * 1024), "chunks.length > 1 && chunks.every((c) => JSON.stringify({ paths: c }).length < 64 * 1024)");
  assert.deepEqual(chunks.flat(), long);
});

test("data status on the primary: one row per standby with lag files/bytes/seconds, paused and the step", async () => {
  const api = await oneApi(new StrictData(null, status("primary")));
  try {
    const r = await cli(["data", "status", "--api", api.url], ENV);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split("\n");
    assert.match(lines[0]!, /^Data on n1: primary \(term 7\); journal head 42, 1 pending, 3 ready$/);
    assert.match(r.out, /root uploads: \/srv\/sftp \(5\.0 GiB free\)/);
    const header = lines.findIndex((l) => l.startsWith("Standby"));
    assert.match(lines[header + 1]!, /^n2\s+2\s+2\.0 KiB\s+0\.4\s+no\s+2026-01-01T00:00:00\.000Z\s+shipping 2 change/);
    assert.match(lines[header + 2]!, /^n3\s+32\s+32\.0 MiB\s+41\.0\s+PAUSED\s+-\s+paused: n3's data volume is full/);
    const json = await cli(["data", "status", "--api", api.url, "--json"], ENV);
    assert.equal(JSON.parse(json.out).node.standbys.length, 2);
  } finally {
    await api.close();
  }
});

test("data status asked of a standby also shows the primary's table (found through /cluster)", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const lease = await etcd.grantLease(60_000);
  await etcd.campaign("n1", lease.id, "");
  const n1 = await agentApi("n1", new StrictData(null, status("primary")), etcd, clock);
  const n2 = await agentApi(
    "n2",
    new StrictData(
      null,
      status("standby", {
        self: { receiving: 7, rejoin: null, freeBytes: 1024, lag: { acked: 40, files: 2, bytes: 2048, seconds: 0.4, full: false, paused: null }, step: "receiving term 7's files from n1" },
      }),
    ),
    etcd,
    clock,
  );
  await etcd.putMember(member("n1", { role: "primary", api: n1.url }), lease.id);
  await etcd.putMember(member("n2", { api: n2.url }), lease.id);
  try {
    const r = await cli(["data", "status", "--api", n2.url], ENV);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Data on n2: standby, receiving term 7's files/);
    assert.match(r.out, /lag as the primary last published it: 2 file\(s\), 2\.0 KiB, 0\.4 s/);
    assert.match(r.out, /Standbys as the primary n1 \(term 7\) ships to them:/);
    assert.match(r.out, /\nn3\s+32\s+32\.0 MiB/);
  } finally {
    await n1.close();
    await n2.close();
  }
});

test("data status on a node without data roots: exit 3 saying so", async () => {
  const api = await oneApi(undefined);
  try {
    const r = await cli(["data", "status", "--api", api.url], ENV);
    assert.equal(r.code, 3);
    assert.match(r.out, /data replication is not configured on this node/);
  } finally {
    await api.close();
  }
});

test("renderDataStatus makes control characters in sentences visible (a step cannot forge a row)", () => {
  const st = status("primary");
  const evil = { ...st, node: "n1", standbys: [{ ...st.standbys[1]!, step: "ok\n\u001b[2Jn9  0  0 B" }] };
  const out = renderDataStatus(evil, evil, null);
  assert.ok(!out.includes("\u001b"), "no raw ESC");
  assert.match(out, /ok\\x0a\\x1b\[2Jn9/);
});
