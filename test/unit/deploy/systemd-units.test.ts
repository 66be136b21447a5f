// The systemd units in systemd/: `systemd-analyze verify` on every unit and
// drop-in, `systemd-analyze security --offline` exposure thresholds, the
// directives the HA design relies on, the tmpfiles entry and the polkit rule.
//
// systemd-analyze verify resolves the binaries of Exec*= lines on this host.
// Each case copies the files into a fresh temporary directory (drop-ins in
// <unit>.d/ beside their unit, the daemons' own units as stubs) and points
// every Exec*= binary missing here at a stub, so the check does not depend on
// node, sshd or keepalived being installed where the test runs. It needs
// systemd-analyze itself (Debian package `systemd`, >= 250 for --offline).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { after, before, describe, it } from "node:test";

const SYSTEMD = fileURLToPath(new URL("../../../systemd/", import.meta.url));
const BASE = path.join(SYSTEMD, "understudy.service");
const DROPINS = path.join(SYSTEMD, "understudy.service.d");
const DAEMON_DROPINS = path.join(SYSTEMD, "daemon-dropins");

/** Exposure ceilings (systemd-analyze prints them divided by 10), measured with systemd 252. */
const THRESHOLD = { base: 21, sync: 24, watchdog: 22, rootProcess: 67 };

// ---------------------------------------------------------------- helpers

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[]): Run {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, SYSTEMD_COLORS: "0", SYSTEMD_LOG_COLOR: "0", SYSTEMD_PAGER: "", LC_ALL: "C" },
  });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === "ENOENT";
    assert.fail(
      missing ? `${cmd} is not installed: these tests need systemd's tools (Debian: apt-get install systemd; scripts/install-deps.sh should list it)` : `${cmd} ${args.join(" ")}: ${r.error.message}`,
    );
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function analyze(args: readonly string[]): Run {
  return run("systemd-analyze", args);
}

type Unit = Map<string, [string, string][]>;

/** A unit file's sections and assignments, in order (comments, blank lines and continuations handled). */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = "";
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = pending + raw.trim();
    pending = "";
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.endsWith("\\")) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      if (!unit.has(section)) unit.set(section, []);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(eq > 0 && section !== "", `not an assignment inside a section: ${line}`);
    unit.get(section)!.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

function readUnit(file: string): Unit {
  return parseUnit(readFileSync(file, "utf8"));
}

