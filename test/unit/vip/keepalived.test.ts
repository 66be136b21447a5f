// vip.backend keepalived: the rendered keepalived.conf (golden file), the track
// file the agent keeps in step with its role, and the fence guard's FAULT write.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseConfigText } from "../../../src/config/load.js";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { silentLogger } from "../../../src/platform/logger.js";
import { renderKeepalivedConf } from "../../../src/vip/keepalived-conf.js";
import { KeepalivedFloatingIp } from "../../../src/vip/keepalived.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

const GOLDEN = fileURLToPath(new URL("../../golden/keepalived.conf", import.meta.url));

const yaml = (vip: string) => `cluster: sftp-prod
node: { name: n1, address: 198.18.0.11 }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
daemon: { backend: process, command: [/usr/sbin/sshd, -D] }
vip:
${vip}`;

const KEEPALIVED = `  address: 198.18.0.100/24
  interface: eth0
  backend: keepalived
  keepalived: { virtual_router_id: 51, unicast_peers: [198.18.0.11, 198.18.0.12, 198.18.0.13] }`;

test("render: golden keepalived.conf (BACKUP + nopreempt, unicast without self, track file weight 0, init FAULT)", () => {
  const text = renderKeepalivedConf(parseConfigText(yaml(KEEPALIVED), "t.yaml"));
  assert.equal(text, readFileSync(GOLDEN, "utf8"));
});

test("render refuses a config whose backend is not keepalived", () => {
  const config = parseConfigText(yaml("  address: 198.18.0.100/24\n  interface: eth0"), "t.yaml");
  assert.throws(
    () => renderKeepalivedConf(config),
    (e: unknown) => isUnderstudyError(e, "US_E_CONFIG_INVALID"),
  );
});

test("config: backend keepalived needs vip.keepalived; vip.keepalived needs backend keepalived", () => {
  assert.throws(
    () => parseConfigText(yaml("  address: 198.18.0.100/24\n  interface: eth0\n  backend: keepalived"), "t.yaml"),
    (e: unknown) => isUnderstudyError(e, "US_E_CONFIG_INVALID") && e.details.path === "vip.keepalived",
  );
  assert.throws(
    () => parseConfigText(yaml("  address: 198.18.0.100/24\n  interface: eth0\n  keepalived: { virtual_router_id: 5 }"), "t.yaml"),
    (e: unknown) => isUnderstudyError(e, "US_E_CONFIG_INVALID") && e.details.path === "vip.keepalived",
  );
  assert.throws(
    () => parseConfigText(yaml(KEEPALIVED.replace("[198.18.0.11,", "[not-an-ip,")), "t.yaml"),
    (e: unknown) => isUnderstudyError(e, "US_E_CONFIG_INVALID") && String(e.details.path).startsWith("vip.keepalived.unicast_peers"),
  );
});

test("KeepalivedFloatingIp: add writes 0 (leave FAULT), remove writes 1 then deletes the address, isHeld asks ip", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-ka-"));
  try {
    const track = path.join(dir, "run", "track");
    const config = parseConfigText(
      yaml(`${KEEPALIVED}\n  keepalived: { virtual_router_id: 51, track_file: ${track} }`.replace(/\n  keepalived: \{ virtual_router_id: 51, unicast_peers[^\n]*/, "")),
      "t.yaml",
    );
    const runner = new StrictCommandRunner()
      .expect(["ip", "addr", "del", "198.18.0.100/24", "dev", "eth0"], { code: 0 })
      .expect(["ip", "-j", "addr", "show", "dev", "eth0"], { code: 0, stdout: '[{"addr_info":[{"family":"inet","local":"198.18.0.100","prefixlen":24}]}]' });
    const fip = new KeepalivedFloatingIp(config.vip!, runner, new FakeClock(), silentLogger());
    await fip.add();
    assert.equal(readFileSync(track, "utf8"), "0\n");
    await fip.remove();
    assert.equal(readFileSync(track, "utf8"), "1\n");
    assert.equal(await fip.isHeld(), true);
    runner.done();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("KeepalivedFloatingIp: the track file goes through DurableFs (0644, atomic); a failed write is US_E_VIP_ADD/DEL naming the file, and remove stops before ip", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "us-ka-"));
  try {
    const track = path.join(dir, "run", "track");
    const config = parseConfigText(
      yaml(`${KEEPALIVED}\n  keepalived: { virtual_router_id: 51, track_file: ${track} }`.replace(/\n  keepalived: \{ virtual_router_id: 51, unicast_peers[^\n]*/, "")),
      "t.yaml",
    );
    const writes: [string, string, number][] = [];
    let fail = false;
    const files = {
      writeFileAtomic: async (file: string, data: string | Uint8Array, mode: number) => {
        if (fail) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
        writes.push([file, String(data), mode]);
      },
      fsyncDir: async () => assert.fail("the track file needs no separate directory fsync"),
    };
    const runner = new StrictCommandRunner(); // nothing may run: a failed FAULT write must not go on to `ip addr del`
    const fip = new KeepalivedFloatingIp(config.vip!, runner, new FakeClock(), silentLogger(), files);
    await fip.add();
    assert.deepEqual(writes, [[track, "0\n", 0o644]]);
    fail = true;
    await assert.rejects(fip.add(), (e: unknown) => isUnderstudyError(e, "US_E_VIP_ADD") && e.message.includes(track) && e.message.includes("ENOSPC"));
    await assert.rejects(fip.remove(), (e: unknown) => isUnderstudyError(e, "US_E_VIP_DEL") && e.message.includes(track));
    runner.done();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
