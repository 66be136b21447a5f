// The resident gratuitous-ARP sender's line protocol, against the real
// understudy-garp (dist/vip, built by `npm run build`) for what needs no
// privileges (its refusals), and stand-in programs for one that hangs or dies.
// The packet itself is checked on a veth pair in test/lab/vip.lab.test.ts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isUnderstudyError } from "../../../src/errors/catalogue.js";
import { SystemClock } from "../../../src/platform/clock.js";
import { ResidentGarpSender } from "../../../src/vip/garp.js";

const BINARY = fileURLToPath(new URL("../../../dist/vip/understudy-garp", import.meta.url));
const clock = new SystemClock();

test("understudy-garp refuses what it cannot announce, one reply per line, and goes on", async () => {
  assert.ok(existsSync(BINARY), "npm run build makes dist/vip/understudy-garp");
  const spawned: number[] = [];
  const garp = new ResidentGarpSender(clock, BINARY, (file) => {
    const c = spawn(file, [], { stdio: ["pipe", "pipe", "ignore"] });
    spawned.push(c.pid ?? -1);
    return c;
  });
  try {
    await assert.rejects(garp.announce("understudy-no0", "198.18.0.100", 2000), /understudy-no0: No such device/);
    await assert.rejects(garp.announce("lo", "198.18.0.100", 2000), /lo: not an Ethernet interface/);
    // Checked before a line is written: no blank, newline or slash reaches the line protocol.
    await assert.rejects(garp.announce("eth0\nlo", "198.18.0.100", 2000), /cannot announce/);
    await assert.rejects(garp.announce("eth0", "198.18.0.100 x", 2000), /cannot announce/);
    await assert.rejects(garp.announce("eth0", "2001:db8::1", 2000), /cannot announce/);
    await assert.rejects(garp.announce("understudy-no1", "198.18.0.100", 2000), /understudy-no1/);
    assert.equal(spawned.length, 1, "one process for every call");
  } finally {
    garp.close();
  }
  await assert.rejects(garp.announce("lo", "198.18.0.100", 2000), /closed/);
});

test("a sender that does not answer is killed at the timeout; the next call starts another", async () => {
  const children: ReturnType<typeof spawn>[] = [];
  const garp = new ResidentGarpSender(clock, BINARY, (file) => {
    const c = children.length === 0 ? spawn("sleep", ["30"], { stdio: ["pipe", "pipe", "ignore"] }) : spawn(file, [], { stdio: ["pipe", "pipe", "ignore"] });
    children.push(c);
    return c;
  });
  try {
    await assert.rejects(garp.announce("lo", "198.18.0.100", 300), (e) => isUnderstudyError(e, "US_E_COMMAND_TIMEOUT"));
    const stuck = children[0]!;
    if (stuck.exitCode === null && stuck.signalCode === null) await new Promise((r) => stuck.once("close", r));
    assert.equal(stuck.signalCode, "SIGKILL");
    await assert.rejects(garp.announce("lo", "198.18.0.100", 2000), /not an Ethernet interface/);
    assert.equal(children.length, 2);
  } finally {
    garp.close();
  }
});

test("a sender that exits or cannot start rejects instead of hanging", async () => {
  const exits = new ResidentGarpSender(clock, BINARY, () => spawn("true", [], { stdio: ["pipe", "pipe", "ignore"] }));
  await assert.rejects(exits.announce("lo", "198.18.0.100", 2000), /exited/);
  exits.close();
  const missing = new ResidentGarpSender(clock, "/nonexistent/understudy-garp");
  assert.equal(missing.available(), false);
  await assert.rejects(missing.announce("lo", "198.18.0.100", 2000), /could not run/);
  missing.close();
});
