/**
 * Data replication when one standby's data volume fills up (issue 14, item 4;
 * docs/data.md, "Disk full on a standby"): three real agents, n1 primary; n3's
 * data root is a small tmpfs (mounted by this test outside the lab directory,
 * unmounted always, also from an exit hook), n2's a plain directory.
 *
 * Uploads through the VIP with OpenSSH `sftp` fill n3's volume. Expected:
 * every upload is acknowledged and lands on the primary (the primary is not
 * affected); n2 keeps receiving every file; the primary's GET /data (through
 * `understudy data status --json`) shows n3 paused with a step that says its
 * volume is full; n3 shows nothing the primary never showed. After the
 * volume grows (`mount -o remount,size=`), n3 catches up to exactly the
 * primary's tree and is no longer paused. Needs root and `npm run build`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { dataCluster } from "./data-setup.js";
import type { DataStatus, ShipTargetStatus } from "../../src/data/port.js";
import { LabCluster, pollUntil, type LabNode } from "./harness/index.js";
import { snapshotTree, type TreeEntry } from "./harness/sync.js";

const TMP = ".understudy-tmp";
const MiB = 1024 * 1024;
/** n3's volume: room for about four of the 1.5 MiB uploads. */
const SMALL = 8 * MiB;
const FILE = 1.5 * MiB;
const UPLOADS = 8;

/** The tree as a partner sees it: everything but rsync's temp dir. */
function visible(root: string): Record<string, TreeEntry> {
  const t = snapshotTree(root);
  for (const k of Object.keys(t)) if (k === TMP || k.startsWith(`${TMP}/`)) delete t[k];
  return t;
}

