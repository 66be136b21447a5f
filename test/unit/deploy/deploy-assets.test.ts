// The files under deploy/ that operators copy: example agent configs, the
// Prometheus scrape config, alert rules and their promtool unit tests, the
// HAProxy config and the Grafana dashboard. Each is checked by the tool that
// will read it (parseConfigText, promtool, haproxy), and every PromQL
// expression may only name metrics that src/api/metrics.ts exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { parseConfigText, type Config } from "../../../src/config/load.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const EXAMPLES = join(ROOT, "deploy", "examples");
const PROMETHEUS_DIR = join(ROOT, "deploy", "prometheus");
const PROMETHEUS_YML = join(PROMETHEUS_DIR, "prometheus.yml");
const RULES = join(PROMETHEUS_DIR, "understudy.rules.yml");
const RULES_TEST = join(PROMETHEUS_DIR, "understudy.rules.test.yml");
const HAPROXY_CFG = join(ROOT, "deploy", "haproxy", "haproxy.cfg");
const DASHBOARD = join(ROOT, "deploy", "grafana", "understudy-dashboard.json");
const METRICS_TS = join(ROOT, "src", "api", "metrics.ts");

const PROMTOOL = "/usr/bin/promtool";
const HAPROXY = "/usr/sbin/haproxy";

