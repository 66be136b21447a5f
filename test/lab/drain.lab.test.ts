/**
 * Drained switchover end to end (docs/operations.md, "Drained switchover"):
 * a real OpenSSH sftp upload, slowed with `sftp -l`, through the floating IP,
 * while `understudy switchover --drain` moves the primary. With room to drain,
 * the upload completes on the old primary before the move (history: drained 1,
 * cut 0) and new sessions are refused meanwhile by the nftables gate; with a
 * drain too short, the move cuts the session (history: cut 1); a drain cancelled
 * with DELETE /switchover removes the gate at once and moves nothing. Needs
 * root and `npm run build`.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { LabCluster, pollUntil, type ExecResult } from "./harness/index.js";

const T = { timeout: 180_000 };

interface HistoryRow {
  kind: string;
  from: string | null;
  to: string | null;
  at: string;
  reason: string;
  durations?: Record<string, number>;
  counts?: Record<string, number>;
}

/** Start `sftp -l kbit` putting `bytes` random bytes through the VIP; resolves when sftp exits. */
function slowUpload(c: LabCluster, name: string, bytes: number, kbit: number): { done: Promise<ExecResult & { endedAt: number }>; sha: string } {
  const lab = c.lab;
  const local = join(lab.dir, "client", name);
  const data = randomBytes(bytes);
  writeFileSync(local, data);
  const batch = join(lab.dir, "client", `${name}.batch`);
  writeFileSync(batch, `put ${local} ${name}\n`);
  const ssh = ["-F", "/dev/null", "-i", lab.clientKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"];
  const argv = [
    "sftp",
    ...ssh,
    "-o",
    `UserKnownHostsFile=${lab.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=3",
    "-l",
    String(kbit),
    "-b",
    batch,
    `root@${lab.vipAddress}`,
  ];
  const done = lab.exec(lab.client, argv, { timeoutMs: 60_000 }).then((r) => ({ ...r, endedAt: Date.now() }));
  return { done, sha: createHash("sha256").update(data).digest("hex") };
}

/** Bytes of `name` in node's sftp directory so far (0: not there yet). */
function sizeOn(c: LabCluster, node: string, name: string): number {
  const file = join(c.lab.node(node).dir, "data", name);
  return existsSync(file) ? statSync(file).size : 0;
}

async function history(c: LabCluster, via: string): Promise<HistoryRow[]> {
  const h = await c.cli(["history", "--json", "--limit", "50"], { via });
  assert.equal(h.code, 0, h.stdout + h.stderr);
  return JSON.parse(h.stdout) as HistoryRow[];
}

async function drainTable(c: LabCluster, node: string): Promise<boolean> {
  const r = await c.lab.exec(c.lab.node(node).ns, ["nft", "list", "tables"], { timeoutMs: 5000 });
  return r.stdout.includes("understudy_drain");
}

test("a slow SFTP upload completes across a drained switchover; a drain too short cuts it; a cancelled drain reopens", T, async () => {
  const c = await LabCluster.create({ nodes: 2 });
  try {
    const first = (await c.leader())!;
    const second = c.lab.nodes.map((n) => n.name).find((n) => n !== first.node)!;
    assert.ok(await c.waitForStandbys([second], 20_000), `${second} is a standby`);

    // 1. Room to drain: ~640 KB at 1024 kbit/s (about 5 s on the wire).
    const up = slowUpload(c, "drained.bin", 640 * 1024, 1024);
    const started = await pollUntil(async () => (sizeOn(c, first.node, "drained.bin") > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
    assert.ok(started, "the upload is under way on the primary");
    const swStart = Date.now();
    const swP = c.cli(["switchover", "--to", second, "--drain", "30s", "--reason", "drain lab"], { timeoutMs: 90_000 });
    // Meanwhile new sessions through the VIP are refused (reset by the nftables gate), the running one goes on.
    const refusedNew = await pollUntil(
      async () => {
        if (!(await drainTable(c, first.node))) return undefined;
        const r = await c.lab.sshHandshake("vip", { timeoutMs: 4000 });
        return r.ok ? undefined : r;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.ok(refusedNew, "a new SFTP session is refused while the drain runs");
    const r = await up.done;
    const sw = await swP;
    assert.equal(r.code, 0, `the drained upload completes: ${r.stderr}`);
    assert.equal(sw.code, 0, sw.stdout + sw.stderr);
    assert.match(sw.stdout, new RegExp(`draining on ${first.node}: 1 session left, \\d+s of 30s waited`));
    assert.match(sw.stdout, new RegExp(`switchover done: ${second} is the primary`));
    const file = join(c.lab.node(first.node).dir, "data", "drained.bin");
    assert.equal(createHash("sha256").update(readFileSync(file)).digest("hex"), up.sha, "every byte arrived on the old primary");
    const events = await history(c, second);
    const done = events.filter((e) => e.kind === "switchover" && e.from === first.node && e.to === second).pop();
    assert.ok(done, JSON.stringify(events));
    assert.deepEqual(done.counts, { drained: 1, cut: 0 }, JSON.stringify(done));
    const drainMs = done.durations?.drain_ms ?? -1;
    assert.ok(drainMs > 0 && drainMs < 30_000, `drain_ms ${drainMs}`);
    // The move came after the upload ended, not before (the new primary wrote the event once it served).
    assert.ok(Date.parse(done.at) >= r.endedAt - 1000, `switchover at ${done.at}, upload ended ${new Date(r.endedAt).toISOString()}`);
    assert.equal(await drainTable(c, first.node), false, "the nftables table is gone after the move");
    console.log(
      sw.stdout
        .trim()
        .split("\n")
        .map((l) => `cli> ${l}`)
        .join("\n"),
    );
    console.log(`drain lab: upload ${((r.endedAt - swStart) / 1000).toFixed(1)}s after the request; drain_ms ${drainMs}; handover_ms ${done.durations?.handover_ms}; cli ${sw.ms} ms`);

    // 2. A drain too short: ~1.5 MB at 512 kbit/s (about 24 s) against a 2 s drain: the move cuts it.
    assert.ok(await c.waitForStandbys([first.node], 20_000), `${first.node} is a standby again`);
    const long = slowUpload(c, "cut.bin", 1536 * 1024, 512);
    const started2 = await pollUntil(async () => (sizeOn(c, second, "cut.bin") > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
    assert.ok(started2, "the second upload is under way on the new primary");
    const sw2 = await c.cli(["switchover", "--to", first.node, "--drain", "2s"], { timeoutMs: 60_000 });
    assert.equal(sw2.code, 0, sw2.stdout + sw2.stderr);
    const r2 = await long.done;
    assert.notEqual(r2.code, 0, "the upload still running at the end of the drain is cut");
    const events2 = await history(c, first.node);
    const cut = events2.filter((e) => e.kind === "switchover" && e.from === second && e.to === first.node).pop();
    assert.ok(cut, JSON.stringify(events2));
    assert.deepEqual(cut.counts, { drained: 0, cut: 1 }, JSON.stringify(cut));
    assert.ok((cut.durations?.drain_ms ?? 0) >= 2000, JSON.stringify(cut));
    assert.equal(await drainTable(c, second), false, "the nftables table is gone after the cutting move too");
    console.log(`drain lab (cut): drain_ms ${cut.durations?.drain_ms}; handover_ms ${cut.durations?.handover_ms}`);

    // 3. Cancelled mid-drain (DELETE /switchover): the gate goes, new sessions are accepted again, nobody moves.
    assert.ok(await c.waitForStandbys([second], 20_000), `${second} is a standby again`);
    const third = slowUpload(c, "kept.bin", 320 * 1024, 1024);
    assert.ok(
      await pollUntil(async () => (sizeOn(c, first.node, "kept.bin") > 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 }),
      'await pollUntil(async () => (sizeOn(c, first.node, "kept.bin") > 0 ? true : undefined), { timeout...',
    );
    const req = await c.cli(["switchover", "--to", second, "--drain", "60s", "--wait", "0"]);
    assert.equal(req.code, 0, req.stdout + req.stderr);
    assert.ok(await pollUntil(async () => ((await drainTable(c, first.node)) ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 }), "drain under way");
    const token = readFileSync(c.tokenFile, "utf8").trim();
    const del = await c.lab.exec(c.lab.client, ["curl", "-sS", "-X", "DELETE", "-H", `Authorization: Bearer ${token}`, `${c.apiUrl(first.node)}/switchover`], { timeoutMs: 10_000 });
    assert.match(del.stdout, /"cancelled"/, del.stdout + del.stderr);
    const reopened = await pollUntil(async () => ((await drainTable(c, first.node)) ? undefined : true), { timeoutMs: 10_000, intervalMs: 100 });
    assert.ok(reopened, "the nftables table is removed when the request is cancelled");
    assert.equal((await c.lab.sshHandshake("vip", { timeoutMs: 5000 })).ok, true, "new sessions are accepted again");
    assert.equal((await third.done).code, 0, "the running upload was never touched");
    assert.equal((await c.leader())?.node, first.node, "nobody moved");
  } finally {
    await c.teardown();
  }
});
