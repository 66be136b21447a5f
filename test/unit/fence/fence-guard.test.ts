/**
 * The native fence guard, run for real (dist/fence/understudy-fence-guard;
 * `npm run build` first): a temporary socket, orders that run harmless argv
 * recording what they saw, and harness processes as the daemon. Assertions
 * are on order and on bounds relative to times measured on CLOCK_MONOTONIC
 * (the guard logs when it started fencing), never on how fast a busy machine is.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FenceOrders } from "../../../src/fence/protocol.js";
import { gone, GuardProcess, mono, sleep, until } from "../../fakes/guard-process.js";

/** An argv that appends a word to a file, after what the track file holds (so the order shows). */
const record = (file: string, word: string, track?: string): string[] => (track ? ["sh", "-c", '{ cat "$0"; echo "$1"; } >> "$2"', track, word, file] : ["sh", "-c", 'echo "$0" >> "$1"', word, file]);

function daemon(g: GuardProcess, argv = ["sleep", "60"]) {
  const d = g.spawnOther(argv);
  const pidfile = join(g.dir, "daemon.pid");
  writeFileSync(pidfile, `${d.proc.pid}\n`);
  return { ...d, pidfile };
}

test("fences at the deadline when no heartbeat moves it: track file, then the VIP, then the daemon, then exits", async (t) => {
  const g = await GuardProcess.start(t);
  const d = daemon(g);
  const out = join(g.dir, "order");
  const track = join(g.dir, "keepalived-track");
  const c = await g.connect();
  const D = mono() + 400;
  c.send({ arm: { deadlineMs: D, orders: { keepalivedTrackFile: track, dropVip: record(out, "vip", track), daemonPidfile: d.pidfile, stopArgv: null } } });
  const exit = await g.waitExit();
  const fenced = g.fencedAt();
  assert.ok(fenced !== undefined && fenced >= D, `fenced at ${fenced}, deadline ${D}\n${g.stderr}`);
  assert.equal(readFileSync(track, "utf8"), "1\n");
  assert.equal(readFileSync(out, "utf8"), "1\nvip\n", "the track file was written before the VIP was removed");
  const de = await d.exited;
  assert.equal(de.signal, "SIGTERM");
  assert.ok(de.atMs >= fenced && exit.atMs >= fenced, "de.atMs >= fenced && exit.atMs >= fenced");
  assert.deepEqual(exit, { code: 0, signal: null, atMs: exit.atMs });
  const lines = ["fencing", "set to 1 \\(FAULT\\)", "VIP removed", `daemon pid ${d.proc.pid} stopped \\(exited on SIGTERM\\)`, "exiting"];
  assert.match(g.stderr, new RegExp(lines.join("[^]*")));
  assert.equal(existsSync(g.socket) || existsSync(g.pidfile), false, "socket and pidfile removed");
});

test("heartbeats move the deadline; disarm stops it", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const c = await g.connect();
  const orders: FenceOrders = { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null };
  let last = 0;
  const first = mono() + 3000;
  while (mono() < first + 500) {
    last = mono() + 3000;
    c.send({ arm: { deadlineMs: last, orders } });
    await sleep(250);
  }
  c.send({ disarm: true });
  await c.barrier();
  await until(() => (mono() > last + 500 ? true : undefined), "the last deadline to pass");
  assert.equal(existsSync(out), false, `no fence: ${g.stderr}`);
  assert.equal(g.exit, undefined, "still running: an agent is connected");
  c.close();
  assert.equal((await g.waitExit()).code, 0, "disarmed and alone: it goes");
  assert.doesNotMatch(g.stderr, /fencing/);
});

test("the agent dying while armed does not cancel the fence; dying while disarmed lets the guard go", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const c = await g.connect();
  const D = mono() + 500;
  c.send({ arm: { deadlineMs: D, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null } } });
  c.close();
  const exit = await g.waitExit();
  assert.ok(g.fencedAt()! >= D, "kept waiting for the deadline (a restarted agent may reconnect), then fenced");
  assert.equal(readFileSync(out, "utf8"), "vip\n");
  assert.equal(exit.code, 0);

  const h = await GuardProcess.start(t);
  (await h.connect()).close();
  assert.equal((await h.waitExit()).code, 0);
  assert.doesNotMatch(h.stderr, /fencing/);
});

