// Config loading (src/config/load.ts + schema.ts): defaults, derived timing, every
// refusal with its code, key path and value; the shipped examples; the docs'
// key reference; and the real `understudy config check` CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { loadConfigFile, parseConfigText, validateTiming, type Config, type LoadOptions } from "../../../src/config/load.js";
import { configSchema } from "../../../src/config/schema.js";
import { UnderstudyError, type ErrorCode } from "../../../src/errors/catalogue.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const EXAMPLES = join(ROOT, "deploy", "examples");
const CONFIG_DOC = join(ROOT, "docs", "configuration.md");
const CLI = join(ROOT, "dist", "cli", "main.js");
const FILE = "/etc/understudy/understudy.yaml";

type Doc = Record<string, unknown>;

/** The smallest valid file: everything else comes from defaults. */
const MINIMAL: Doc = {
  cluster: "sftp-prod",
  node: { name: "n1", address: "198.18.0.11" },
  etcd: { endpoints: ["http://198.18.0.2:2379"] },
  daemon: { backend: "systemd", unit: "ssh.service" },
};

const VIP = { address: "198.18.0.100/24", interface: "eth0" };

const SYNC_SSH = { key: "/etc/understudy/sync_ed25519", known_hosts: "/etc/understudy/sync_known_hosts" };
/** A sync section with `roots` (default: one root at /etc/ssh) and other keys. */
const syncOf = (roots: Doc[] = [{ name: "ssh", path: "/etc/ssh" }], more: Doc = {}): Doc => ({ roots, ssh: SYNC_SSH, ...more });

/** MINIMAL with top-level sections replaced (undefined removes one). */
function yamlOf(overrides: Doc = {}): string {
  const doc: Doc = { ...MINIMAL, ...overrides };
  for (const k of Object.keys(doc)) if (doc[k] === undefined) delete doc[k];
  return stringify(doc);
}

function parse(text: string, options?: LoadOptions): Config {
  return parseConfigText(text, FILE, options);
}

function catchError(fn: () => unknown): UnderstudyError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UnderstudyError, `expected an UnderstudyError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the config to be refused");
}

async function catchErrorAsync(fn: () => Promise<unknown>): Promise<UnderstudyError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof UnderstudyError, `expected an UnderstudyError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the config to be refused");
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "understudy-config-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- valid files

test("a minimal config is valid and gets every default", () => {
  const c = parse(yamlOf());
  assert.equal(c.cluster, "sftp-prod");
  assert.deepEqual(c.node, { name: "n1", address: "198.18.0.11", priority: 100, nofailover: false });
  assert.deepEqual(c.etcd, { endpoints: ["http://198.18.0.2:2379"], prefix: "/understudy", dial_timeout: 2000, request_timeout: 1000 });
  assert.deepEqual(c.election, { ttlMs: 5000, fenceMarginMs: 1000, renewIntervalMs: 1250, rankingDelayMs: 500, flap: { maxMoves: 3, windowMs: 600_000 }, failsafe: "off" });
  assert.equal(c.vip, undefined, "vip is optional: no floating IP");
  assert.equal(c.daemon.backend, "systemd");
  assert.equal(c.daemon.mode, "cold");
  assert.equal(c.daemon.unit, "ssh.service");
  assert.equal(c.daemon.stop_timeout, 5000);
  assert.equal(c.daemon.restart_backoff, 100);
  assert.equal(c.daemon.restart_backoff_max, 5000);
  assert.equal(c.daemon.restarts_before_handover, 1);
  assert.deepEqual(c.probes, []);
  assert.equal(c.state_dir, "/var/lib/understudy");
  assert.deepEqual(c.log, { level: "info" });
});

test("a vip section gets its defaults", () => {
  const c = parse(yamlOf({ vip: VIP }));
  assert.deepEqual(c.vip, {
    address: "198.18.0.100/24",
    interface: "eth0",
    backend: "ip",
    duplicate_check: true,
    duplicate_check_timeout: 100,
    arp_count: 3,
    announce_interval: 10_000,
    reconcile_interval: 5000,
    hold_timeout: 30_000,
  });
});

test("a probe gets its defaults", () => {
  const c = parse(
    yamlOf({
      probes: [
        { name: "sftp", type: "ssh", port: 22 },
        { name: "admin", type: "http", url: "http://127.0.0.1:8080/healthz" },
      ],
    }),
  );
  assert.deepEqual(c.probes[0], {
    name: "sftp",
    type: "ssh",
    host: "127.0.0.1",
    port: 22,
    expect_status: 200,
    interval: 1000,
    timeout: 1000,
    rise: 1,
    fall: 3,
    critical: true,
  });
  assert.equal(c.probes[1]!.url, "http://127.0.0.1:8080/healthz");
  assert.equal(c.probes[1]!.port, undefined);
});