function values(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

function only(unit: Unit, section: string, key: string): string | undefined {
  const v = values(unit, section, key);
  assert.ok(v.length <= 1, `${key}= is set ${v.length} times in [${section}]`);
  return v[0];
}

/** Every word of every assignment of a list setting (capabilities, address families). */
function words(unit: Unit, section: string, key: string): Set<string> {
  return new Set(values(unit, section, key).flatMap((v) => v.split(/\s+/).filter(Boolean)));
}

const EXEC = /^(Exec[A-Za-z]+=)([-@:+!]*)(\S+)(.*)$/;

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

let scratch = "";
let cases = 0;

/**
 * A fresh directory holding `files` (destination path -> source file, or
 * literal text for stubs). Exec*= binaries that do not exist on this host
 * are replaced by executable stubs inside the directory.
 */
function layout(files: Record<string, { from: string } | { text: string }>): string {
  const dir = path.join(scratch, `case-${++cases}`);
  const stubs = path.join(dir, "stubs");
  for (const [dest, source] of Object.entries(files)) {
    const target = path.join(dir, dest);
    mkdirSync(path.dirname(target), { recursive: true });
    let text: string;
    if ("from" in source) {
      text = readFileSync(source.from, "utf8");
    } else {
      text = source.text;
    }
    text = text
      .split("\n")
      .map((line) => {
        const m = EXEC.exec(line.trim());
        if (!m || !m[3]!.startsWith("/") || executable(m[3]!)) return line;
        const stub = path.join(stubs, m[3]!);
        mkdirSync(path.dirname(stub), { recursive: true });
        writeFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        return `${m[1]}${m[2]}${stub}${m[4]}`;
      })
      .join("\n");
    writeFileSync(target, text);
  }
  return dir;
}

function stubService(name: string): { text: string } {
  return { text: `[Unit]\nDescription=stand-in for ${name}\n\n[Service]\nExecStart=/nonexistent/${name}-stub\n` };
}

function verify(unitPath: string): void {
  const r = analyze(["verify", "--man=no", "--no-pager", unitPath]);
  assert.equal(
    r.code === 0 && r.stderr.trim() === "" ? "clean" : `exit ${r.code}\n${r.stderr}${r.stdout}`,
    "clean",
    `systemd-analyze verify ${path.basename(unitPath)} (any warning counts as a failure)`,
  );
}

function overall(text: string): string {
  return /Overall exposure level[^\n]*/.exec(text)?.[0] ?? "(no overall exposure line)";
}

function security(unitPath: string, threshold: number): string {
  const r = analyze(["security", "--offline=true", `--threshold=${threshold}`, "--no-pager", unitPath]);
  assert.equal(r.stderr.trim(), "", `systemd-analyze security printed warnings:\n${r.stderr}`);
  assert.equal(r.code, 0, `exposure above ${threshold / 10}: ${overall(r.stdout)}; a hardening directive was weakened or removed`);
  return overall(r.stdout);
}

/** `systemd-analyze security --json`: check name -> set (true: the restriction is in effect). */
function securityChecks(unitPath: string): Map<string, boolean | null> {
  const r = analyze(["security", "--offline=true", "--json=short", "--no-pager", unitPath]);
  assert.equal(r.code, 0, r.stderr);
  const checks = JSON.parse(r.stdout) as { name: string; set: boolean | null }[];
  return new Map(checks.map((c) => [c.name, c.set]));
}

/** The understudy.service drop-in examples, installed under their real names. */
function dropin(name: string): Record<string, { from: string }> {
  return { [`understudy.service.d/${name.replace(/\.example$/, "")}`]: { from: path.join(DROPINS, name) } };
}

// ---------------------------------------------------------------- tests

before(() => {
  scratch = mkdtempSync(path.join(tmpdir(), "understudy-systemd-"));
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe("systemd units", () => {
  it("systemd-analyze is installed and new enough (>= 250: security --offline and --threshold)", () => {
    const r = analyze(["--version"]);
    const version = Number(/^systemd (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(version >= 250, `systemd-analyze ${r.stdout.split("\n")[0]} is too old: these tests need systemd >= 250`);
  });

  it("understudy.service and every drop-in example pass systemd-analyze verify", () => {
    const examples = readdirSync(DROPINS).filter((f) => f.endsWith(".conf.example"));
    assert.ok(examples.length >= 3, `drop-in examples: ${examples.join(", ")}`);
    verify(path.join(layout({ "understudy.service": { from: BASE } }), "understudy.service"));
    for (const ex of examples) verify(path.join(layout({ "understudy.service": { from: BASE }, ...dropin(ex) }), "understudy.service"));
    // All at once, in the order systemd applies them (by file name).
    verify(path.join(layout({ "understudy.service": { from: BASE }, ...Object.assign({}, ...examples.map(dropin)) }), "understudy.service"));
  });

  it("the daemon drop-ins and the ssh-sftp unit pass systemd-analyze verify, next to understudy.service", () => {
    for (const d of readdirSync(DAEMON_DROPINS).filter((f) => f.endsWith(".service.d"))) {
      const unitName = d.slice(0, -2);
      for (const conf of readdirSync(path.join(DAEMON_DROPINS, d))) {
        const dir = layout({
          "understudy.service": { from: BASE },
          [unitName]: stubService(unitName),
          [`${d}/${conf}`]: { from: path.join(DAEMON_DROPINS, d, conf) },
        });
        verify(path.join(dir, unitName));
      }
    }
    // Mount units' tie-ins (cold SFTPGo's volume), beside a stand-in mount unit.
    for (const d of readdirSync(DAEMON_DROPINS).filter((f) => f.endsWith(".mount.d"))) {
      const unitName = d.slice(0, -2);
      for (const conf of readdirSync(path.join(DAEMON_DROPINS, d))) {
        const where = spawnSync("systemd-escape", ["-u", "-p", unitName.slice(0, -".mount".length)], { encoding: "utf8" }).stdout.trim();
        const dir = layout({
          "understudy.service": { from: BASE },
          [unitName]: { text: `[Unit]\nDescription=stand-in for ${unitName}\n\n[Mount]\nWhat=/dev/null\nWhere=${where}\n` },
          [`${d}/${conf}`]: { from: path.join(DAEMON_DROPINS, d, conf) },
        });
        verify(path.join(dir, unitName));
      }
    }
    for (const u of readdirSync(path.join(SYSTEMD, "units"))) {
      const dir = layout({ "understudy.service": { from: BASE }, [u]: { from: path.join(SYSTEMD, "units", u) } });
      verify(path.join(dir, u));
    }
  });

  it(`understudy.service's exposure stays at or below ${THRESHOLD.base / 10} (systemd-analyze security --offline)`, () => {
    const line = security(path.join(layout({ "understudy.service": { from: BASE } }), "understudy.service"), THRESHOLD.base);
    assert.match(line, /understudy\.service/);
  });

  it("the drop-in variants stay at or below their measured exposure", () => {
    const sync = layout({ "understudy.service": { from: BASE }, ...dropin("10-sync.conf.example") });
    security(path.join(sync, "understudy.service"), THRESHOLD.sync);
    const root = layout({ "understudy.service": { from: BASE }, ...dropin("90-root-process-backend.conf.example") });
    security(path.join(root, "understudy.service"), THRESHOLD.rootProcess);
    const watchdog = layout({ "understudy.service": { from: BASE }, ...dropin("30-watchdog.conf.example") });
    security(path.join(watchdog, "understudy.service"), THRESHOLD.watchdog);
    const wd = readUnit(path.join(DROPINS, "30-watchdog.conf.example"));
    assert.equal(only(wd, "Service", "DevicePolicy"), "closed", "only the watchdog devices get through, not all of /dev");
  });

  it("capabilities: the base unit keeps only CAP_NET_ADMIN and CAP_NET_RAW; drop-ins add to them, whatever their combination", () => {
    const NET_ADMIN = "CapabilityBoundingSet=~CAP_NET_ADMIN";
    const NET_RAW = "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)";
    const DAC = "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)";
    const CHOWN = "CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)";
    const SYS_ADMIN = "CapabilityBoundingSet=~CAP_SYS_ADMIN";
    const SETUID = "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)";

    const base = securityChecks(path.join(layout({ "understudy.service": { from: BASE } }), "understudy.service"));
    const kept = [...base].filter(([name, set]) => name.startsWith("CapabilityBoundingSet=") && set === false).map(([name]) => name);
    assert.deepEqual(kept.sort(), [NET_RAW, NET_ADMIN].sort(), "capabilities left in the bounding set");

    const sync = securityChecks(path.join(layout({ "understudy.service": { from: BASE }, ...dropin("10-sync.conf.example") }), "understudy.service"));
    for (const c of [NET_ADMIN, NET_RAW, DAC, CHOWN]) assert.equal(sync.get(c), false, `with the sync drop-in: ${c} must be present`);
    assert.equal(sync.get(SYS_ADMIN), true, "with the sync drop-in: no CAP_SYS_ADMIN");

    // 90-root-process-backend.conf's full set must survive 10-sync.conf's list.
    const all = layout({
      "understudy.service": { from: BASE },
      ...dropin("10-sync.conf.example"),
      ...dropin("10-daemon-check.conf.example"),
      ...dropin("90-root-process-backend.conf.example"),
    });
    const root = securityChecks(path.join(all, "understudy.service"));
    for (const c of [NET_ADMIN, NET_RAW, DAC, CHOWN, SYS_ADMIN, SETUID]) assert.equal(root.get(c), false, `root variant with sync: ${c} must be present`);
  });

  it("20-data.conf: the standby's term fence can see, locate and kill root's rsync sessions", () => {
    const d = readUnit(path.join(DROPINS, "20-data.conf.example"));
    assert.equal(only(d, "Service", "ProtectProc"), "default", "the unit's ProtectProc=invisible hides root's sessions");
    for (const cap of ["CAP_KILL", "CAP_SYS_PTRACE"]) {
      assert.ok(words(d, "Service", "CapabilityBoundingSet").has(cap), `${cap} in the bounding set`);
      assert.ok(words(d, "Service", "AmbientCapabilities").has(cap), `${cap} ambient`);
    }
  });

  it("understudy.service: the directives the HA design relies on", () => {
    const u = readUnit(BASE);
    const S = "Service";
    assert.equal(only(u, S, "Type"), "exec");
    assert.equal(only(u, S, "User"), "understudy");
    assert.equal(only(u, S, "Restart"), "always");
    assert.ok(only(u, S, "RestartSec"), "RestartSec= is set");
    assert.ok(only(u, "Unit", "StartLimitIntervalSec") && only(u, "Unit", "StartLimitBurst"), "a start limit is set");
    assert.deepEqual([...words(u, S, "AmbientCapabilities")].sort(), ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    assert.deepEqual([...words(u, S, "CapabilityBoundingSet")].sort(), ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    assert.equal(only(u, S, "NoNewPrivileges"), "yes");

    // The agent and the VIP release run the same program with the same config.
    const start = only(u, S, "ExecStart")!.split(/\s+/);
    const stopPost = values(u, S, "ExecStopPost");
    assert.equal(stopPost.length, 1, "one ExecStopPost=");
    const release = stopPost[0]!.split(/\s+/);
    assert.deepEqual(start.slice(0, start.indexOf("agent")), release.slice(0, release.indexOf("vip")), "same node, flags and main.js");
    assert.deepEqual(release.slice(release.indexOf("vip"), release.indexOf("vip") + 2), ["vip", "release"]);
    const config = (argv: string[]) => argv[argv.indexOf("--config") + 1];
    assert.equal(config(release), config(start));
    assert.match(start[0]!, /^\//, "ExecStart= names node by absolute path");

    // The fence guard must get SIGTERM (and fence) when the main process dies.
    assert.equal(only(u, S, "KillMode"), "control-group");
    // keepalived reads a deleted track file as 0 (not FAULT).
    assert.equal(only(u, S, "RuntimeDirectory"), "understudy");
    assert.equal(only(u, S, "RuntimeDirectoryPreserve"), "yes");
    assert.equal(only(u, S, "StateDirectory"), "understudy");
    assert.equal(only(u, S, "StateDirectoryMode"), "0700");
    // Graceful handover with the default timeouts takes up to ~20 s.
    assert.ok(Number(/^(\d+)s$/.exec(only(u, S, "TimeoutStopSec") ?? "")?.[1]) >= 25, "TimeoutStopSec= leaves room for the graceful handover");

    assert.equal(only(u, S, "ProtectSystem"), "strict");
    assert.deepEqual([...words(u, S, "RestrictAddressFamilies")].sort(), ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"]);
    // V8's JIT needs writable-then-executable memory, and calls pkey_* at start.
    assert.equal(values(u, S, "MemoryDenyWriteExecute").length, 0, "MemoryDenyWriteExecute= breaks node");
    assert.ok(
      words(u, S, "SystemCallFilter").has("@system-service") && words(u, S, "SystemCallFilter").has("@pkey"),
      'words(u, S, "SystemCallFilter").has("@system-service") && words(u, S, "SystemCallFilter").has("@p...',
    );
    assert.equal(only(u, S, "SystemCallErrorNumber"), "EPERM", "a filtered call must fail, not kill the agent (SIGSYS)");
  });

  it("daemon tie-ins: stop propagation only, no start without the agent, no ordering, no restart by systemd", () => {
    const tieIns: [string, Unit][] = [];
    for (const d of ["sftpgo.service.d", "proftpd.service.d"]) tieIns.push([d, readUnit(path.join(DAEMON_DROPINS, d, "understudy.conf"))]);
    const sshSftp = readUnit(path.join(SYSTEMD, "units", "ssh-sftp.service"));
    tieIns.push(["ssh-sftp.service", sshSftp]);
    for (const [name, u] of tieIns) {
      assert.deepEqual(values(u, "Unit", "StopPropagatedFrom"), ["understudy.service"], `${name}: StopPropagatedFrom=understudy.service`);
      // PartOf=/BindsTo=/Requisite= propagate a restart of understudy as a restart of the daemon;
      // After=/Before= make a stop or a queued start wait on the agent (see the drop-in's comments).
      for (const key of ["PartOf", "BindsTo", "Requisite", "Requires", "Wants", "After", "Before"]) {
        assert.ok(!values(u, "Unit", key).some((v) => v.split(/\s+/).includes("understudy.service")), `${name}: no ${key}=understudy.service`);
      }
      const cond = values(u, "Service", "ExecCondition");
      assert.ok(
        cond.some((c) => /^\+\/\S*systemctl is-active --quiet understudy\.service$/.test(c)),
        `${name}: ExecCondition refuses a start while understudy is not active (${cond.join(" | ")})`,
      );
      assert.equal(only(u, "Service", "Restart"), "no", `${name}: only the agent restarts the daemon`);
      const stop = /^(\d+)s$/.exec(only(u, "Service", "TimeoutStopSec") ?? "");
      assert.ok(stop && Number(stop[1]) < 5, `${name}: TimeoutStopSec= below daemon.stop_timeout's default (5s)`);
    }
    assert.equal(sshSftp.has("Install"), false, "ssh-sftp.service has no [Install]: it cannot be enabled at boot");
    assert.equal(only(sshSftp, "Service", "KillMode") ?? "control-group", "control-group", "stopping ssh-sftp ends its sessions");
    assert.equal(only(sshSftp, "Service", "RuntimeDirectoryPreserve"), "yes", "never remove /run/sshd from under the admin sshd");

    // keepalived stays independent of the agent; the track file is created before it starts.
    const k = readUnit(path.join(DAEMON_DROPINS, "keepalived.service.d", "understudy.conf"));
    assert.equal(values(k, "Unit", "StopPropagatedFrom").length, 0);
    assert.ok(
      values(k, "Service", "ExecStartPre").some((v) => /systemd-tmpfiles --create understudy\.conf$/.test(v)),
      'values(k, "Service", "ExecStartPre").some((v) => /systemd-tmpfiles --create understudy\\.conf$/.te...',
    );
  });

  it("tmpfiles: /run/understudy and a track file holding 1 (FAULT), never overwritten", () => {
    const file = path.join(SYSTEMD, "tmpfiles", "understudy.conf");
    const root = path.join(scratch, "tmpfiles-root");
    mkdirSync(path.join(root, "etc"), { recursive: true });
    // The current ids: systemd-tmpfiles chowns, which needs no privilege for one's own ids.
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    writeFileSync(path.join(root, "etc", "passwd"), `root:x:0:0:root:/root:/bin/sh\nunderstudy:x:${uid}:${gid}::/var/lib/understudy:/usr/sbin/nologin\n`);
    writeFileSync(path.join(root, "etc", "group"), `root:x:0:\nunderstudy:x:${gid}:\n`);
    const create = () => run("systemd-tmpfiles", ["--create", `--root=${root}`, file]);
    let r = create();
    assert.equal(r.code, 0, r.stderr);
    const track = path.join(root, "run", "understudy", "keepalived-track");
    assert.equal(readFileSync(track, "utf8").trim(), "1");
    assert.equal(statSync(track).mode & 0o777, 0o644);
    assert.equal(statSync(path.dirname(track)).mode & 0o777, 0o755);
    writeFileSync(track, "0\n"); // the agent, primary
    r = create();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(track, "utf8"), "0\n", "a value the agent wrote stays");
  });

  it("polkit rule: user understudy may start and stop the daemon's unit, and nothing else", () => {
    const file = path.join(SYSTEMD, "polkit", "50-understudy.rules");
    const src = readFileSync(file, "utf8");
    // polkit's duktape engine is ES5.
    const code = src.replace(/\/\/[^\n]*/g, "");
    for (const es6 of [/\blet\b/, /\bconst\b/, /=>/, /`/, /\bclass\b/, /\.includes\(/]) assert.doesNotMatch(code, es6, `not ES5: ${es6}`);

    const Result = { YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin", NOT_HANDLED: null };
    const rules: ((action: unknown, subject: unknown) => unknown)[] = [];
    vm.runInNewContext(src, { polkit: { Result, addRule: (f: (a: unknown, s: unknown) => unknown) => rules.push(f) } });
    assert.equal(rules.length, 1);
    const decide = (id: string, user: string, unit: string, verb: string) => rules[0]!({ id, lookup: (k: string) => (({ unit, verb }) as Record<string, string>)[k] }, { user });
    const MANAGE = "org.freedesktop.systemd1.manage-units";
    assert.equal(decide(MANAGE, "understudy", "sftpgo.service", "start"), "yes");
    assert.equal(decide(MANAGE, "understudy", "sftpgo.service", "stop"), "yes");
    assert.equal(decide(MANAGE, "understudy", "sftpgo.service", "restart"), null);
    assert.equal(decide(MANAGE, "understudy", "ssh.service", "stop"), null);
    assert.equal(decide(MANAGE, "understudy", "understudy.service", "stop"), null);
    assert.equal(decide(MANAGE, "nobody", "sftpgo.service", "start"), null);
    assert.equal(decide("org.freedesktop.systemd1.manage-unit-files", "understudy", "sftpgo.service", "start"), null);
  });

  it("every file in systemd/ sits where one of the tests above looks", () => {
    const checked = [
      /^README\.md$/,
      /^understudy\.service$/,
      /^understudy\.service\.d\/[^/]+\.conf\.example$/,
      /^daemon-dropins\/[^/]+\.service\.d\/[^/]+\.conf$/,
      /^daemon-dropins\/[^/]+\.mount\.d\/[^/]+\.conf$/,
      /^units\/[^/]+\.service$/,
      /^tmpfiles\/understudy\.conf$/,
      /^polkit\/50-understudy\.rules$/,
    ];
    const unchecked: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (!checked.some((re) => re.test(path.relative(SYSTEMD, p)))) unchecked.push(path.relative(SYSTEMD, p));
      }
    };
    walk(SYSTEMD);
    assert.deepEqual(unchecked, [], "files no test looks at");
  });
});