test("a restarted agent's heartbeat, on a new connection before the deadline, keeps the guard from fencing", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const orders: FenceOrders = { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null };
  const old = await g.connect();
  const D = mono() + 3000;
  old.send({ arm: { deadlineMs: D, orders } });
  old.close(); // the agent is killed
  const next = await g.connect(); // its successor adopts the lease and the running guard
  next.send({ watchdog: null });
  next.send({ arm: { deadlineMs: mono() + 60_000, orders } });
  await next.reply(() => true);
  if (mono() >= D) return t.skip("the machine was too slow to reconnect before the deadline: nothing to assert");
  await until(() => (mono() > D + 500 ? true : undefined), "the first deadline to pass");
  assert.equal(existsSync(out), false, `no fence: ${g.stderr}`);
  assert.equal(g.exit, undefined);
  next.send({ disarm: true });
  next.close();
  assert.equal((await g.waitExit()).code, 0);
});

test("a deadline already past fences at once (a late heartbeat cannot stretch it)", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const c = await g.connect();
  const sent = mono();
  c.send({ arm: { deadlineMs: sent - 5, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null } } });
  await g.waitExit();
  assert.equal(readFileSync(out, "utf8"), "vip\n");
  assert.match(g.stderr, /fencing .*ms after the deadline/);
  assert.ok(g.fencedAt()! >= sent, "g.fencedAt()! >= sent");
});

test("command/systemd backends: the stop command runs after the VIP; warm mode leaves the daemon", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const c = await g.connect();
  c.send({ arm: { deadlineMs: mono() + 10, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: record(out, "stop") } } });
  await g.waitExit();
  assert.equal(readFileSync(out, "utf8"), "vip\nstop\n");
  assert.match(g.stderr, /daemon stopped/);

  const w = await GuardProcess.start(t);
  const d = daemon(w);
  const wout = join(w.dir, "order");
  const wc = await w.connect();
  wc.send({ arm: { deadlineMs: mono() + 10, orders: { dropVip: record(wout, "vip"), daemonPidfile: null, stopArgv: null } } });
  await w.waitExit();
  assert.equal(readFileSync(wout, "utf8"), "vip\n");
  assert.equal(d.proc.exitCode, null);
  assert.equal(d.proc.signalCode, null, "the daemon was left running");
});

test("SIGTERM: armed fences now; disarmed just exits", async (t) => {
  const g = await GuardProcess.start(t);
  const out = join(g.dir, "order");
  const c = await g.connect();
  const D = mono() + 60_000;
  c.send({ arm: { deadlineMs: D, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null } } });
  await c.barrier();
  g.proc.kill("SIGTERM");
  assert.equal((await g.waitExit()).code, 0);
  assert.equal(readFileSync(out, "utf8"), "vip\n");
  assert.ok(g.fencedAt()! < D, "fenced at the signal, not at the deadline");

  const h = await GuardProcess.start(t);
  await h.connect();
  h.proc.kill("SIGTERM");
  assert.equal((await h.waitExit()).code, 0);
  assert.doesNotMatch(h.stderr, /fencing/);
});

test("the daemon gets SIGKILL only if it outlives SIGTERM by 1s; a zombie counts as exited", async (t) => {
  const g = await GuardProcess.start(t);
  // SIGTERM ignored, inherited through exec.
  const d = daemon(g, ["sh", "-c", 'trap "" TERM; exec sleep 60']);
  await sleep(100); // the trap is set
  const c = await g.connect();
  c.send({ arm: { deadlineMs: mono(), orders: { dropVip: null, daemonPidfile: d.pidfile, stopArgv: null } } });
  const de = await d.exited;
  await g.waitExit();
  assert.equal(de.signal, "SIGKILL");
  assert.ok(de.atMs - g.fencedAt()! >= 1000, `SIGKILL ${de.atMs - g.fencedAt()!}ms after the fence started`);
  assert.match(g.stderr, /stopped \(SIGKILL: still running 1000 ms after SIGTERM\)/);

  // The daemon's parent is stopped (as a frozen agent would be) and cannot reap it: a zombie is gone.
  const z = await GuardProcess.start(t);
  const zpid = join(z.dir, "daemon.pid");
  const parent = z.spawnOther(["sh", "-c", 'sleep 60 & echo $! > "$0"; kill -STOP $$; wait', zpid]);
  await until(() => (existsSync(zpid) && readFileSync(zpid, "utf8").endsWith("\n") ? true : undefined), "the daemon's pidfile");
  const zc = await z.connect();
  zc.send({ arm: { deadlineMs: mono(), orders: { dropVip: null, daemonPidfile: zpid, stopArgv: null } } });
  await z.waitExit();
  assert.match(z.stderr, /stopped \(exited on SIGTERM\)/);
  parent.proc.kill("SIGKILL");
});

