/**
 * The rsync daemon behind the sync key (config pulls and data batches) never
 * waits on DNS. rsync's default (`reverse lookup = yes`) asks the resolver for
 * the peer's name at the start of every session; behind a resolver that drops
 * queries (a firewalled DNS server, a dead VPN resolver) each session then
 * stalls for the resolver's full timeout: 10.2 s instead of 0.19 s with glibc's
 * defaults, measured on the 2-core lab host.
 *
 * Real parts: the daemon config the agent renders (renderRsyncdConf with a
 * data write module), the real rsync client and daemon in "daemon over remote
 * shell" mode as sshd runs it (SSH_CONNECTION names the peer), and a silent
 * DNS server: a UDP socket on 127.0.0.1:53 that counts queries and never
 * answers, in a mount + network namespace this test creates (`unshare`), so
 * /etc/resolv.conf is replaced only there and no packet leaves it. The
 * assertion is the query count, not a time: the shipped config makes 0
 * queries; the same config with rsync's default makes at least one (the
 * control run, which shows the test can fail).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { renderRsyncdConf } from "../../src/sync/rsyncd.js";

interface Run {
  code: number;
  ms: number;
  queries: number;
  stderr: string;
}

/** Runs inside `unshare --mount --net`: a private resolv.conf, a silent resolver, one rsync batch. */
const INNER = `
import { spawnSync } from "node:child_process";
import dgram from "node:dgram";
const [resolv, conf, rsh, src] = process.argv.slice(2);
const must = (argv) => { const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" }); if (r.status !== 0) throw new Error(argv.join(" ") + ": " + r.stderr); };
must(["mount", "--bind", resolv, "/etc/resolv.conf"]);
must(["ip", "link", "set", "lo", "up"]);
let queries = 0;
const sock = dgram.createSocket("udp4");
sock.on("message", () => { queries++; });
await new Promise((ok) => sock.bind(53, "127.0.0.1", ok));
const t0 = performance.now();
const child = (await import("node:child_process")).spawn("/usr/bin/rsync", ["-a", "--timeout=60", "-e", rsh, src, "peer::d7-up/"], { env: { ...process.env, US_TEST_CONF: conf }, stdio: ["ignore", "ignore", "pipe"] });
let stderr = "";
child.stderr.on("data", (d) => { stderr += d; });
const code = await new Promise((ok) => child.on("close", (c) => ok(c ?? -1)));
sock.close();
process.stdout.write(JSON.stringify({ code, ms: Math.round(performance.now() - t0), queries, stderr }));
`;

/** What sshd would run for the sync key: the daemon, with the peer named by SSH_CONNECTION. */
const RSH = `
import { spawn } from "node:child_process";
const c = spawn("/usr/bin/rsync", ["--server", "--daemon", "--config=" + process.env.US_TEST_CONF, "."], {
  stdio: "inherit",
  env: { PATH: "/usr/bin:/bin", SSH_CONNECTION: "198.18.0.5 40000 198.18.0.6 22", SSH_CLIENT: "198.18.0.5 40000 22" },
});
c.on("close", (code) => process.exit(code ?? 1));
`;

test("the sync rsync daemon asks DNS nothing: a silent resolver does not stall a session", { timeout: 120_000 }, async (t) => {
  const unshare = spawnSync("unshare", ["--mount", "--net", "--", "true"]);
  if (unshare.status !== 0) return t.skip(`unshare --mount --net is not available here: ${String(unshare.stderr)}`);
  const dir = mkdtempSync(join(tmpdir(), "us-rsyncd-dns-"));
  try {
    const dst = join(dir, "standby-up");
    mkdirSync(join(dst, ".understudy-tmp"), { recursive: true, mode: 0o700 });
    const src = join(dir, "upload.bin");
    writeFileSync(src, Buffer.alloc(4096, 7));
    const cfg = join(dir, "etc");
    mkdirSync(cfg);
    // One resolver, 3 s per query, one try: the control run stalls ~3 s, not glibc's 10 s.
    const resolv = join(cfg, "resolv.conf");
    writeFileSync(resolv, "nameserver 127.0.0.1\noptions timeout:3 attempts:1\n");
    const shipped = renderRsyncdConf([{ name: "etc", path: cfg }], {
      writeModules: [{ name: "d7-up", path: dst, tempDir: "/.understudy-tmp", hostsAllow: ["198.18.0.5"] }],
    });
    assert.match(shipped, /^reverse lookup = no$/m, "the rendered config turns the lookup off");
    const inner = join(dir, "inner.mjs");
    writeFileSync(inner, INNER);
    const rsh = join(dir, "rsh.mjs");
    writeFileSync(rsh, `#!${process.execPath}\n${RSH}`);
    chmodSync(rsh, 0o755);

    const run = (conf: string, label: string): Run => {
      const file = join(dir, `${label}.conf`);
      writeFileSync(file, conf);
      rmSync(join(dst, "upload.bin"), { force: true });
      const r = spawnSync("unshare", ["--mount", "--net", "--", process.execPath, inner, resolv, file, rsh, src], { encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" });
      assert.equal(r.status, 0, `${label}: the namespace run ended with ${r.status} ${r.signal ?? ""}: ${r.stderr}`);
      const out = JSON.parse(r.stdout) as Run;
      t.diagnostic(`${label}: rsync exit ${out.code} in ${out.ms} ms, ${out.queries} DNS quer${out.queries === 1 ? "y" : "ies"}`);
      return out;
    };

    const ours = run(shipped, "shipped config");
    assert.equal(ours.code, 0, `the batch went through: ${ours.stderr}`);
    assert.ok(existsSync(join(dst, "upload.bin")) && readFileSync(join(dst, "upload.bin")).equals(readFileSync(src)), "the file arrived whole");
    assert.equal(ours.queries, 0, "no DNS query for a session");

    // Control: rsync's default. The same batch asks the resolver, so this test can fail.
    const control = run(shipped.replace(/^reverse lookup = no\n/m, "").replace(/^forward lookup = no\n/m, ""), "rsync default");
    assert.ok(control.queries >= 1, `with rsync's default the daemon queries DNS (saw ${control.queries})`);
    assert.equal(control.code, 0, `the control batch still went through, only later: ${control.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
