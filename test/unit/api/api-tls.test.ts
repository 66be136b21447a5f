import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { buildApi } from "../../../src/api/server.js";
import { AgentMetrics } from "../../../src/api/metrics.js";
import type { NodeView } from "../../../src/ha/events.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { FakeClock } from "../../fakes/clock.js";
import { FakeCoordinator } from "../../fakes/coordinator.js";

let dir: string;
const pem = (name: string) => readFileSync(join(dir, name));

function openssl(args: string[]) {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "understudy-tls-"));
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"]);
  for (const [name, cn] of [
    ["server", "127.0.0.1"],
    ["client", "operator"],
    ["rogue", "rogue"],
  ]) {
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
  }
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2"]);
  openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.pem", "-days", "2"]);
  openssl(["x509", "-req", "-in", "rogue.csr", "-signkey", "rogue.key", "-out", "rogue.pem", "-days", "2"]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const view: NodeView = {
  node: "n1",
  acting: "primary",
  term: 7,
  leaseRemainingMs: 3000,
  etcdReachable: true,
  decision: "",
  sinceLastCycleMs: 1,
  vipHeld: true,
  daemonRunning: true,
  probes: [],
  healthy: true,
  notReady: null,
};

function call(port: number, path: string, method: string, opts: { cert?: string; key?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method,
        ca: pem("ca.pem"),
        checkServerIdentity: () => undefined,
        ...(opts.cert ? { cert: pem(opts.cert), key: pem(opts.key!) } : {}),
        headers: { "content-type": "application/json" },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(method === "POST" ? "{}" : undefined);
  });
}

test("HTTPS API: reads open, mutations need a client certificate from the configured CA (or the token)", async () => {
  const clock = new FakeClock();
  const etcd = new FakeCoordinator(clock);
  const app = buildApi({
    view: () => view,
    coordinator: etcd,
    metrics: new AgentMetrics(() => view, { cluster: "c", node: "n1" }),
    clock,
    log: silentLogger(),
    token: null,
    authReads: false,
    livenessMaxMs: 5000,
    failbackPreferred: null,
    tls: { key: pem("server.key"), cert: pem("server.pem"), clientCa: pem("ca.pem") },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  try {
    assert.equal(await call(port, "/primary", "GET"), 200, "reads over TLS without a client cert");
    assert.equal(await call(port, "/pause", "POST"), 401, "no client cert, no token");
    assert.equal(await call(port, "/pause", "POST", { cert: "rogue.pem", key: "rogue.key" }), 401, "a self-signed client cert is not enough");
    assert.equal(await call(port, "/pause", "POST", { cert: "client.pem", key: "client.key" }), 202, "a client cert from the CA authorizes");
    assert.equal(etcd.paused, true);
  } finally {
    await app.close();
  }
});