/** Run a tool (no shell); fail with a clear message when it is not installed. */
function run(bin: string, args: readonly string[], pkg: string): { code: number | null; out: string } {
  assert.ok(existsSync(bin), `${bin} is not installed: run scripts/install-deps.sh (Debian package ${pkg})`);
  const r = spawnSync(bin, args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Every metric name the agent exports, read from src/api/metrics.ts. */
function knownMetrics(): Set<string> {
  const text = readFileSync(METRICS_TS, "utf8");
  const names = new Set([...text.matchAll(/"(understudy_[a-z0-9_]+)"/g)].map((m) => m[1]!));
  const histograms = [...text.matchAll(/new Histogram\(\{\s*name:\s*"(understudy_[a-z0-9_]+)"/g)].map((m) => m[1]!);
  assert.ok(histograms.length >= 2, "found the histograms in src/api/metrics.ts");
  for (const h of histograms) for (const suffix of ["_bucket", "_sum", "_count"]) names.add(h + suffix);
  return names;
}

/** understudy_* names in a PromQL expression that the agent does not export (prom-client's default process metrics are allowed). */
function unknownMetrics(expr: string, known: Set<string>): string[] {
  return [...expr.matchAll(/\bunderstudy_[A-Za-z0-9_]+/g)].map((m) => m[0]).filter((name) => !known.has(name) && !/^understudy_(process|nodejs)_/.test(name));
}

// ------------------------------------------------------------ metric list

test("the metric list read from src/api/metrics.ts is complete", () => {
  const known = knownMetrics();
  for (const name of [
    "understudy_role",
    "understudy_leader_term",
    "understudy_probe_up",
    "understudy_tls_certificate_expiry_timestamp_seconds",
    "understudy_promotions_total",
    "understudy_promotion_duration_seconds_bucket",
    "understudy_sync_generation",
    "understudy_sync_pull_duration_seconds_count",
    "understudy_sync_generations_published_total",
  ])
    assert.ok(known.has(name), name);
  assert.deepEqual(unknownMetrics('sum(understudy_role{role="primary"}) + understudy_nodejs_heap_size_used_bytes', known), []);
  assert.deepEqual(unknownMetrics("understudy_rol + understudy_sync_lag", known), ["understudy_rol", "understudy_sync_lag"]);
});

// ------------------------------------------------------------ example configs

const exampleFiles = () =>
  readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
const example = (f: string): Config => parseConfigText(readFileSync(join(EXAMPLES, f), "utf8"), f);

test("every deploy/examples/*.yaml parses and validates (without host checks)", () => {
  const files = exampleFiles();
  for (const f of ["sftpgo-cluster.yaml", "openssh-internal-sftp.yaml", "proftpd-ftps.yaml", "sftpgo.yaml", "openssh-sftp.yaml", "proftpd.yaml"]) {
    assert.ok(files.includes(f), `${f} exists`);
  }
  for (const f of files) {
    const c = example(f);
    // Every program the agent runs is an absolute path: the agent runs argv lists without a shell or PATH lookup surprises.
    const argvs = [
      c.daemon.command,
      c.daemon.start,
      c.daemon.stop,
      c.daemon.status,
      c.daemon.check,
      c.hooks?.on_role_change,
      c.hooks?.pre_promote,
      c.hooks?.post_promote,
      c.hooks?.on_demote,
      c.hooks?.post_sync,
      ...(c.sync?.roots ?? []).flatMap((r) => [r.validate, r.post_sync]),
    ];
    for (const argv of argvs) if (argv) assert.match(argv[0]!, /^\//, `${f}: ${argv.join(" ")} names its program by absolute path`);
  }
});

test("the complete examples have sync, api, vip, failback and hooks, as their comments say", () => {
  for (const f of ["sftpgo-cluster.yaml", "openssh-internal-sftp.yaml", "proftpd-ftps.yaml"]) {
    const c = example(f);
    assert.ok(c.sync && c.sync.roots.length > 0, `${f}: sync`);
    assert.ok(c.api?.token_file, `${f}: api.token_file`);
    assert.equal(c.api?.auth_reads, false, `${f}: reads stay open for HAProxy and Prometheus`);
    assert.ok(c.vip, `${f}: vip`);
    assert.ok(c.hooks, `${f}: hooks`);
    assert.ok(c.failback, `${f}: failback`);
  }

  const sftpgo = example("sftpgo-cluster.yaml");
  assert.equal(sftpgo.daemon.backend, "systemd");
  assert.equal(sftpgo.daemon.unit, "sftpgo.service");
  assert.equal(sftpgo.daemon.mode, "warm");
  assert.ok(
    sftpgo.probes.some((p) => p.type === "sftp" && p.critical && p.port === 2022),
    'sftpgo.probes.some((p) => p.type === "sftp" && p.critical && p.port === 2022)',
  );
  assert.ok(
    sftpgo.probes.some((p) => p.type === "http" && p.url !== undefined && new URL(p.url).pathname === "/healthz"),
    'sftpgo.probes.some((p) => p.type === "http" && p.url !== undefined && new URL(p.url).pathname ===...',
  );
  const sftpgoConfig = sftpgo.sync!.roots.find((r) => r.path === "/etc/sftpgo");
  assert.ok(
    sftpgoConfig?.validate?.some((a) => a.includes("{staged}/sftpgo.json")),
    "sftpgo.json is checked before it goes live",
  );
  const hostKeys = sftpgo.sync!.roots.find((r) => r.path === "/var/lib/sftpgo");
  assert.deepEqual(hostKeys?.include, ["id_*"], "only the host keys of /var/lib/sftpgo, never sftpgo.db");

  const openssh = example("openssh-internal-sftp.yaml");
  assert.equal(openssh.daemon.mode, "cold");
  assert.equal(openssh.daemon.unit, "ssh-sftp.service");
  const ssh = openssh.sync!.roots.find((r) => r.path === "/etc/ssh");
  assert.ok(ssh, "syncs /etc/ssh");
  assert.equal(ssh.max_mode, 0o644);
  assert.ok(ssh.include.includes("sshd_config_sftp"), 'ssh.include.includes("sshd_config_sftp")');
  assert.ok(!ssh.include.some((g) => g.startsWith("ssh_host_")), "never syncs the admin sshd's own host keys (the sync logs in through it)");
  // Through understudy-staged-check, so it passes on a fresh standby (test/unit/deploy/staged-check.test.ts runs it).
  assert.deepEqual(ssh.validate, ["/usr/lib/understudy/bin/understudy-staged-check", "{staged}/sshd_config_sftp", "/etc/ssh={staged}", "--", "/usr/sbin/sshd", "-t", "-f", "{config}"]);
  assert.equal(openssh.failback.policy, "auto");

  const proftpd = example("proftpd-ftps.yaml");
  assert.equal(proftpd.daemon.unit, "proftpd.service");
  assert.equal(proftpd.daemon.mode, "cold");
  const days14 = 14 * 86_400_000;
  assert.ok(
    proftpd.probes.some((p) => p.type === "ftps" && p.port === 21 && p.cert_warning === days14),
    'proftpd.probes.some((p) => p.type === "ftps" && p.port === 21 && p.cert_warning === days14)',
  );
  assert.ok(
    proftpd.probes.some((p) => p.type === "tls_file" && p.cert_warning === days14 && !p.critical),
    'proftpd.probes.some((p) => p.type === "tls_file" && p.cert_warning === days14 && !p.critical)',
  );
  const conf = proftpd.sync!.roots.find((r) => r.path === "/etc/proftpd");
  assert.deepEqual(conf?.validate, [
    "/usr/lib/understudy/bin/understudy-staged-check",
    "{staged}/proftpd.conf",
    "/etc/proftpd={staged}",
    "/etc/proftpd-users={staged:proftpd-users}",
    "/etc/ssl/proftpd={staged:proftpd-tls}",
    "--",
    "/usr/sbin/proftpd",
    "-t",
    "-c",
    "{config}",
  ]);
  const tls = proftpd.sync!.roots.find((r) => r.name === "proftpd-tls");
  assert.equal(tls?.max_mode, 0o644);
});

// ------------------------------------------------------------ Prometheus

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (): Rule[] => (parse(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

const REQUIRED_ALERTS = [
  "UnderstudyNoPrimary",
  "UnderstudyTwoPrimaries",
  "UnderstudySyncLagging",
  "UnderstudySyncFailing",
  "UnderstudyStalePromotion",
  "UnderstudyCertificateExpiringSoon",
  "UnderstudyDiskNearlyFull",
  "UnderstudyFenced",
  "UnderstudyEtcdUnreachable",
  "UnderstudyAgentDown",
  "UnderstudyVipMismatch",
];

test("promtool check rules accepts the alert rules", () => {
  const r = run(PROMTOOL, ["check", "rules", RULES], "prometheus");
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});

test("every alert has a severity, a summary, a description and the runbook, and uses only exported metrics", () => {
  const known = knownMetrics();
  const all = rules();
  const names = all.map((r) => r.alert);
  for (const a of REQUIRED_ALERTS) assert.ok(names.includes(a), `${a} is defined`);
  assert.equal(new Set(names).size, names.length, "alert names are unique");
  for (const r of all) {
    assert.ok(r.alert, "only alerting rules");
    assert.ok(["critical", "warning"].includes(r.labels?.severity ?? ""), `${r.alert}: severity`);
    assert.ok(r.annotations?.summary, `${r.alert}: summary`);
    assert.ok(r.annotations?.description, `${r.alert}: description`);
    assert.match(r.annotations?.runbook_url ?? "", /^docs\/operations\.md#troubleshooting/, `${r.alert}: runbook_url`);
    assert.deepEqual(unknownMetrics(r.expr, known), [], `${r.alert}: ${r.expr}`);
  }
});

test("promtool test rules passes, with a firing and a quiet case for every alert", () => {
  const r = run(PROMTOOL, ["test", "rules", RULES_TEST], "prometheus");
  assert.equal(r.code, 0, r.out);

  type AlertTest = { alertname: string; exp_alerts?: unknown[] };
  const doc = parse(readFileSync(RULES_TEST, "utf8"), { maxAliasCount: -1 }) as { tests: { alert_rule_test?: AlertTest[] }[] };
  const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const r of rules()) {
    const mine = cases.filter((c) => c.alertname === r.alert);
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${r.alert}: a test where it fires`,
    );
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${r.alert}: a test where it does not fire`,
    );
  }
});

test("promtool check config accepts prometheus.yml and finds the rules next to it", () => {
  const r = run(PROMTOOL, ["check", "config", PROMETHEUS_YML], "prometheus");
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /1 rule files found/);

  type Scrape = { job_name: string; scrape_interval?: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] };
  const cfg = parse(readFileSync(PROMETHEUS_YML, "utf8")) as { rule_files: string[]; scrape_configs: Scrape[] };
  for (const f of cfg.rule_files) assert.ok(existsSync(join(dirname(PROMETHEUS_YML), f)), `rule file ${f} is next to prometheus.yml`);
  const job = cfg.scrape_configs.find((s) => s.job_name === "understudy");
  assert.ok(job, 'a job named understudy (the rules match job="understudy")');
  assert.equal(job.scrape_interval, "5s");
  const targets = job.static_configs.flatMap((s) => s.targets);
  assert.equal(targets.length, 3);
  for (const t of targets) assert.match(t, /:8470$/);
  for (const s of job.static_configs) assert.ok(s.labels?.cluster && s.labels.node, "targets carry cluster and node, so `up` names them");
});

// ------------------------------------------------------------ HAProxy

test("haproxy -c accepts haproxy.cfg; every server is checked with GET /primary on the agent's port", () => {
  const r = run(HAPROXY, ["-c", "-f", HAPROXY_CFG], "haproxy");
  assert.equal(r.code, 0, r.out);

  const text = readFileSync(HAPROXY_CFG, "utf8");
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const backends = text.split(/^backend /m).slice(1);
  assert.ok(backends.length >= 1, "backends.length >= 1");
  for (const b of backends) {
    const name = b.split("\n")[0];
    assert.match(b, /^\s*option httpchk\b/m, `${name}: option httpchk`);
    assert.match(b, /^\s*(http-check send meth GET uri \/primary|option httpchk GET \/primary)\b/m, `${name}: GET /primary`);
    assert.match(b, /^\s*http-check expect status 200\s*$/m, `${name}: expects 200`);
    const servers = b.split("\n").filter((l) => /^\s*server /.test(l));
    assert.equal(servers.length, 3, `${name}: three nodes`);
    for (const s of servers) assert.match(s, /\bcheck port 8470\b/, s);
  }
  assert.ok(
    lines.some((l) => l.startsWith("default-server") && l.includes("on-marked-down shutdown-sessions")),
    "sessions to a demoted node are closed",
  );
  assert.ok(
    lines.some((l) => /^bind .*:22$/.test(l) || /^bind .*:2022$/.test(l)),
    "an SFTP frontend",
  );
});

// ------------------------------------------------------------ Grafana

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every string under one of `keys`, anywhere in the document. */
function stringsUnder(doc: Json, keys: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (keys.includes(k) && typeof x === "string") out.push(x);
        else walk(x);
      }
    }
  };
  walk(doc);
  return out;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string }[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  __inputs: { name: string; type: string; pluginId: string }[];
  templating: { list: { name: string; type: string; query: Json }[] };
}

test("the Grafana dashboard is valid JSON, uses ${DS_PROMETHEUS} and $cluster, and names only exported metrics", () => {
  const doc = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Json;
  const d = doc as unknown as Dashboard;
  assert.ok(d.schemaVersion >= 36 && d.schemaVersion <= 41, `schemaVersion ${d.schemaVersion}`);
  assert.ok(d.uid && d.title, "d.uid && d.title");
  assert.ok(
    d.__inputs.some((i) => i.name === "DS_PROMETHEUS" && i.type === "datasource" && i.pluginId === "prometheus"),
    'd.__inputs.some((i) => i.name === "DS_PROMETHEUS" && i.type === "datasource" && i.pluginId === "p...',
  );
  const vars = d.templating.list.map((v) => v.name);
  assert.ok(vars.includes("cluster"), "template variable cluster");
  assert.ok(vars.includes("DS_PROMETHEUS"), "data source variable (provisioned dashboards have no import step)");

  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  const cells = new Set<string>();
  for (const p of d.panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the 24-column grid`);
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        assert.ok(!cells.has(`${x},${y}`), `${p.title}: overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
    }
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", `${p.title}: data source`);
    assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const t of p.targets ?? []) assert.match(t.expr, /cluster="\$cluster"/, `${p.title}: filters by $cluster: ${t.expr}`);
  }

  const known = knownMetrics();
  const exprs = stringsUnder(doc, ["expr"]);
  assert.ok(exprs.length >= 20, `${exprs.length} expressions`);
  const queries = [...exprs, ...stringsUnder(doc, ["definition"])];
  for (const e of queries) assert.deepEqual(unknownMetrics(e, known), [], e);
  for (const m of [
    "understudy_role",
    "understudy_leader_term",
    "understudy_lease_remaining_seconds",
    "understudy_promotions_total",
    "understudy_last_failover_duration_seconds",
    "understudy_promotion_duration_seconds_bucket",
    "understudy_vip_held",
    "understudy_etcd_reachable",
    "understudy_probe_up",
    "understudy_sync_generation",
    "understudy_sync_published_generation",
    "understudy_sync_lag_seconds",
    "understudy_sync_pulls_total",
    "understudy_sync_pull_duration_seconds_bucket",
    "understudy_sync_rescues_total",
    "understudy_stale_promotions_total",
    "understudy_fence_events_total",
    "understudy_tls_certificate_expiry_timestamp_seconds",
    "understudy_disk_free_bytes",
  ])
    assert.ok(
      exprs.some((e) => new RegExp(`\\b${m}\\b`).test(e)),
      `a panel shows ${m}`,
    );
});

test("every dashboard query is valid PromQL (promtool parses it as a recording rule)", () => {
  const doc = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Json;
  // Grafana's variables, replaced by values Prometheus would see.
  const concrete = (e: string) => e.replaceAll("$__rate_interval", "1m").replaceAll("$__range", "6h").replaceAll("$cluster", "sftp-prod").replaceAll("$node", ".*");
  const exprs = stringsUnder(doc, ["expr"]).map(concrete);
  const dir = mkdtempSync(join(tmpdir(), "us-dashboard-"));
  try {
    const file = join(dir, "dashboard.rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }));
    const r = run(PROMTOOL, ["check", "rules", file], "prometheus");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