test("durations: ms, s, m, h and decimals", () => {
  const cases: [string, number][] = [
    ["250ms", 250],
    ["5s", 5000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["0.25s", 250],
  ];
  for (const [text, ms] of cases) {
    const c = parse(yamlOf({ etcd: { endpoints: ["http://198.18.0.2:2379"], dial_timeout: text } }));
    assert.equal(c.etcd.dial_timeout, ms, text);
  }
});

test("derived timing: renew_interval defaults to ttl/4 (at least 100ms); an explicit one is kept", () => {
  const cases: { election: Doc; renew: number }[] = [
    { election: { ttl: "5s" }, renew: 1250 },
    { election: { ttl: "1s", fence_margin: "300ms" }, renew: 250 },
    { election: { ttl: "10s", fence_margin: "2s" }, renew: 2500 },
    { election: { ttl: "2s", fence_margin: "500ms", renew_interval: "400ms" }, renew: 400 },
  ];
  for (const { election, renew } of cases) {
    assert.equal(parse(yamlOf({ election })).election.renewIntervalMs, renew, JSON.stringify(election));
  }
});

test("failsafe on is valid with the default timing and with the fast profile (1.5 renew intervals before ttl - margin)", () => {
  const api = { listen: "0.0.0.0:8470", token_file: "/etc/understudy/api-token" };
  assert.equal(parse(yamlOf({ election: { failsafe: "on" }, api })).election.failsafe, "on");
  assert.equal(parse(yamlOf({ election: { ttl: "1s", fence_margin: "300ms", failsafe: "on" }, api })).election.failsafe, "on");
});

test("the fast profile (ttl 1s, fence_margin 300ms) is valid", () => {
  const c = parse(yamlOf({ election: { ttl: "1s", fence_margin: "300ms" } }));
  assert.deepEqual(c.election, { ttlMs: 1000, fenceMarginMs: 300, renewIntervalMs: 250, rankingDelayMs: 500, flap: { maxMoves: 3, windowMs: 600_000 }, failsafe: "off" });
});

test("each daemon backend is valid with its own keys, in cold and warm mode", () => {
  const daemons: Doc[] = [
    { backend: "process", command: ["/usr/sbin/sshd", "-D", "-e"] },
    { backend: "command", start: ["/usr/local/sbin/ftp-ctl", "start"], stop: ["/usr/local/sbin/ftp-ctl", "stop"], status: ["/usr/local/sbin/ftp-ctl", "status"] },
    { backend: "systemd", unit: "sftpgo.service", mode: "warm" },
    { backend: "systemd", unit: "sshd@sftp.service", mode: "cold" },
  ];
  for (const daemon of daemons) assert.equal(parse(yamlOf({ daemon })).daemon.backend, daemon.backend);
});

test("vip.backend none and IPv6 addresses are accepted", () => {
  assert.equal(parse(yamlOf({ vip: { ...VIP, backend: "none" } })).vip!.backend, "none");
  assert.equal(parse(yamlOf({ vip: { address: "2001:db8::100/64", interface: "eth0" } })).vip!.address, "2001:db8::100/64");
  assert.equal(parse(yamlOf({ vip: { address: "198.18.0.100/32", interface: "eth0" } })).vip!.address, "198.18.0.100/32");
});

test("a sync section gets its defaults; a quoted max_mode is octal", () => {
  const c = parse(
    yamlOf({
      sync: syncOf([
        { name: "ssh", path: "/etc/ssh/", max_mode: "0600", owner: "root:root", validate: ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"] },
        { name: "web", path: "/etc/nginx" },
      ]),
    }),
  );
  assert.ok(c.sync, "c.sync");
  const d = c.sync;
  assert.deepEqual(d.ssh, { ...SYNC_SSH, user: "understudy-sync", port: 22, connect_timeout: 5000, ciphers: "auto" });
  assert.deepEqual(
    [d.debounce, d.max_delay, d.reconcile_interval, d.maximum_lag_on_failover, d.pull_timeout, d.validate_timeout, d.post_sync_timeout, d.retry_max, d.rsync_path],
    [20, 250, 60_000, 60_000, 300_000, 30_000, 30_000, 30_000, "/usr/bin/rsync"],
  );
  assert.deepEqual(c.sync.roots[0], {
    name: "ssh",
    path: "/etc/ssh/",
    include: [],
    exclude: [],
    max_mode: 0o600,
    owner: "root:root",
    validate: ["/usr/sbin/sshd", "-t", "-f", "{staged}/sshd_config"],
    max_file_size: 64 * 1024 * 1024,
  });
  assert.equal(c.sync.roots[1]!.max_mode, 0o775, "the default refuses world-writable modes");
  assert.equal(parse(yamlOf()).sync, undefined, "sync is optional");
  const tuned = parse(yamlOf({ sync: syncOf(undefined, { debounce: "50ms", max_delay: "50ms", maximum_lag_on_failover: "5m" }) })).sync!;
  assert.deepEqual([tuned.debounce, tuned.max_delay, tuned.maximum_lag_on_failover], [50, 50, 300_000], "max_delay may equal debounce");
});

// ------------------------------------------------------------- invalid files

interface Bad {
  readonly name: string;
  readonly text: string;
  readonly code: ErrorCode;
  /** Key path the error names (details.path, and in the message). */
  readonly path?: string;
  /** Value the error shows (details.value, and in the message). */
  readonly value?: string;
  /** Substring of the problem. */
  readonly problem?: string;
  readonly options?: LoadOptions;
}

const DAEMON = MINIMAL.daemon as Doc;

const BAD: readonly Bad[] = [
  { name: "unknown top-level key", text: yamlOf({ clustre: "x" }), code: "US_E_CONFIG_INVALID", path: "clustre", value: '"x"', problem: "unknown key" },
  { name: "unknown nested key", text: yamlOf({ election: { ttl: "5s", fence_margn: "1s" } }), code: "US_E_CONFIG_INVALID", path: "election.fence_margn", value: '"1s"', problem: "unknown key" },
  {
    name: "unknown key in a probe",
    text: yamlOf({ probes: [{ name: "sftp", type: "ssh", port: 22, critcal: true }] }),
    code: "US_E_CONFIG_INVALID",
    path: "probes.0.critcal",
    value: "true",
    problem: "unknown key",
  },
  {
    name: "wrong type (string for a number)",
    text: yamlOf({ node: { name: "n1", address: "198.18.0.11", priority: "high" } }),
    code: "US_E_CONFIG_INVALID",
    path: "node.priority",
    value: '"high"',
    problem: "expected number",
  },
  { name: "wrong type (number for a duration)", text: yamlOf({ election: { ttl: 5 } }), code: "US_E_CONFIG_INVALID", path: "election.ttl", value: "5", problem: "must be a duration" },
  { name: "wrong type (string for a list)", text: yamlOf({ etcd: { endpoints: "http://198.18.0.2:2379" } }), code: "US_E_CONFIG_INVALID", path: "etcd.endpoints", value: '"http://198.18.0.2:2379"' },
  { name: "missing required section", text: yamlOf({ daemon: undefined }), code: "US_E_CONFIG_INVALID", path: "daemon", value: "nothing" },
  { name: "empty etcd endpoint list", text: yamlOf({ etcd: { endpoints: [] } }), code: "US_E_CONFIG_INVALID", path: "etcd.endpoints", value: "[]", problem: "at least one" },
  { name: "bad node name", text: yamlOf({ node: { name: "N_1", address: "198.18.0.11" } }), code: "US_E_CONFIG_INVALID", path: "node.name", value: '"N_1"', problem: "lower-case" },
  { name: "bad node address", text: yamlOf({ node: { name: "n1", address: "node1.example" } }), code: "US_E_CONFIG_INVALID", path: "node.address", value: '"node1.example"', problem: "IP address" },
  { name: "bad daemon mode", text: yamlOf({ daemon: { ...DAEMON, mode: "hot" } }), code: "US_E_CONFIG_INVALID", path: "daemon.mode", value: '"hot"' },
  { name: "ttl 500ms (< 1s)", text: yamlOf({ election: { ttl: "500ms", fence_margin: "100ms" } }), code: "US_E_CONFIG_TIMING", path: "election.ttl", value: "500ms", problem: "at least 1s" },
  {
    name: "failsafe on without api.token_file (the grants are signed with a key derived from it)",
    text: yamlOf({ election: { failsafe: "on" }, api: { listen: "0.0.0.0:8470" } }),
    code: "US_E_CONFIG_INVALID",
    path: "election.failsafe",
    value: '"on"',
    problem: "needs api.token_file",
  },
  {
    name: "failsafe on with a renew interval that leaves no time for a round before the deadline",
    text: yamlOf({ election: { ttl: "2s", fence_margin: "500ms", renew_interval: "1s", failsafe: "on" }, api: { listen: "0.0.0.0:8470", token_file: "/etc/understudy/api-token" } }),
    code: "US_E_CONFIG_TIMING",
    path: "election.failsafe",
    value: "on",
    problem: "1.5 × election.renew_interval (1500ms) below ttl - fence_margin (1500ms)",
  },
  {
    name: "ttl not whole seconds",
    text: yamlOf({ election: { ttl: "1500ms", fence_margin: "500ms" } }),
    code: "US_E_CONFIG_TIMING",
    path: "election.ttl",
    value: "1500ms",
    problem: "whole number of seconds",
  },
  {
    name: "check_interval 0",
    text: yamlOf({ daemon: { ...DAEMON, check: ["/bin/true"], check_interval: "0s" } }),
    code: "US_E_CONFIG_INVALID",
    path: "daemon.check_interval",
    value: '"0s"',
    problem: "greater than 0",
  },
  {
    name: "request_timeout 0",
    text: yamlOf({ etcd: { endpoints: ["http://198.18.0.2:2379"], request_timeout: "0s" } }),
    code: "US_E_CONFIG_INVALID",
    path: "etcd.request_timeout",
    value: '"0s"',
    problem: "greater than 0",
  },
  {
    name: "fence_margin equal to ttl",
    text: yamlOf({ election: { ttl: "2s", fence_margin: "2s" } }),
    code: "US_E_CONFIG_TIMING",
    path: "election.fence_margin",
    value: "2000ms",
    problem: "less than election.ttl",
  },
  { name: "fence_margin above ttl", text: yamlOf({ election: { ttl: "1s" } }), code: "US_E_CONFIG_TIMING", path: "election.fence_margin", value: "1000ms", problem: "less than election.ttl (1000ms)" },
  { name: "fence_margin 0", text: yamlOf({ election: { fence_margin: "0s" } }), code: "US_E_CONFIG_TIMING", path: "election.fence_margin", value: "0ms", problem: "greater than 0" },
  {
    name: "renew_interval too long",
    text: yamlOf({ election: { ttl: "5s", fence_margin: "1s", renew_interval: "4s" } }),
    code: "US_E_CONFIG_TIMING",
    path: "election.renew_interval",
    value: "4000ms",
    problem: "ttl - fence_margin (4000ms)",
  },
  {
    name: "default renew_interval too long for a big fence_margin",
    text: yamlOf({ election: { ttl: "5s", fence_margin: "4s" } }),
    code: "US_E_CONFIG_TIMING",
    path: "election.renew_interval",
    value: "1250ms",
  },
  { name: "renew_interval 0", text: yamlOf({ election: { renew_interval: "0ms" } }), code: "US_E_CONFIG_TIMING", path: "election.renew_interval", value: "0ms" },
  { name: 'bad duration "5 sec"', text: yamlOf({ election: { ttl: "5 sec" } }), code: "US_E_CONFIG_INVALID", path: "election.ttl", value: '"5 sec"', problem: "must be a duration like 5s or 250ms" },
  {
    name: 'combined duration "1m30s"',
    text: yamlOf({ etcd: { endpoints: ["http://198.18.0.2:2379"], dial_timeout: "1m30s" } }),
    code: "US_E_CONFIG_INVALID",
    path: "etcd.dial_timeout",
    value: '"1m30s"',
  },
  { name: "CIDR prefix /33", text: yamlOf({ vip: { ...VIP, address: "198.18.0.100/33" } }), code: "US_E_CONFIG_INVALID", path: "vip.address", value: '"198.18.0.100/33"', problem: "prefix length" },
  { name: "CIDR address 300.1.1.1/24", text: yamlOf({ vip: { ...VIP, address: "300.1.1.1/24" } }), code: "US_E_CONFIG_INVALID", path: "vip.address", value: '"300.1.1.1/24"' },
  { name: "CIDR missing prefix", text: yamlOf({ vip: { ...VIP, address: "198.18.0.100" } }), code: "US_E_CONFIG_INVALID", path: "vip.address", value: '"198.18.0.100"' },
  { name: "CIDR IPv6 prefix /129", text: yamlOf({ vip: { ...VIP, address: "2001:db8::1/129" } }), code: "US_E_CONFIG_INVALID", path: "vip.address", value: '"2001:db8::1/129"' },
  { name: "vip without interface", text: yamlOf({ vip: { address: "198.18.0.100/24" } }), code: "US_E_CONFIG_INVALID", path: "vip.interface", value: "nothing" },
  {
    name: "process backend without command",
    text: yamlOf({ daemon: { backend: "process" } }),
    code: "US_E_CONFIG_INVALID",
    path: "daemon.command",
    value: "nothing",
    problem: "required for the process backend",
  },
  {
    name: "command backend without stop",
    text: yamlOf({ daemon: { backend: "command", start: ["/bin/start"], status: ["/bin/status"] } }),
    code: "US_E_CONFIG_INVALID",
    path: "daemon.stop",
    value: "nothing",
    problem: "required for the command backend",
  },
  {
    name: "systemd backend without unit",
    text: yamlOf({ daemon: { backend: "systemd" } }),
    code: "US_E_CONFIG_INVALID",
    path: "daemon.unit",
    value: "nothing",
    problem: "required for the systemd backend",
  },
  { name: "systemd unit without .service", text: yamlOf({ daemon: { backend: "systemd", unit: "sftpgo" } }), code: "US_E_CONFIG_INVALID", path: "daemon.unit", value: '"sftpgo"' },
  { name: "systemd unit starting with a dash", text: yamlOf({ daemon: { backend: "systemd", unit: "-x.service" } }), code: "US_E_CONFIG_INVALID", path: "daemon.unit", value: '"-x.service"' },
  { name: "empty process command", text: yamlOf({ daemon: { backend: "process", command: [] } }), code: "US_E_CONFIG_INVALID", path: "daemon.command", value: "[]" },
  { name: "daemon stop_timeout 0", text: yamlOf({ daemon: { ...DAEMON, stop_timeout: "0s" } }), code: "US_E_CONFIG_INVALID", path: "daemon.stop_timeout", value: '"0s"', problem: "greater than 0" },
  {
    name: "http probe without url",
    text: yamlOf({ probes: [{ name: "admin", type: "http" }] }),
    code: "US_E_CONFIG_INVALID",
    path: "probes.0.url",
    value: "nothing",
    problem: "required for an http probe",
  },
  {
    name: "ssh probe without port",
    text: yamlOf({ probes: [{ name: "sftp", type: "ssh" }] }),
    code: "US_E_CONFIG_INVALID",
    path: "probes.0.port",
    value: "nothing",
    problem: "required for a ssh probe",
  },
  { name: "unknown probe type", text: yamlOf({ probes: [{ name: "x", type: "smtp", port: 25 }] }), code: "US_E_CONFIG_INVALID", path: "probes.0.type", value: '"smtp"' },
  { name: "probe port out of range", text: yamlOf({ probes: [{ name: "x", type: "tcp", port: 70000 }] }), code: "US_E_CONFIG_INVALID", path: "probes.0.port", value: "70000" },
  { name: "probe fall 0", text: yamlOf({ probes: [{ name: "x", type: "tcp", port: 22, fall: 0 }] }), code: "US_E_CONFIG_INVALID", path: "probes.0.fall", value: "0" },
  {
    name: "probe interval 0",
    text: yamlOf({ probes: [{ name: "x", type: "tcp", port: 22, interval: "0s" }] }),
    code: "US_E_CONFIG_INVALID",
    path: "probes.0.interval",
    value: '"0s"',
    problem: "greater than 0",
  },
  { name: "probe timeout 0", text: yamlOf({ probes: [{ name: "x", type: "tcp", port: 22, timeout: "0ms" }] }), code: "US_E_CONFIG_INVALID", path: "probes.0.timeout", value: '"0ms"' },
  {
    name: "two probes with one name",
    text: yamlOf({
      probes: [
        { name: "sftp", type: "ssh", port: 22 },
        { name: "sftp", type: "tcp", port: 2222 },
      ],
    }),
    code: "US_E_CONFIG_INVALID",
    path: "probes.1.name",
    value: '"sftp"',
    problem: "used by another probe",
  },
  {
    name: "vip reconcile_interval below 100ms",
    text: yamlOf({ vip: { ...VIP, reconcile_interval: "50ms" } }),
    code: "US_E_CONFIG_INVALID",
    path: "vip.reconcile_interval",
    value: '"50ms"',
    problem: "at least 100ms",
  },
  { name: "unknown watchdog mode", text: yamlOf({ watchdog: { mode: "on" } }), code: "US_E_CONFIG_INVALID", path: "watchdog.mode", value: '"on"' },
  {
    name: "watchdog device not absolute",
    text: yamlOf({ watchdog: { mode: "required", device: "watchdog0" } }),
    code: "US_E_CONFIG_INVALID",
    path: "watchdog.device",
    value: '"watchdog0"',
    problem: "absolute path",
  },
  {
    name: "watchdog safety_margin not below fence_margin",
    text: yamlOf({ watchdog: { mode: "required", safety_margin: "1s" } }),
    code: "US_E_CONFIG_TIMING",
    path: "watchdog.safety_margin",
    value: "1000ms",
    problem: "less than election.fence_margin (1000ms)",
  },
  {
    name: "watchdog safety_margin 0",
    text: yamlOf({ watchdog: { mode: "automatic", safety_margin: "0s" } }),
    code: "US_E_CONFIG_TIMING",
    path: "watchdog.safety_margin",
    value: "0ms",
    problem: "greater than 0",
  },
  {
    name: "watchdog with a ttl too short for a 1s timeout",
    text: yamlOf({ election: { ttl: "2s", fence_margin: "1s" }, watchdog: { mode: "required" } }),
    code: "US_E_CONFIG_TIMING",
    path: "watchdog.safety_margin",
    value: "500ms",
    problem: "timeout under 1s",
  },
  { name: "bad log level", text: yamlOf({ log: { level: "verbose" } }), code: "US_E_CONFIG_INVALID", path: "log.level", value: '"verbose"' },
  { name: "relative state_dir", text: yamlOf({ state_dir: "var/lib/understudy" }), code: "US_E_CONFIG_INVALID", path: "state_dir", value: '"var/lib/understudy"' },
  {
    name: "sync roots nested",
    text: yamlOf({
      sync: syncOf([
        { name: "cfg", path: "/srv/cfg" },
        { name: "keys", path: "/srv/cfg/keys" },
      ]),
    }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.1.path",
    value: '"/srv/cfg/keys"',
    problem: "overlaps root cfg (/srv/cfg): roots must not nest",
  },
  {
    name: "sync roots at one path",
    text: yamlOf({
      sync: syncOf([
        { name: "a", path: "/srv/cfg/" },
        { name: "b", path: "/srv/cfg" },
      ]),
    }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.0.path",
    problem: "roots must not nest",
  },
  {
    name: "two sync roots with one name",
    text: yamlOf({
      sync: syncOf([
        { name: "ssh", path: "/etc/ssh" },
        { name: "ssh", path: "/etc/sftpgo" },
      ]),
    }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.1.name",
    value: '"ssh"',
    problem: "used by another root",
  },
  {
    name: "unquoted max_mode (YAML reads 0600 as the number 600)",
    text: yamlOf({ sync: syncOf([{ name: "ssh", path: "/etc/ssh", max_mode: "0600" }]) }).replace('max_mode: "0600"', "max_mode: 0600"),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.0.max_mode",
    value: "600",
    problem: 'quoted octal mode like "0644"',
  },
  { name: "max_mode not octal", text: yamlOf({ sync: syncOf([{ name: "ssh", path: "/etc/ssh", max_mode: "0680" }]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots.0.max_mode", value: '"0680"' },
  { name: "sync root path /", text: yamlOf({ sync: syncOf([{ name: "all", path: "/" }]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots.0.path", value: '"/"', problem: "other than /" },
  { name: "sync root path //", text: yamlOf({ sync: syncOf([{ name: "all", path: "//" }]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots.0.path", value: '"//"', problem: "other than /" },
  { name: "sync root path with ..", text: yamlOf({ sync: syncOf([{ name: "up", path: "/etc/ssh/../shadow" }]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots.0.path", problem: "without '..'" },
  {
    name: "relative sync root path",
    text: yamlOf({ sync: syncOf([{ name: "ssh", path: "etc/ssh" }]) }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.0.path",
    value: '"etc/ssh"',
    problem: "absolute path",
  },
  {
    name: "sync root inside state_dir",
    text: yamlOf({
      sync: syncOf([
        { name: "ssh", path: "/etc/ssh" },
        { name: "st", path: "/var/lib/understudy/files" },
      ]),
    }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.1.path",
    value: '"/var/lib/understudy/files"',
    problem: "overlaps state_dir (/var/lib/understudy)",
  },
  {
    name: "sync root containing state_dir",
    text: yamlOf({ state_dir: "/srv/cfg/understudy", sync: syncOf([{ name: "cfg", path: "/srv/cfg" }]) }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.0.path",
    value: '"/srv/cfg"',
    problem: "overlaps state_dir",
  },
  {
    name: "sync max_delay below debounce",
    text: yamlOf({ sync: syncOf(undefined, { debounce: "100ms", max_delay: "50ms" }) }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.max_delay",
    value: '"50ms"',
    problem: "at least sync.debounce",
  },
  {
    name: "sync ssh cipher misspelt",
    text: yamlOf({ sync: { roots: [{ name: "ssh", path: "/etc/ssh" }], ssh: { ...SYNC_SSH, ciphers: "^aes128-gcm,chacha20-poly1305@openssh.com" } } }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.ssh.ciphers",
    value: '"^aes128-gcm,chacha20-poly1305@openssh.com"',
    problem: 'unknown cipher "aes128-gcm"',
  },
  {
    name: "sync ssh ciphers empty list",
    text: yamlOf({ sync: { roots: [{ name: "ssh", path: "/etc/ssh" }], ssh: { ...SYNC_SSH, ciphers: "^" } } }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.ssh.ciphers",
    value: '"^"',
  },
  { name: "sync without roots", text: yamlOf({ sync: syncOf([]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots", value: "[]", problem: "at least one root" },
  {
    name: "sync without ssh.key",
    text: yamlOf({ sync: { roots: [{ name: "ssh", path: "/etc/ssh" }], ssh: { known_hosts: "/etc/understudy/kh" } } }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.ssh.key",
    value: "nothing",
  },
  { name: "bad sync root name", text: yamlOf({ sync: syncOf([{ name: "../x", path: "/etc/ssh" }]) }), code: "US_E_CONFIG_INVALID", path: "sync.roots.0.name", value: '"../x"' },
  {
    name: "bad sync owner",
    text: yamlOf({ sync: syncOf([{ name: "ssh", path: "/etc/ssh", owner: "root" }]) }),
    code: "US_E_CONFIG_INVALID",
    path: "sync.roots.0.owner",
    value: '"root"',
    problem: "user:group",
  },
  { name: "not a mapping", text: "just a string\n", code: "US_E_CONFIG_INVALID", path: "(root)", value: '"just a string"' },
];

for (const bad of BAD) {
  test(`refused: ${bad.name} -> ${bad.code}${bad.path ? ` at ${bad.path}` : ""}`, () => {
    const e = catchError(() => parse(bad.text, bad.options));
    assert.equal(e.code, bad.code, e.message);
    assert.equal(e.details.file, FILE);
    assert.ok(e.message.includes(FILE), e.message);
    if (bad.path !== undefined) {
      assert.equal(e.details.path, bad.path, e.message);
      assert.ok(e.message.includes(`${bad.path}: `), `message names the key path: ${e.message}`);
    }
    if (bad.value !== undefined) {
      assert.equal(e.details.value, bad.value, e.message);
      assert.ok(e.message.includes(`(got ${bad.value})`), `message shows the value: ${e.message}`);
    }
    if (bad.problem !== undefined) assert.ok(String(e.details.problem).includes(bad.problem), e.message);
    assert.equal(e.transient, false);
  });
}

test("refused: duplicate YAML key -> US_E_CONFIG_PARSE, naming the line", () => {
  const text = `${yamlOf()}cluster: other\n`;
  const e = catchError(() => parse(text));
  assert.equal(e.code, "US_E_CONFIG_PARSE");
  assert.match(String(e.details.cause), /unique/i);
  assert.match(e.message, /line \d+/);
  assert.ok(e.message.includes(FILE), "e.message.includes(FILE)");
});

test("refused: a duplicate key inside a nested mapping -> US_E_CONFIG_PARSE", () => {
  const text = yamlOf().replace("name: n1\n", "name: n1\n  name: n2\n");
  assert.ok(text.includes("name: n2"), "fixture built");
  assert.equal(catchError(() => parse(text)).code, "US_E_CONFIG_PARSE");
});

test("refused: invalid YAML -> US_E_CONFIG_PARSE, naming the line", () => {
  const e = catchError(() => parse(`${yamlOf()}daemon2: { backend: systemd, unit: ssh.service\n`));
  assert.equal(e.code, "US_E_CONFIG_PARSE");
  assert.match(e.message, /is not valid YAML: .*line \d+/);
  assert.equal(catchError(() => parse("cluster: [unclosed\n")).code, "US_E_CONFIG_PARSE");
  assert.equal(catchError(() => parse("cluster: a\n\tnode: b\n")).code, "US_E_CONFIG_PARSE");
});

test("refused: an empty file names the first missing key", () => {
  const e = catchError(() => parse(""));
  assert.equal(e.code, "US_E_CONFIG_INVALID");
  assert.equal(e.details.path, "cluster");
  assert.equal(e.details.value, "nothing");
});

// ------------------------------------------------------------ host checks

test("host checks: the vip interface must exist in sysClassNet", (t) => {
  const net = tempDir(t);
  mkdirSync(join(net, "eth0"));
  const text = yamlOf({ vip: VIP });
  assert.equal(parse(text, { hostChecks: true, sysClassNet: net }).vip!.interface, "eth0");

  const missing = yamlOf({ vip: { ...VIP, interface: "bond7" } });
  const e = catchError(() => parse(missing, { hostChecks: true, sysClassNet: net }));
  assert.equal(e.code, "US_E_CONFIG_INTERFACE");
  assert.equal(e.details.value, "bond7");
  assert.ok(e.message.includes("vip.interface"), e.message);
  assert.ok(e.message.includes("bond7"), e.message);

  // Off by default and with hostChecks: false (checking another node's file).
  assert.equal(parse(missing, { sysClassNet: net }).vip!.interface, "bond7");
  assert.equal(parse(missing, { hostChecks: false, sysClassNet: net }).vip!.interface, "bond7");
});

test("host checks: nothing to check without a vip or with vip.backend none", (t) => {
  const net = tempDir(t);
  assert.equal(parse(yamlOf(), { hostChecks: true, sysClassNet: net }).vip, undefined);
  const none = yamlOf({ vip: { ...VIP, interface: "bond7", backend: "none" } });
  assert.equal(parse(none, { hostChecks: true, sysClassNet: net }).vip!.backend, "none");
});

// ------------------------------------------------------------ loadConfigFile

test("loadConfigFile reads and validates a file, host checks included", async (t) => {
  const dir = tempDir(t);
  const net = join(dir, "net");
  mkdirSync(join(net, "eth0"), { recursive: true });
  const file = join(dir, "understudy.yaml");
  writeFileSync(file, yamlOf({ vip: VIP }));
  const c = await loadConfigFile(file, { hostChecks: true, sysClassNet: net });
  assert.equal(c.cluster, "sftp-prod");
  assert.equal(c.election.renewIntervalMs, 1250);

  writeFileSync(file, yamlOf({ election: { ttl: "500ms" } }));
  const e = await catchErrorAsync(() => loadConfigFile(file));
  assert.equal(e.code, "US_E_CONFIG_TIMING");
  assert.equal(e.details.file, file, "errors name the file that was read");
});

test("loadConfigFile: an unreadable file -> US_E_CONFIG_READ", async (t) => {
  const dir = tempDir(t);
  const missing = join(dir, "nope.yaml");
  const e = await catchErrorAsync(() => loadConfigFile(missing));
  assert.equal(e.code, "US_E_CONFIG_READ");
  assert.equal(e.details.file, missing);
  assert.match(e.message, /ENOENT/);
  assert.ok(e.message.includes(missing), "e.message.includes(missing)");

  const asDir = await catchErrorAsync(() => loadConfigFile(dir));
  assert.equal(asDir.code, "US_E_CONFIG_READ");
  assert.match(asDir.message, /not a regular file \(a directory\)/);
});

// ------------------------------------------------------------ validateTiming

test("validateTiming applies the same rules to a timing built in code", () => {
  const ok = { ttlMs: 1000, fenceMarginMs: 300, renewIntervalMs: 250, rankingDelayMs: 0 };
  validateTiming("(code)", ok);
  const cases: [Partial<typeof ok>, string][] = [
    [{ ttlMs: 999 }, "election.ttl"],
    [{ fenceMarginMs: 0 }, "election.fence_margin"],
    [{ fenceMarginMs: 1000 }, "election.fence_margin"],
    [{ renewIntervalMs: 700 }, "election.renew_interval"],
    [{ renewIntervalMs: -1 }, "election.renew_interval"],
  ];
  for (const [change, path] of cases) {
    const e = catchError(() => validateTiming("(code)", { ...ok, ...change }));
    assert.equal(e.code, "US_E_CONFIG_TIMING");
    assert.equal(e.details.path, path, JSON.stringify(change));
  }
});

// ------------------------------------------------------------ shipped examples

test("every deploy/examples/*.yaml file is valid (host checks off)", async () => {
  const files = readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  for (const expected of ["openssh-sftp.yaml", "proftpd.yaml", "sftpgo.yaml"]) assert.ok(files.includes(expected), `${expected} exists`);
  for (const f of files) {
    const c = await loadConfigFile(join(EXAMPLES, f), { hostChecks: false });
    assert.ok(c.cluster.length > 0, f);
    for (const url of c.etcd.endpoints) assert.match(url, /^https?:\/\/198\.(18|19)\./, `${f}: etcd endpoints in 198.18.0.0/15`);
    if (c.vip) assert.match(c.vip.address, /^198\.(18|19)\./, `${f}: VIP in 198.18.0.0/15`);
  }
});

test("every example reaches etcd over TLS with a client certificate and etcd auth; the files pass the agent's checks", async (t) => {
  const { readEtcdSecurity } = await import("../../../src/config/etcd-security.js");
  const dir = mkdtempSync(join(tmpdir(), "examples-etcd-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Stand-ins for /etc/understudy/etcd-*: a certificate and key made here, the password file 0600 (config check's host checks read them).
  const key = join(dir, "etcd-client.key");
  const cert = join(dir, "etcd-client.pem");
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=examples", "-keyout", key, "-out", cert], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(made.status, 0, made.stderr);
  const files: Record<string, string> = {
    "/etc/understudy/etcd-ca.pem": cert,
    "/etc/understudy/etcd-client.pem": cert,
    "/etc/understudy/etcd-client.key": key,
    "/etc/understudy/etcd-password": join(dir, "etcd-password"),
  };
  writeFileSync(files["/etc/understudy/etcd-password"]!, "example-password\n", { mode: 0o600 });
  chmodSync(key, 0o600);
  for (const f of readdirSync(EXAMPLES)
    .filter((x) => x.endsWith(".yaml"))
    .sort()) {
    const c = await loadConfigFile(join(EXAMPLES, f), { hostChecks: false });
    for (const url of c.etcd.endpoints) assert.match(url, /^https:\/\//, `${f}: etcd over https`);
    assert.deepEqual(
      c.etcd.tls,
      { ca: "/etc/understudy/etcd-ca.pem", cert: "/etc/understudy/etcd-client.pem", key: "/etc/understudy/etcd-client.key" },
      `${f}: etcd.tls as docs/security.md and the Ansible role have it`,
    );
    assert.deepEqual(c.etcd.auth, { user: `understudy-${c.cluster}`, password_file: "/etc/understudy/etcd-password" }, `${f}: etcd.auth`);
    assert.match(readFileSync(join(EXAMPLES, f), "utf8"), /docs\/security\.md[\s\S]*understudy etcd setup/, `${f}: the comment points to docs/security.md and etcd setup`);
    const rewritten = {
      tls: { ca: files[c.etcd.tls!.ca]!, cert: files[c.etcd.tls!.cert!]!, key: files[c.etcd.tls!.key!]! },
      auth: { user: c.etcd.auth!.user, password_file: files[c.etcd.auth!.password_file]! },
    };
    const sec = await readEtcdSecurity(f, rewritten);
    assert.equal(sec.auth?.password, "example-password", f);
    assert.ok(sec.tls?.key && sec.tls.cert, f);
  }
  // The check is not weakened for the examples: a key others may read is refused, naming the key.
  chmodSync(key, 0o644);
  await assert.rejects(
    readEtcdSecurity("x.yaml", { tls: { ca: cert, cert, key } }),
    (e: unknown) => e instanceof UnderstudyError && e.code === "US_E_CONFIG_INVALID" && /etcd\.tls\.key/.test(e.message),
  );
});

test("the examples show what they say they show", async () => {
  const load = (f: string) => loadConfigFile(join(EXAMPLES, f), { hostChecks: false });
  const openssh = await load("openssh-sftp.yaml");
  assert.equal(openssh.daemon.backend, "systemd");
  assert.ok(
    openssh.probes.some((p) => p.type === "ssh" && p.critical),
    'openssh.probes.some((p) => p.type === "ssh" && p.critical)',
  );

  const sftpgo = await load("sftpgo.yaml");
  assert.equal(sftpgo.daemon.mode, "warm");
  assert.equal(sftpgo.daemon.unit, "sftpgo.service");
  assert.ok(
    sftpgo.probes.some((p) => p.type === "ssh"),
    'sftpgo.probes.some((p) => p.type === "ssh")',
  );
  assert.ok(
    sftpgo.probes.some((p) => p.type === "http" && p.url !== undefined && new URL(p.url).pathname === "/healthz"),
    'sftpgo.probes.some((p) => p.type === "http" && p.url !== undefined && new URL(p.url).pathname ===...',
  );

  const proftpd = await load("proftpd.yaml");
  assert.ok(["command", "systemd"].includes(proftpd.daemon.backend), '["command", "systemd"].includes(proftpd.daemon.backend)');
  assert.ok(
    proftpd.probes.some((p) => p.type === "ftp"),
    'proftpd.probes.some((p) => p.type === "ftp")',
  );
});

// ------------------------------------------------------------ docs/configuration.md

/** Every key path of the schema: `node.name`, `probes[].url`... */
function schemaKeys(): string[] {
  const out: string[] = [];
  const walk = (schema: unknown, prefix: string): void => {
    // zod 4 keeps the structure in _zod.def; wrappers (optional, default, prefault, pipe) hold the real type inside.
    let s = schema as { _zod: { def: Record<string, unknown> } };
    for (;;) {
      const def = s._zod.def;
      if (def.type === "pipe") s = def.in as typeof s;
      else if (["optional", "default", "prefault", "nullable", "readonly", "catch"].includes(def.type as string)) s = def.innerType as typeof s;
      else break;
    }
    const def = s._zod.def;
    if (def.type === "object") {
      for (const [k, v] of Object.entries(def.shape as Record<string, unknown>)) {
        const path = prefix ? `${prefix}.${k}` : k;
        out.push(path);
        walk(v, path);
      }
    } else if (def.type === "array") {
      walk(def.element, `${prefix}[]`);
    }
  };
  walk(configSchema, "");
  return out;
}

/** Keys in the first column of the `| key | ... |` tables under "## Key reference". */
function documentedKeys(): string[] {
  const text = readFileSync(CONFIG_DOC, "utf8");
  const start = text.indexOf("\n## Key reference");
  const end = text.indexOf("\n## ", start + 1);
  assert.ok(start >= 0 && end > start, "docs/configuration.md has a Key reference section");
  const keys: string[] = [];
  let inKeyTable = false;
  for (const line of text.slice(start, end).split("\n")) {
    if (!line.startsWith("|")) {
      inKeyTable = false;
      continue;
    }
    if (/^\| key \|/.test(line)) inKeyTable = true;
    const m = /^\| `([a-z_]+(?:\[\])?(?:\.[a-z_]+(?:\[\])?)*)` \|/.exec(line);
    if (inKeyTable && m) keys.push(m[1]!);
  }
  return keys;
}

test("docs/configuration.md documents every schema key, and only those", () => {
  const schema = schemaKeys();
  const docs = documentedKeys();
  assert.ok(schema.length > 30, "walked the schema");
  const undocumented = schema.filter((k) => !docs.includes(k));
  const unknown = docs.filter((k) => !schema.includes(k));
  assert.deepEqual(undocumented, [], `keys missing from docs/configuration.md's Key reference: ${undocumented.join(", ")}`);
  assert.deepEqual(unknown, [], `docs/configuration.md documents keys the schema does not have: ${unknown.join(", ")}`);
});

test("the complete example in docs/configuration.md is valid and uses every key", () => {
  const text = readFileSync(CONFIG_DOC, "utf8");
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^cluster:/m.test(b));
  assert.ok(blocks.length >= 1, "docs/configuration.md has a full YAML example");
  for (const block of blocks) parse(block);
  const full = blocks[0]!;
  for (const key of schemaKeys()) {
    const leaf = key.split(".").pop()!.replace("[]", "");
    // A key may be shown commented out (the other daemon backends' keys).
    assert.ok(new RegExp(`^\\s*(# ?)?(- )?${leaf}:`, "m").test(full), `the complete example shows ${key}`);
  }
});

// ------------------------------------------------------------ the real CLI

const cliSkip = existsSync(CLI) ? false : "dist/cli/main.js is missing: run `npm run build` first";

test("`understudy config check` (built CLI): exit 0 on a good file, 2 on a bad one, naming code, key path and value", { skip: cliSkip }, (t) => {
  const dir = tempDir(t);
  const good = join(dir, "good.yaml");
  const bad = join(dir, "bad.yaml");
  writeFileSync(good, yamlOf({ vip: VIP }));
  writeFileSync(bad, yamlOf({ election: { ttl: "500ms" } }));
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, "config", "check", ...args], { encoding: "utf8", timeout: 30_000 });

  const ok = run(good, "--no-host-checks");
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /valid \(cluster sftp-prod, node n1, ttl 5000ms, fence margin 1000ms\)/);
  assert.equal(ok.stderr, "");

  const ko = run(bad, "--no-host-checks");
  assert.equal(ko.status, 2, `stdout: ${ko.stdout}\nstderr: ${ko.stderr}`);
  assert.match(ko.stderr, /US_E_CONFIG_TIMING/);
  assert.match(ko.stderr, /election\.ttl/);
  assert.match(ko.stderr, /500ms/);
  assert.ok(ko.stderr.includes(bad), "names the file");
  assert.equal(ko.stdout, "");

  const unknownKey = join(dir, "unknown.yaml");
  writeFileSync(unknownKey, yamlOf({ election: { ttl: "5s", fence_margn: "1s" } }));
  const ko2 = run(unknownKey, "--no-host-checks");
  assert.equal(ko2.status, 2);
  assert.match(ko2.stderr, /US_E_CONFIG_INVALID: .*election\.fence_margn: unknown key \(got "1s"\)/);

  const missing = run(join(dir, "nope.yaml"));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /US_E_CONFIG_READ/);

  const usage = run();
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /US_E_CLI_USAGE/);
});
