import { test } from "node:test";
import assert from "node:assert/strict";
import { NftDrainGate, REMOVE_SCRIPT, refuseScript } from "../../../src/drain/nft.js";
import { CommandDrainGate } from "../../../src/drain/command-gate.js";
import { StrictCommandRunner } from "../../fakes/command.js";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const NFT = ["/usr/sbin/nft", "-f", "-"];

test("nft gate: stop applies the refusal, resume and clearLeftover remove the table, each through nft -f - (argv, no shell)", async () => {
  const r = new StrictCommandRunner().expect(NFT).expect(NFT).expect(NFT);
  const gate = new NftDrainGate(r, "/usr/sbin/nft", "198.18.11.100", [22]);
  await gate.stopAccepting();
  await gate.resumeAccepting();
  await gate.clearLeftover();
  r.done();
  assert.equal(r.calls[0]!.options?.input, refuseScript("198.18.11.100", [22]));
  assert.equal(r.calls[1]!.options?.input, REMOVE_SCRIPT);
  assert.equal(r.calls[2]!.options?.input, REMOVE_SCRIPT);
  assert.match(gate.method, /nftables rule \(table inet understudy_drain\) on 198\.18\.11\.100 port 22/);
});

test("nft gate: nft failing is a coded error; without nft, stop says which package, and clearLeftover has nothing to do", async () => {
  const r = new StrictCommandRunner().expect(NFT, { code: 1, stderr: "Error: Could not process rule: Operation not permitted" });
  await assert.rejects(
    new NftDrainGate(r, "/usr/sbin/nft", "198.18.11.100", [22]).stopAccepting(),
    (e: Error & { code?: string }) => e.code === "US_E_COMMAND_FAILED" && /Operation not permitted/.test(e.message),
  );
  r.done();
  const none = new StrictCommandRunner();
  const gate = new NftDrainGate(none, null, "198.18.11.100", [22]);
  await assert.rejects(gate.stopAccepting(), (e: Error & { code?: string }) => e.code === "US_E_TOOL_MISSING" && /nftables/.test(e.message));
  await gate.clearLeftover();
  none.done();
});

test("command gate: runs drain.stop_accepting / resume_accepting as argv; no resume command: nothing to run", async () => {
  const stop = ["/usr/sbin/ftpshut", "-l", "1440", "-d", "0", "+1440", "planned switchover"];
  const resume = ["/usr/sbin/ftpshut", "-R"];
  const r = new StrictCommandRunner().expect(stop).expect(resume);
  const gate = new CommandDrainGate(r, stop, resume);
  await gate.stopAccepting();
  await gate.resumeAccepting();
  await gate.clearLeftover();
  r.done();
  const r2 = new StrictCommandRunner().expect(["/bin/systemctl", "stop", "--no-block", "sftpgo.service"], { code: 5, stderr: "no such unit" });
  const g2 = new CommandDrainGate(r2, ["/bin/systemctl", "stop", "--no-block", "sftpgo.service"], []);
  await assert.rejects(g2.stopAccepting(), /no such unit/);
  await g2.resumeAccepting();
  r2.done();
});

test("command gate: a marker file lives while the stop command may be in force; at start a leftover marker runs resume", async () => {
  const dir = mkdtempSync(join(tmpdir(), "drain-gate-"));
  try {
    const marker = join(dir, "drain-refusing");
    const stop = ["/usr/sbin/ftpshut", "-l", "1440", "-d", "0", "+1440"];
    const resume = ["/usr/sbin/ftpshut", "-R"];
    const idle = new StrictCommandRunner();
    await new CommandDrainGate(idle, stop, resume, marker).clearLeftover();
    idle.done();
    // A run that stopped accepting and then died: the marker stays.
    const crashed = new StrictCommandRunner().expect(stop);
    await new CommandDrainGate(crashed, stop, resume, marker).stopAccepting();
    crashed.done();
    assert.equal(existsSync(marker), true);
    // The next start undoes it, once.
    const next = new StrictCommandRunner().expect(resume);
    const gate = new CommandDrainGate(next, stop, resume, marker);
    await gate.clearLeftover();
    await gate.clearLeftover();
    next.done();
    assert.equal(existsSync(marker), false);
    // A resume that fails keeps the marker (retried by the drain run, and at the next start).
    const failing = new StrictCommandRunner().expect(stop).expect(resume, { code: 1, stderr: "busy" });
    const g = new CommandDrainGate(failing, stop, resume, marker);
    await g.stopAccepting();
    await assert.rejects(g.resumeAccepting(), /busy/);
    failing.done();
    assert.equal(existsSync(marker), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
