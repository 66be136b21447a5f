import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { createDrain, drainPorts } from "../../../src/drain/index.js";
import { CommandDrainGate } from "../../../src/drain/command-gate.js";
import { NftDrainGate } from "../../../src/drain/nft.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { findProgram } from "../../../src/platform/programs.js";

const BASE = `cluster: t
node: { name: n1, address: 198.18.0.11 }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
daemon: { backend: systemd, unit: ssh.service }
vip: { address: 198.18.0.100/24, interface: eth0 }
`;
const PROBES = `probes:
  - { name: sftp, type: ssh, host: 127.0.0.1, port: 22 }
  - { name: ftp, type: ftp, host: 127.0.0.1, port: 21 }
  - { name: admin, type: http, url: "http://127.0.0.1:8080/healthz" }
`;
const parse = (extra: string) => parseConfigText(BASE + extra, "test.yaml");

test("drain config: default ports are the service probes' ports; drain.ports overrides", () => {
  assert.deepEqual(drainPorts(parse(PROBES)), [21, 22]);
  assert.deepEqual(drainPorts(parse(`${PROBES}drain: { ports: [2222, 2222, 990] }\n`)), [2222, 990]);
});

test("drain config: the gate follows the section: firewall by default, command with stop_accepting, none on request; no port: unavailable", () => {
  const r = new StrictCommandRunner();
  const fw = createDrain(parse(PROBES), r);
  if (findProgram("nft") === null) assert.ok("unavailable" in fw && /install the Debian package nftables/.test(fw.unavailable), JSON.stringify(fw));
  else assert.ok("gate" in fw && fw.gate instanceof NftDrainGate && /on 198\.18\.0\.100 port 21, 22/.test(fw.gate.method), JSON.stringify(fw));
  const cmd = createDrain(parse(`${PROBES}drain: { stop_accepting: [/usr/sbin/ftpshut, -l, "1440", -d, "0", "+1440"], resume_accepting: [/usr/sbin/ftpshut, -R] }\n`), r);
  assert.ok("gate" in cmd && cmd.gate instanceof CommandDrainGate, '"gate" in cmd && cmd.gate instanceof CommandDrainGate');
  const none = createDrain(parse(`${PROBES}drain: { gate: none }\n`), r);
  assert.ok("gate" in none && /drain\.gate none/.test(none.gate.method), '"gate" in none && /drain\\.gate none/.test(none.gate.method)');
  const no = createDrain(parse(""), r);
  assert.ok("unavailable" in no && /no service port/.test(no.unavailable), '"unavailable" in no && /no service port/.test(no.unavailable)');
  r.done();
});

test("drain config: refused combinations name the field", () => {
  const cases: [string, RegExp][] = [
    ["drain: { gate: command }\n", /drain\.stop_accepting.*required for gate command/],
    ["drain: { gate: firewall, stop_accepting: [/usr/sbin/ftpshut] }\n", /drain\.stop_accepting.*only used with gate command/],
    ["drain: { resume_accepting: [/usr/sbin/ftpshut, -R] }\n", /drain\.resume_accepting/],
    ["drain: { stop_accepting: [ftpshut, now] }\n", /drain\.stop_accepting.*absolute path/],
    ["drain: { ports: [0] }\n", /drain\.ports/],
    ["drain: { ports: [] }\n", /drain\.ports/],
    ["drain: { colour: red }\n", /drain/],
  ];
  for (const [yaml, message] of cases)
    assert.throws(
      () => parse(yaml),
      (e: Error) => message.test(e.message),
      yaml,
    );
});