test("a child that outlives its timeout is killed with its whole process group, and the fence goes on", async (t) => {
  const g = await GuardProcess.start(t);
  const bg = join(g.dir, "bg.pid");
  const out = join(g.dir, "order");
  const c = await g.connect();
  c.send({
    arm: {
      deadlineMs: mono(),
      orders: { dropVip: ["sh", "-c", 'sleep 60 & echo $! > "$0"; sleep 60', bg], daemonPidfile: null, stopArgv: record(out, "stop") },
    },
  });
  const exit = await g.waitExit();
  assert.ok(exit.atMs - g.fencedAt()! >= 2000, "waited the VIP command's 2 s timeout");
  assert.match(g.stderr, /VIP removal: timed out after 2000 ms \(process group killed\)/);
  assert.equal(readFileSync(out, "utf8"), "stop\n", "then stopped the daemon");
  const pid = Number(readFileSync(bg, "utf8"));
  assert.ok(
    await until(() => (gone(pid) ? true : undefined), "the background child of the timed-out command to die"),
    'await until(() => (gone(pid) ? true : undefined), "the background child of the timed-out command ...',
  );
});

test("malformed input is logged and ignored, never a crash; an over-long line closes only that connection", async (t) => {
  const g = await GuardProcess.start(t);
  const keep = await g.connect();
  const bad = await g.connect();
  const garbage = [
    "not json",
    "{",
    "[]",
    "42",
    '"arm"',
    "{}",
    '{"arm":1}',
    '{"arm":{"deadlineMs":"soon","orders":{}}}',
    '{"arm":{"deadlineMs":1,"orders":{"dropVip":[]}}}',
    '{"arm":{"deadlineMs":1,"orders":{"dropVip":[1,2]}}}',
    '{"arm":{"deadlineMs":1,"orders":{"daemonPidfile":7}}}',
    '{"watchdog":{"mode":"sometimes"}}',
    '{"watchdog":{"mode":"required","device":"/dev/watchdog","timeoutS":1.5,"safetyMarginMs":1}}',
    '{"a":"\\ud800"}',
    '{"a":"\\u0000"}',
    "[".repeat(100),
    '{"x":1e99999}',
    "\u0000\u0001\u00ff",
  ];
  // A deterministic fuzz: valid messages cut and with bytes flipped.
  const valid = JSON.stringify({ arm: { deadlineMs: 1e12, leaseEndMs: 2e12, orders: { dropVip: ["true"], daemonPidfile: null, stopArgv: ["true"] } } });
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let i = 0; i < 300; i++) {
    const chars = [...valid.slice(0, rnd(valid.length + 1))];
    for (let k = rnd(4); k > 0; k--) chars[rnd(chars.length || 1)] = String.fromCharCode(rnd(128));
    garbage.push(chars.join("").replace(/\n/g, " "));
  }
  garbage.push('{"arm":{"deadlineMs":1e300,"orders":{}}}'); // valid, last: a deadline beyond any timer
  for (const line of garbage) bad.send(`${line}\n`);
  await sleep(100); // the guard waits on that deadline
  bad.send("x".repeat(70_000));
  await until(() => (bad.closed ? true : undefined), "the over-long connection to be closed");
  assert.equal(g.exit, undefined, `still running:\n${g.stderr}`);
  assert.match(g.stderr, /ignoring a malformed message: unexpected character/);
  assert.match(g.stderr, /ignoring a malformed message: arm.deadlineMs is not a number/);
  assert.match(g.stderr, /ignoring a malformed message: not a non-empty array of strings/);
  assert.match(g.stderr, /a message longer than 65536 bytes: closing the connection/);
  // Whatever the fuzz armed (deadline 1e12: never), the guard still obeys a real heartbeat.
  const out = join(g.dir, "order");
  keep.send({ arm: { deadlineMs: mono() + 50, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null } } });
  await g.waitExit();
  assert.equal(readFileSync(out, "utf8"), "vip\n");
  assert.doesNotMatch(g.stderr, /ppoll:/, "every wait was a valid one");
});