/** A tmpfs of `bytes` at a fresh directory outside the lab dir (the lab's teardown removes its dir recursively). */
function smallVolume(bytes: number): { dir: string; grow(bytes: number): void; release(): void } {
  const dir = mkdtempSync(join(tmpdir(), "us-diskfull-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0755`, "us-diskfull", dir], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) {
    rmdirSync(dir);
    throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
  }
  let mounted = true;
  const release = () => {
    if (mounted) {
      // Lazy: a process of the torn-down lab may still hold it for a moment; the mount leaves the namespace at once.
      spawnSync("umount", ["-l", dir], { timeout: 10_000 });
      mounted = false;
    }
    try {
      rmdirSync(dir);
    } catch {
      /* best effort */
    }
  };
  process.once("exit", release);
  return {
    dir,
    grow: (b) => {
      const g = spawnSync("mount", ["-o", `remount,size=${b}`, dir], { encoding: "utf8", timeout: 10_000 });
      assert.equal(g.status, 0, `remount ${dir}: ${g.stderr}`);
    },
    release,
  };
}

test("disk full on one standby: it pauses, the primary and the other standby go on, it catches up when space returns", { timeout: 300_000 }, async (t) => {
  const volume = smallVolume(SMALL);
  let c: LabCluster | undefined;
  try {
    // n3's root is on the small volume; the others are the lab sshd's internal-sftp start dir.
    const data = (n: LabNode) => (n.name === "n3" ? join(volume.dir, "data") : join(n.dir, "data"));
    mkdirSync(join(volume.dir, "data"), { mode: 0o755 });
    c = await LabCluster.create(
      dataCluster({
        start: false,
        priorities: [300, 100, 200],
        data,
        // reserve 1 MiB: the 8 MiB volume is "full" below it (the default 64 MiB would pause it at once).
        dataYaml: "  stability_window: 100ms\n  reserve: 1MiB\n",
      }),
    );
    const cluster = c;
    const [n1, n2, n3] = cluster.lab.nodes as [LabNode, LabNode, LabNode];
    assert.equal(data(n3), join(volume.dir, "data"));
    const local = join(cluster.lab.dir, "client", "uploads");
    mkdirSync(local, { recursive: true });
    // One sftp session through the VIP; a connection that fails before the session (exit 255: the banner
    // did not come in time on a loaded box) is retried, at most 3 times; a put is idempotent.
    const sftp = async (batch: string) => {
      let r = await sftpOnce(batch);
      for (let i = 0; i < 2 && r.code === 255 && /timed out|Connection closed|refused/.test(r.stderr); i++) r = await sftpOnce(batch);
      assert.equal(r.code, 0, `sftp failed: ${r.stderr}`);
    };
    const sftpOnce = (batch: string) =>
      cluster.lab.exec(
        cluster.lab.client,
        [
          "sftp",
          ...["-F", "/dev/null", "-i", cluster.lab.clientKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"],
          ...["-o", `UserKnownHostsFile=${cluster.lab.knownHosts}`, "-o", "KexAlgorithms=curve25519-sha256", "-o", "ConnectTimeout=10", "-b", "-"],
          `root@${cluster.lab.vipAddress}`,
        ],
        { timeoutMs: 30_000, input: batch },
      );
    /** n1's GET /data through the CLI (`understudy data status --json`): n1's status and its row for `node`. */
    const dataStatus = async () => {
      const r = await cluster.cli(["data", "status", "--json"], { via: n1.name, timeoutMs: 15_000 });
      assert.equal(r.code, 0, `data status: ${r.stdout}${r.stderr}`);
      return (JSON.parse(r.stdout) as { node: DataStatus & { node: string } }).node;
    };
    const row = (s: DataStatus, node: string): ShipTargetStatus | undefined => s.standbys.find((x) => x.node === node);
    const sameAs = (from: LabNode) => (n: LabNode) => JSON.stringify(visible(data(n))) === JSON.stringify(visible(data(from)));
    const until = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs: number) => {
      const t0 = performance.now();
      const ok = await pollUntil(async () => ((await check()) ? true : undefined), { timeoutMs, intervalMs: 50 });
      assert.ok(ok, `${what} (within ${timeoutMs} ms)`);
      return performance.now() - t0;
    };

    cluster.startAgent(n1.name);
    assert.equal((await cluster.waitForLeader({ timeoutMs: 30_000 }))?.node, n1.name);
    cluster.startAgent(n2.name);
    cluster.startAgent(n3.name);
    assert.ok(await cluster.waitForStandbys([n2.name, n3.name], 60_000), "both standbys up");
    const term = (await cluster.leader())!.term;
    await until(() => sameAs(n1)(n2) && sameAs(n1)(n3) && existsSync(join(data(n3), TMP)), "the first full pass reached both standbys", 60_000);

    await t.test("filling n3: every upload acknowledged on the primary, n2 receives all, n3 pauses", async () => {
      for (let i = 0; i < UPLOADS; i++) {
        const name = `big-${i}.bin`;
        writeFileSync(join(local, name), Buffer.alloc(FILE, 65 + i));
        await sftp(`put ${join(local, name)} ${name}\n`);
        assert.equal(statSync(join(data(n1), name)).size, FILE, `${name} is on the primary`);
      }
      const n2ms = await until(() => sameAs(n1)(n2), "n2 holds every upload", 60_000);
      t.diagnostic(`n2 held all ${UPLOADS} uploads ${Math.round(n2ms)} ms after the last sftp exited`);
      let paused: ShipTargetStatus | undefined;
      const pausedMs = await until(
        async () => {
          paused = row(await dataStatus(), n3.name);
          return paused?.paused != null;
        },
        "the primary shows n3 paused",
        60_000,
      );
      t.diagnostic(`n3 paused ${Math.round(pausedMs)} ms after n2 was complete: ${paused!.paused}`);
      assert.match(paused!.paused!, /^paused: .*n3.*data volume is full/);
      assert.match(paused!.step, /paused/);
      // Bytes are what the watcher's events reported (close_write carries no size yet): only the count is asserted.
      assert.ok(paused!.files > 0, `n3's lag is counted: ${paused!.files} file(s)`);
      t.diagnostic(`n3's lag while paused: ${paused!.files} file(s), ${paused!.bytes} bytes, ${paused!.seconds} s`);
      const s = await dataStatus();
      assert.equal(s.role, "primary");
      assert.equal(row(s, n2.name)?.paused, null, "n2 is not paused");
      assert.equal((await cluster.leader())?.node, n1.name, "n1 is still the primary");
      assert.equal((await cluster.leader())?.term, term, "in the same term");
      // n3 shows nothing the primary never showed: each file is the primary's, or (an upload that
      // stalled past the stability window was shipped half-done, then paused before its second
      // shipment) a prefix of it, and then it counts as lag. rsync's own partial writes stay in the temp dir.
      const mine = visible(data(n3));
      const held = Object.keys(mine).filter((k) => k.startsWith("big-"));
      assert.ok(held.length < UPLOADS, `n3 could not hold all ${UPLOADS} (holds ${held.length})`);
      let older = 0;
      for (const k of held) {
        const a = readFileSync(join(data(n3), k));
        const b = readFileSync(join(data(n1), k));
        assert.ok(a.length <= b.length && b.subarray(0, a.length).equals(a), `${k} on n3 (${a.length} bytes) is the primary's or a state of it`);
        if (a.length < b.length) older++;
      }
      assert.ok(older <= paused!.files, "a file n3 holds in an older state is counted in its lag");
      t.diagnostic(`n3 held ${held.length} of ${UPLOADS} uploads while full (${older} in an older state); temp dir: ${readdirSync(join(data(n3), TMP)).length} entr(ies)`);
    });

    await t.test("while n3 is paused, n2 keeps receiving at once", async () => {
      writeFileSync(join(local, "small-during-pause.txt"), "still replicating\n");
      await sftp(`put ${join(local, "small-during-pause.txt")} small-during-pause.txt\n`);
      const ms = await until(() => existsSync(join(data(n2), "small-during-pause.txt")), "n2 got the upload made while n3 is paused", 20_000);
      t.diagnostic(`upload during the pause on n2 ${Math.round(ms)} ms after sftp exited`);
      assert.ok(row(await dataStatus(), n3.name)?.paused, "n3 is still paused");
    });

    await t.test("space returns: n3 catches up to exactly the primary's tree and is no longer paused", async () => {
      volume.grow(64 * MiB);
      const ms = await until(() => sameAs(n1)(n3), "n3 holds the primary's tree", 90_000);
      t.diagnostic(`n3 caught up ${Math.round(ms)} ms after its volume grew`);
      await until(async () => row(await dataStatus(), n3.name)?.paused === null, "n3 is no longer paused", 30_000);
      assert.equal((await cluster.leader())?.node, n1.name, "n1 is still the primary");
    });

    await t.test("understudy data notify against the real agents: journaled on the primary, exit 0 with a reason elsewhere", async () => {
      // Whoever is primary now (n1, unless the loaded box made it hand over).
      const primary = cluster.lab.node((await cluster.leader())!.node);
      const standby = [n1, n2, n3].find((n) => n !== primary)!;
      writeFileSync(join(data(primary), "notified.txt"), "written without sftp\n");
      const notify = (via: string, ...args: string[]) => cluster.cli(["data", "notify", ...args], { via, timeoutMs: 15_000 });
      const p = await notify(primary.name, join(data(primary), "notified.txt"), "/etc/passwd");
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stderr, /1 path\(s\) outside every data root, not journaled: \/etc\/passwd/);
      const others = [n1, n2, n3].filter((n) => n !== primary);
      await until(() => others.every((n) => existsSync(join(data(n), "notified.txt"))), "the notified file on both standbys", 30_000);
      const s = await notify(standby.name, join(data(standby), "x"));
      assert.equal(s.code, 0, "a standby: exit 0 (an upload hook never fails the upload)");
      assert.match(s.stderr, new RegExp(`${standby.name} is a standby: only the primary ships data`));
      const strict = await notify(standby.name, "--strict", join(data(standby), "x"));
      assert.equal(strict.code, 3, "--strict: refused");
    });
  } finally {
    await c?.teardown();
    volume.release();
  }
});