test("an agent that does not read its replies is never waited for: it gets the newest one when it reads; long values never overflow a reply", async (t) => {
  const g = await GuardProcess.start(t);
  const keep = await g.connect();
  const mute = await g.connect();
  mute.sock.pause(); // reads nothing: its socket buffer fills with the guard's replies
  const line = `${JSON.stringify({ watchdog: null })}\n`;
  for (let i = 0; i < 20; i++) {
    mute.send(line.repeat(1000));
    await sleep(10);
  }
  // A device path near PATH_MAX, with characters that need escaping, comes back whole in the reply.
  const device = `/dev/${'\\"é\u0001'.repeat(780)}/watchdog`; // 3915 bytes
  keep.send({ watchdog: { mode: "required", device, timeoutS: 3, safetyMarginMs: 500 } });
  const r = (await keep.reply((x) => x.watchdog.state === "unavailable")).watchdog;
  assert.equal(r.device, device);
  assert.match(r.problem ?? "", /^cannot read /);
  assert.equal(g.exit, undefined);
  mute.sock.resume();
  const latest = await until(() => (mute.replies.at(-1)?.watchdog.state === "unavailable" ? mute.replies.at(-1) : undefined), "the newest reply on the slow connection");
  assert.deepEqual(latest, { watchdog: r });
  assert.ok(mute.replies.length < 20_000, `older replies were replaced, not queued (${mute.replies.length} received)`);
  assert.equal(mute.closed, false);
  const out = join(g.dir, "order");
  keep.send({ arm: { deadlineMs: mono() + 50, orders: { dropVip: record(out, "vip"), daemonPidfile: null, stopArgv: null } } });
  await g.waitExit();
  assert.equal(readFileSync(out, "utf8"), "vip\n", "and it still fences");
});

test("a daemon that leads its process group is stopped with the whole group: its children do not outlive the fence", async (t) => {
  const g = await GuardProcess.start(t);
  const childPidFile = join(g.dir, "child.pid");
  // setsid: the daemon leads its own group, as the process backend starts it; its child
  // stands for an sshd connection process (found by the lab under load: one kept serving).
  const d = daemon(g, ["setsid", "sh", "-c", 'sleep 300 & echo $! > "$0"; wait', childPidFile]);
  const child = await until(() => (existsSync(childPidFile) ? Number(readFileSync(childPidFile, "utf8").trim()) || undefined : undefined), "the daemon's child started");
  const c = await g.connect();
  c.send({ arm: { deadlineMs: mono(), orders: { dropVip: null, daemonPidfile: d.pidfile, stopArgv: null } } });
  await d.exited;
  await until(() => (gone(child) ? true : undefined), `the daemon's child ${child} was stopped with its group`);
  await until(() => (/daemon pid \d+ stopped with its process group/.test(g.stderr) ? true : undefined), "the guard logged the group stop");
});

/** Field 22 of /proc/PID/stat, as understudy-pidexec records it beside the pid. */
const startTick = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
};

test("a pid recorded with its start time is signalled only while that process holds it: a reused pid's bystander survives", async (t) => {
  // The recorded daemon exited and the kernel gave its pid to another process: the record's
  // start time no longer matches, so neither the bystander nor its group may be signalled.
  const g = await GuardProcess.start(t);
  const bystander = daemon(g, ["setsid", "sleep", "60"]);
  const tick = startTick(bystander.proc.pid!);
  writeFileSync(bystander.pidfile, `${bystander.proc.pid} ${Number(tick) - 1}\n`);
  const c = await g.connect();
  c.send({ arm: { deadlineMs: mono(), orders: { dropVip: null, daemonPidfile: bystander.pidfile, stopArgv: null } } });
  assert.equal((await g.waitExit()).code, 0, g.stderr);
  assert.match(g.stderr, new RegExp(`daemon pid ${bystander.proc.pid} not signalled: the process now holding it started at tick ${tick}, the daemon at ${Number(tick) - 1}`));
  assert.equal(gone(bystander.proc.pid!), false, "the bystander still runs");
  bystander.proc.kill("SIGKILL");

  // The same record with the right start time: the daemon is stopped as before.
  const h = await GuardProcess.start(t);
  const d = daemon(h);
  writeFileSync(d.pidfile, `${d.proc.pid} ${startTick(d.proc.pid!)}\n`);
  const c2 = await h.connect();
  c2.send({ arm: { deadlineMs: mono(), orders: { dropVip: null, daemonPidfile: d.pidfile, stopArgv: null } } });
  assert.equal((await d.exited).signal, "SIGTERM");
  await h.waitExit();
  assert.match(h.stderr, new RegExp(`daemon pid ${d.proc.pid} stopped`));
});
