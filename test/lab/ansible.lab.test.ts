/**
 * ansible/ end to end: the real `ansible-playbook` (Debian's ansible-core)
 * runs ansible/site.yml from the client namespace over SSH against the three
 * node namespaces, each running an sshd for Ansible (port 2200, host key
 * pinned by lab.knownHosts, StrictHostKeyChecking yes). The role installs the
 * .deb (ansible/build-package.sh, i.e. scripts/build-deb.sh) with apt-get,
 * with its own Node.js, and runs the installed /usr/bin/understudy; it writes the config
 * from inventory variables (validated by `understudy config check`), generates
 * and distributes the API token and the sync key (forced read-only rsync,
 * pinned known_hosts), and starts the agents with start-stop-daemon (there is
 * no systemd here), n1 first. Every node has a data root (docs/data.md), which
 * the role creates. Then: n1 is primary and serves SFTP through the VIP, its
 * sync root and a partner's file in its data root reach the standbys, a
 * second run changes nothing on any node, n1's agent
 * is SIGKILLed and n2 takes over, and a third run with a changed config starts
 * n1's agent and restarts the others one at a time. The agents reach the
 * lab's etcd over TLS with a client certificate and as the least-privilege
 * etcd user (the role copies the CA, certificate, key and password). Plus
 * `ansible-lint` on ansible/, and the etcd play on its own (managed etcd
 * members with client and peer TLS, auth turned on by the play; refusals
 * checked, and agents elect a leader on it). Needs root, `npm run build`,
 * and the Debian packages ansible and ansible-lint.
 *
 * The namespaces share one file system, so every path the role writes is set
 * per host in the inventory (under the node's lab dir); the package is
 * installed once for all three (the other hosts find it installed). The nodes
 * reach no package registry: the .deb carries Node.js and node_modules, and
 * its Depends: are installed. The machine's package state is restored after
 * (test/lab/deb-state.ts).
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, Lab, NODE_FLAGS, REPO, agentLoadMs, pollUntil, run, runOk, type LabNode } from "./harness/index.js";
import { LabPki } from "./harness/pki.js";
import { installedVersion, rememberDeb, saveDebState } from "./deb-state.js";

const ANSIBLE_DIR = join(REPO, "ansible");
const ANSIBLE_SSH_PORT = 2200;
const PRIORITIES = [300, 200, 100];
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;

interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
  /** The tasks that reported "changed" on this host, in order (the default callback's TASK headers). */
  changedTasks: string[];
}

/** The PLAY RECAP lines of an ansible-playbook run, by host. */
function parseRecap(out: string): Map<string, Recap> {
  const recap = new Map<string, Recap>();
  const at = out.lastIndexOf("PLAY RECAP");
  for (const m of out.slice(Math.max(0, at)).matchAll(/^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)) {
    recap.set(m[1]!, { ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]), changedTasks: [] });
  }
  let task = "";
  for (const line of out.slice(0, Math.max(0, at)).split("\n")) {
    const header = /^TASK \[(.+)\] \**$/.exec(line);
    if (header) task = header[1]!;
    const changed = /^changed: \[([^\]\s]+)/.exec(line);
    const tasks = changed ? recap.get(changed[1]!)?.changedTasks : undefined;
    if (tasks && tasks.at(-1) !== task) tasks.push(task);
  }
  return recap;
}

function requireTool(bin: string, pkg: string): void {
  assert.ok(existsSync(bin), `${bin} is not installed: apt-get install -y ${pkg} (scripts/install-deps.sh)`);
}

/** ssh options for Ansible: the lab client key, host keys pinned by lab.knownHosts, no ~/.ssh/config. */
function sshVars(lab: Lab): Record<string, unknown> {
  return {
    ansible_user: "root",
    ansible_port: ANSIBLE_SSH_PORT,
    ansible_ssh_private_key_file: lab.clientKey,
    ansible_ssh_common_args: `-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=${lab.knownHosts} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ConnectTimeout=5`,
    ansible_python_interpreter: "/usr/bin/python3",
  };
}

/**
 * The node's admin sshd on ANSIBLE_SSH_PORT, for Ansible (and for the sync
 * key's forced command): root's authorized_keys are the lab client's file
 * plus `extraAuthorizedKeys` (the file the role manages).
 */
async function startAdminSshd(lab: Lab, n: LabNode, extraAuthorizedKeys?: string): Promise<void> {
  await lab.startSshd(n, {
    port: ANSIBLE_SSH_PORT,
    configFile: join(n.dir, "admin_sshd_config"),
    hostKeyDir: join(n.dir, "admin-hostkey"),
    authorizedKeysFile: [join(lab.dir, "client", "authorized_keys"), ...(extraAuthorizedKeys ? [extraAuthorizedKeys] : [])].join(" "),
    // Root's login shell then skips ~/.bashrc (pyenv on a dev box: +200 ms per task).
    extraConfig: ["SetEnv SHLVL=1"],
  });
}

/** Runs ansible/site.yml with `inventory` from the client namespace; asserts success and returns the recap. */
function playbookRunner(lab: Lab, inventory: unknown, diagnostic: (msg: string) => void) {
  const inventoryFile = join(lab.dir, "inventory.yml");
  /** (Re)writes the inventory file from `inventory` (JSON is YAML). */
  const writeInventory = () => writeFileSync(inventoryFile, `${JSON.stringify(inventory, null, 2)}\n`);
  writeInventory();
  mkdirSync(join(lab.dir, "ansible-cp"), { recursive: true, mode: 0o700 });
  let runs = 0;
  const run = async (timeoutMs: number, hosts: readonly string[]) => {
    const r = await lab.exec(lab.client, ["ansible-playbook", "-i", inventoryFile, join(ANSIBLE_DIR, "site.yml")], {
      timeoutMs,
      env: {
        ANSIBLE_CONFIG: join(ANSIBLE_DIR, "ansible.cfg"),
        ANSIBLE_SSH_CONTROL_PATH_DIR: join(lab.dir, "ansible-cp"),
        ANSIBLE_LOCAL_TEMP: join(lab.dir, "ansible-local"),
        ANSIBLE_NOCOLOR: "1",
        ANSIBLE_FORCE_COLOR: "0",
      },
    });
    writeFileSync(join(lab.logDir, `ansible-run-${++runs}.log`), `${r.stdout}\n--- stderr\n${r.stderr}`);
    const recap = parseRecap(r.stdout);
    const why = `ansible-playbook run ${runs}: exit ${r.code}${r.timedOut ? " (timed out)" : ""}\n${r.stdout.slice(-6000)}\n${r.stderr.slice(-3000)}`;
    assert.equal(r.code, 0, why);
    for (const h of hosts) {
      const v = recap.get(h);
      assert.ok(v, `${h} in the PLAY RECAP\n${why}`);
      assert.equal(v.failed + v.unreachable, 0, `${h}: no failed or unreachable task\n${why}`);
    }
    diagnostic(`run ${runs}: ${Math.round(r.ms / 100) / 10} s; ${[...recap].map(([h, v]) => `${h} changed=${v.changed}`).join(", ")}`);
    return recap;
  };
  return { run, writeInventory };
}

test("ansible-lint passes on ansible/", { timeout: 120_000 }, async () => {
  requireTool("/usr/bin/ansible-lint", "ansible-lint");
  const r = await run(["ansible-lint", "--nocolor"], { cwd: ANSIBLE_DIR, timeoutMs: 110_000, env: { NO_COLOR: "1" } });
  assert.equal(r.code, 0, `ansible-lint failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
});

test("ansible-playbook brings up a working 3-node cluster, idempotently, fails over, and rolls out a change", { timeout: 4_200_000 }, async (t) => {
  requireTool("/usr/bin/ansible-playbook", "ansible");
  assert.ok(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`);
  const state = saveDebState();
  if (state.skip) {
    t.skip(state.skip);
    return;
  }
  const t0 = performance.now();
  const lab = await Lab.create({ nodes: 3, etcdTuned: true }).catch((e: unknown) => {
    state.restore();
    throw e;
  });
  const mark = (what: string) => t.diagnostic(`${what} at +${((performance.now() - t0) / 1000).toFixed(1)} s`);
  try {
    // ---------------------------------------------------------------- release
    const pkgDir = join(lab.dir, "pkg");
    const built = await runOk([join(ANSIBLE_DIR, "build-package.sh"), pkgDir], {
      env: { UNDERSTUDY_SKIP_BUILD: "1" },
      timeoutMs: 600_000,
    });
    const deb = built.stdout.trim().split("\n").pop()!;
    assert.match(deb, /\/understudy_[^/]+_amd64\.deb$/);
    assert.ok(existsSync(deb), `build-package.sh made ${deb}`);
    // package.lab, later in the same run, upgrades to this very .deb: it need not build it again.
    rememberDeb(deb, VERSION);
    mark(".deb built");

    // ----------------------------------------------------------- node hosts
    const paths = (n: LabNode) => ({
      etc: join(n.dir, "etc"),
      state: join(n.dir, "state"),
      run: join(n.dir, "run"),
      app: join(n.dir, "app"),
      rootSsh: join(n.dir, "root-ssh"),
      adminHostKeys: join(n.dir, "admin-hostkey"),
      // A data root the role must create (docs/data.md): missing before the first run.
      uploads: join(n.dir, "srv-sftp"),
    });
    const hosts: Record<string, Record<string, unknown>> = {};
    // The nodes' admin sshds, for Ansible and for the sync key (its forced command): all three at once.
    await Promise.all(lab.nodes.map((n) => startAdminSshd(lab, n, join(paths(n).rootSsh, "authorized_keys"))));
    for (const [i, n] of lab.nodes.entries()) {
      const p = paths(n);
      // The transfer daemon (what clients reach through the VIP): <node dir>/sshd_config on :22.
      const daemon = lab.sshdConfig(n);
      mkdirSync(p.app, { recursive: true });
      hosts[n.name] = {
        ansible_host: n.address,
        understudy_node_priority: PRIORITIES[i],
        understudy_deb_dir: join(n.dir, "deb"),
        understudy_config_dir: p.etc,
        understudy_state_dir: p.state,
        understudy_run_dir: p.run,
        understudy_log_file: join(lab.logDir, `${n.name}-agent.log`),
        understudy_daemon: { backend: "process", mode: "cold", command: daemon, stop_timeout: "3s" },
        understudy_sync_roots: [{ name: "app", path: p.app }],
        understudy_data_roots: [{ name: "uploads", path: p.uploads }],
        understudy_sync_authorized_keys_file: join(p.rootSsh, "authorized_keys"),
        understudy_sync_host_key_file: join(p.adminHostKeys, "ssh_host_ed25519_key.pub"),
      };
    }
    const [n1, n2, n3] = lab.nodes as [LabNode, LabNode, LabNode];
    writeFileSync(join(paths(n1).app, "motd.txt"), `published by n1 (${lab.prefix})\n`);

    // etcd over TLS + auth: the lab's CA and client certificate (the operator's PKI), and the password
    // of the etcd user made for the lab cluster, put where the role looks for it on the controller.
    const etcd = lab.etcdCredentials!;
    const secrets = join(lab.dir, "secrets");
    mkdirSync(secrets, { recursive: true, mode: 0o700 });
    copyFileSync(etcd.passwordFile, join(secrets, "etcd-password"));
    const inventory = {
      all: {
        vars: {
          ...sshVars(lab),
          understudy_cluster: "lab",
          understudy_service_manager: "start-stop-daemon",
          understudy_deb: deb,
          understudy_secrets_dir: secrets,
          understudy_etcd_manage: false,
          understudy_etcd_endpoints: lab.etcdEndpoint.split(","),
          understudy_etcd_ca_file: etcd.ca,
          understudy_etcd_client_cert_file: etcd.cert,
          understudy_etcd_client_key_file: etcd.key,
          understudy_etcd_auth_user: etcd.user,
          understudy_etcd_options: { request_timeout: "1s" },
          understudy_election: { ttl: "2s", fence_margin: "500ms", ranking_delay: "300ms" },
          understudy_vip_address: lab.vip,
          understudy_vip_interface: "eth0",
          understudy_probes: [{ name: "sftp", type: "ssh", host: "127.0.0.1", port: 22, interval: "1s", timeout: "500ms", fall: 2 }],
          understudy_sync_ssh_port: ANSIBLE_SSH_PORT,
          understudy_sync_connect_timeout: "2s",
          understudy_sync_extra: { reconcile_interval: "5s", retry_max: "1s" },
          understudy_log_level: "info",
        },
        children: { understudy: { hosts } },
      },
    };
    const { run: playbook, writeInventory } = playbookRunner(lab, inventory, (m) => t.diagnostic(m));
    const names = lab.nodes.map((n) => n.name);

    const leader = async (): Promise<string | undefined> => {
      const r = await lab.etcdctl(["get", "/understudy/lab/leader", "-w", "json"], { timeoutMs: 3000 });
      if (r.code !== 0) return undefined;
      const kv = (JSON.parse(r.stdout) as { kvs?: { value: string }[] }).kvs?.[0];
      return kv ? (JSON.parse(Buffer.from(kv.value, "base64").toString()) as { node: string }).node : undefined;
    };
    const serving = (node: string, timeoutMs: number) =>
      pollUntil(async () => ((await lab.vipConfiguredOn()).includes(node) && (await lab.sshHandshake("vip", { timeoutMs: 3000 })).ok ? true : undefined), { timeoutMs, intervalMs: 100 }).then(Boolean);
    const agentPid = (n: LabNode): number | undefined => {
      const file = join(paths(n).run, "understudy.pid");
      if (!existsSync(file)) return undefined;
      const pid = Number(readFileSync(file, "utf8").trim());
      try {
        process.kill(pid, 0);
        return pid;
      } catch {
        return undefined;
      }
    };

    // ------------------------------------------------------------- first run
    // The first run also installs the .deb (a 143 MB unpack): more time than the npm tarball took.
    // Bounds against a hang only: with a load average of 20-29 on 2 cores the first run took
    // over 10 min (one task: 1-25 s), the etcd-only runs 2-4 min.
    const first = await playbook(1_500_000, names);
    mark("first run done");
    for (const n of lab.nodes) assert.ok(first.get(n.name)!.changed > 0, `first run changed something on ${n.name}`);
    assert.ok(installedVersion(), "the role installed the .deb");
    for (const n of lab.nodes) {
      const pid = agentPid(n);
      assert.ok(pid, `${n.name}: start-stop-daemon's agent is running`);
      assert.equal(readlinkSync(`/proc/${pid}/exe`), "/usr/lib/understudy/node/bin/node", `${n.name}: the agent runs on the package's Node.js`);
    }
    assert.equal(await leader(), n1.name, "n1, started first, is the first primary");
    assert.ok(await serving(n1.name, 10_000), "n1 holds the VIP and SFTP works through it");
    const token = readFileSync(join(secrets, "api-token"), "utf8");
    for (const n of lab.nodes) {
      assert.equal(readFileSync(join(paths(n).etc, "api-token"), "utf8"), token, `${n.name} has the cluster's API token`);
    }
    const authorized = readFileSync(join(paths(n2).rootSsh, "authorized_keys"), "utf8");
    assert.match(authorized, /^restrict,from="[^"]+",command="\/usr\/bin\/rsync --server --daemon --config=\S+ \." ssh-ed25519 /m, "the sync key is forced to the read-only rsync daemon");
    const motd = readFileSync(join(paths(n1).app, "motd.txt"), "utf8");
    const synced = await pollUntil(() => ([n2, n3].every((n) => existsSync(join(paths(n).app, "motd.txt")) && readFileSync(join(paths(n).app, "motd.txt"), "utf8") === motd) ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    assert.ok(synced, "n1's sync root reached n2 and n3 over the sync key (pinned host keys, forced rsync)");
    // A partner's upload into the primary's data root reaches both standbys with its bytes, mode and
    // owner (the standbys' rsync daemon modules, added by their agents to the role's sync.serve_config).
    const loadMs = await agentLoadMs();
    const upload = join("alice", "in", "report.csv");
    const bytes = Buffer.from(`id,amount\n1,42\n${lab.prefix}\n`);
    mkdirSync(join(paths(n1).uploads, "alice", "in"), { recursive: true, mode: 0o750 });
    writeFileSync(join(paths(n1).uploads, upload), bytes, { mode: 0o640 });
    chmodSync(join(paths(n1).uploads, upload), 0o640);
    chownSync(join(paths(n1).uploads, upload), 4242, 4243);
    const tu = performance.now();
    const shipped = await pollUntil(
      () =>
        [n2, n3].every((n) => {
          const f = join(paths(n).uploads, upload);
          if (!existsSync(f)) return false;
          const st = statSync(f);
          return (st.mode & 0o7777) === 0o640 && st.uid === 4242 && st.gid === 4243 && readFileSync(f).equals(bytes);
        })
          ? true
          : undefined,
      { timeoutMs: Math.max(10_000, 15 * loadMs), intervalMs: 100 },
    );
    assert.ok(shipped, `n1's upload reached n2 and n3 with the same bytes, mode 0640 and owner 4242:4243 (agent load ${Math.round(loadMs)} ms)`);
    t.diagnostic(`data: an upload on n1 on both standbys after ${Math.round(performance.now() - tu)} ms (agent load ${Math.round(loadMs)} ms)`);
    const config = readFileSync(join(paths(n1).etc, "understudy.yaml"), "utf8");
    assert.match(config, /^ {2}tls:\n {4}ca: \S+etcd-ca\.pem\n {4}cert: \S+etcd-client\.pem\n {4}key: \S+etcd-client\.key$/m, "the role wrote etcd.tls");
    assert.match(config, new RegExp(`^ {2}auth:\\n {4}user: ${etcd.user}\\n {4}password_file: \\S+etcd-password$`, "m"), "the role wrote etcd.auth");
    assert.match(config, /^ {2}- https:\/\//m, "https endpoints");
    for (const f of ["etcd-client.key", "etcd-password"]) {
      const mode = statSync(join(paths(n1).etc, f)).mode & 0o777;
      assert.equal(mode, 0o640, `${f} is 0640 root:<agent group>`);
    }
    // Data roots: created by the role (they did not exist), root-owned, with rsync's temp dir 0700, in the config.
    assert.ok(existsSync("/usr/bin/inotifywait"), "inotify-tools is installed");
    for (const n of lab.nodes) {
      const root = statSync(paths(n).uploads);
      assert.ok(root.isDirectory() && root.uid === 0 && (root.mode & 0o777) === 0o755, `${n.name}: data root created root:root 0755`);
      const tmp = statSync(join(paths(n).uploads, ".understudy-tmp"));
      assert.equal(tmp.mode & 0o777, 0o700, `${n.name}: .understudy-tmp is 0700`);
      assert.match(
        readFileSync(join(paths(n).etc, "understudy.yaml"), "utf8"),
        new RegExp(`^data:\n {2}roots:\n {2}- name: uploads\n {4}path: ${paths(n).uploads.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"),
        `${n.name}: data section`,
      );
    }
    const status = await lab.exec(lab.client, [process.execPath, CLI, "status", "--config", join(paths(n1).etc, "understudy.yaml"), "--json"], { timeoutMs: 15_000 });
    assert.equal(status.code, 0, `status over TLS + auth with n1's config: ${status.stdout}${status.stderr}`);
    mark("cluster checked");

    // ------------------------------------------------------------ second run
    const second = await playbook(900_000, names);
    mark("second run done");
    // Every node at once, naming what changed (a node following a primary must not lose its data write modules).
    assert.deepEqual(
      names.map((n) => second.get(n)!.changed),
      [0, 0, 0],
      `second run: changed=0 on every node; changed: ${names.map((n) => `${n}: ${second.get(n)!.changedTasks.join("; ") || "-"}`).join(" | ")}`,
    );
    assert.equal(await leader(), n1.name, "the second run left the primary alone");

    // -------------------------------------------------------------- failover
    const pid = agentPid(n1)!;
    process.kill(pid, "SIGKILL");
    const tk = performance.now();
    const next = await pollUntil(
      async () => {
        const l = await leader();
        return l && l !== n1.name ? l : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    assert.equal(next, n2.name, "n2 (priority 200) took over after n1 agent was killed");
    assert.ok(await serving(n2.name, Math.max(1000, 15_000 - (performance.now() - tk))), "n2 serves SFTP through the VIP within 15 s");
    t.diagnostic(`failover: n2 serving through the VIP ${Math.round(performance.now() - tk)} ms after the SIGKILL`);
    const sftp = await lab.sftpLogin("vip");
    assert.ok(sftp.ok, `real SFTP upload through the VIP: ${sftp.stderr}`);

    // ------------------------- third run: repairs n1, rolls out a config change
    // n1's agent is dead, and every node gets a new config (log level): n1 is
    // started, n2 (the primary) and n3 are restarted one at a time, SIGTERM
    // handing the primary role over.
    const before = new Map(lab.nodes.map((n) => [n.name, agentPid(n)]));
    inventory.all.vars.understudy_log_level = "debug";
    writeInventory();
    const third = await playbook(900_000, names);
    mark("third run done");
    for (const n of lab.nodes) {
      assert.match(readFileSync(join(paths(n).etc, "understudy.yaml"), "utf8"), /^ {2}level: debug$/m, `${n.name} has the new config`);
      const pid = agentPid(n);
      assert.ok(pid, `${n.name}: an agent runs after the third run`);
      assert.notEqual(pid, before.get(n.name), `${n.name}: the agent was (re)started with the new config`);
    }
    // config, start, stamp on n1; config, stop, start, stamp on n2 and n3
    assert.deepEqual(
      names.map((n) => third.get(n)!.changed),
      [3, 4, 4],
      `third run: only what the config change and the dead agent need; changed: ${names.map((n) => `${n}: ${third.get(n)!.changedTasks.join("; ")}`).join(" | ")}`,
    );
    const last = await leader();
    assert.ok(last, "the cluster has a primary after the rolling restart");
    assert.ok(await serving(last, 15_000), `${last} serves SFTP through the VIP after the rolling restart`);
  } finally {
    for (const n of lab.nodes) await lab.killAllIn(n.ns).catch(() => 0);
    await lab.teardown();
    state.restore();
    t.diagnostic(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
});

test("managed etcd: the etcd play builds a 3-member cluster with client and peer TLS and auth, idempotently; agents elect on it", { timeout: 900_000 }, async (t) => {
  requireTool("/usr/bin/ansible-playbook", "ansible");
  assert.ok(existsSync(CLI), `${CLI} is missing: run \`npm run build\` first`);
  const t0 = performance.now();
  // No lab etcd: the role installs and starts the members (start-stop-daemon, no systemd here).
  const lab = await Lab.create({ nodes: 3, startEtcd: false });
  try {
    // The operator's PKI, here a throw-away one: a CA, a certificate per member (server and
    // peer, clientAuth too) listing its address, and a client certificate for the agents.
    const pkiDir = join(lab.dir, "managed-pki");
    mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
    const pki = await LabPki.create(pkiDir, "managed");
    const client = await pki.issue("understudy-agents", { usage: "client" });
    const secrets = join(lab.dir, "secrets");
    const hosts: Record<string, Record<string, unknown>> = {};
    await Promise.all(lab.nodes.map((n) => startAdminSshd(lab, n)));
    for (const n of lab.nodes) {
      const member = await pki.issue(`etcd-${n.name}`, { sans: [`IP:${n.address}`, "IP:127.0.0.1"], usage: "both" });
      hosts[n.name] = {
        ansible_host: n.address,
        understudy_etcd_config_file: join(n.dir, "etcd", "etcd.yml"),
        understudy_etcd_data_dir: join(n.dir, "etcd", "data"),
        understudy_etcd_pidfile: join(n.dir, "etcd", "etcd.pid"),
        understudy_etcd_pki_dir: join(n.dir, "etcd", "pki"),
        understudy_etcd_log_file: join(lab.logDir, `${n.name}-etcd.log`),
        understudy_etcd_server_cert_file: member.cert,
        understudy_etcd_server_key_file: member.key,
      };
    }
    const inventory = {
      all: {
        vars: {
          ...sshVars(lab),
          understudy_cluster: "lab",
          understudy_service_manager: "start-stop-daemon",
          understudy_etcd_manage: true,
          understudy_secrets_dir: secrets,
          understudy_etcd_ca_file: pki.ca.cert,
        },
        // Only the etcd play of site.yml has hosts in this inventory.
        children: { understudy_etcd: { hosts } },
      },
    };
    const { run: playbook } = playbookRunner(lab, inventory, (m) => t.diagnostic(m));
    const names = lab.nodes.map((n) => n.name);
    const url = (n: LabNode, scheme = "https") => `${scheme}://${n.address}:2379`;
    const endpoints = lab.nodes.map((n) => url(n)).join(",");
    const rootPassword = () => readFileSync(join(secrets, "etcd-root-password"), "utf8").trim();
    const agentPassword = () => readFileSync(join(secrets, "etcd-password"), "utf8").trim();
    /** etcdctl from the client namespace; `cert` false: no client certificate; `user` sent in ETCDCTL_USER. */
    const ctl = (args: string[], o: { endpoints?: string; cert?: boolean; ca?: boolean; user?: string } = {}) =>
      lab.exec(
        lab.client,
        [
          "etcdctl",
          `--endpoints=${o.endpoints ?? endpoints}`,
          "--dial-timeout=2s",
          "--command-timeout=3s",
          ...(o.ca === false ? [] : [`--cacert=${pki.ca.cert}`]),
          ...(o.cert === false ? [] : [`--cert=${client.cert}`, `--key=${client.key}`]),
          ...args,
        ],
        { timeoutMs: 15_000, env: { ETCDCTL_API: "3", ...(o.user ? { ETCDCTL_USER: o.user } : {}) } },
      );
    const root = () => `root:${rootPassword()}`;

    // Bounds against a hang only: a run took 120-235 s with a load average of 20-29 on 2 cores.
    const first = await playbook(400_000, names);
    for (const n of names) assert.ok(first.get(n)!.changed > 0, `first run changed something on ${n}`);
    const health = await ctl(["endpoint", "health"]);
    assert.equal(health.code, 0, `all three members healthy over TLS: ${health.stdout}${health.stderr}`);
    const members = await ctl(["member", "list", "-w", "json"], { user: root() });
    assert.equal(members.code, 0, members.stderr);
    const list = (JSON.parse(members.stdout) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }).members;
    assert.deepEqual(list.map((m) => m.name).sort(), names, "one cluster of the three inventory hosts");
    for (const m of list) {
      assert.ok(
        m.peerURLs.every((u) => u.startsWith("https://")),
        `${m.name}: peers over TLS (${m.peerURLs.join(",")})`,
      );
      assert.ok(
        m.clientURLs.every((u) => u.startsWith("https://")),
        `${m.name}: clients over TLS (${m.clientURLs.join(",")})`,
      );
    }
    // Refused: no client certificate, plain http, no user, the agents' user outside its prefix.
    const [n1, , n3] = lab.nodes as [LabNode, LabNode, LabNode];
    const noCert = await ctl(["endpoint", "health"], { endpoints: url(n1), cert: false });
    assert.notEqual(noCert.code, 0, "a client without a certificate is refused");
    const plain = await ctl(["get", "x"], { endpoints: url(n1, "http"), cert: false, ca: false });
    assert.notEqual(plain.code, 0, "plain http is refused");
    const anonymous = await ctl(["put", "/understudy/lab/x", "y"]);
    assert.notEqual(anonymous.code, 0, `auth is on: a certificate without a user writes nothing: ${anonymous.stdout}`);
    const agent = `understudy-lab:${agentPassword()}`;
    const own = await ctl(["put", "/understudy/lab/ansible-check", "ok"], { endpoints: url(n1), user: agent });
    assert.equal(own.code, 0, `the agents' user writes under /understudy/lab/: ${own.stderr}`);
    const other = await ctl(["put", "/understudy/other/x", "y"], { user: agent });
    assert.notEqual(other.code, 0, "the agents' user is refused outside /understudy/lab/");
    assert.match(other.stderr, /permission denied/, other.stderr);
    const get = await ctl(["get", "--print-value-only", "/understudy/lab/ansible-check"], { endpoints: url(n3), user: agent });
    assert.equal(get.stdout.trim(), "ok", "a write through n1 is read through n3");

    const second = await playbook(400_000, names);
    for (const n of names) assert.equal(second.get(n)!.changed, 0, `second run: changed=0 on ${n}`);

    // The agents elect a primary over TLS + auth (config as the role writes it).
    const token = join(lab.dir, "managed-api-token");
    writeFileSync(token, `${"a1".repeat(12)}\n`, { mode: 0o600 });
    for (const n of lab.nodes) {
      const state = join(n.dir, "managed-state");
      mkdirSync(state, { recursive: true });
      const config = join(n.dir, "managed-agent.yaml");
      writeFileSync(
        config,
        `cluster: lab
node: { name: ${n.name}, address: ${n.address}, priority: 100 }
etcd:
  endpoints: [${endpoints}]
  request_timeout: 2s
  tls: { ca: ${pki.ca.cert}, cert: ${client.cert}, key: ${client.key} }
  auth: { user: understudy-lab, password_file: ${join(secrets, "etcd-password")} }
election: { ttl: 2s, fence_margin: 500ms, ranking_delay: 300ms }
daemon: { backend: process, mode: cold, command: [/bin/sleep, "3600"], stop_timeout: 2s }
state_dir: ${state}
api: { listen: "${n.address}:8470", token_file: ${token} }
`,
      );
      lab.spawn(n, [process.execPath, ...NODE_FLAGS, CLI, "agent", "--config", config], { logFile: join(lab.logDir, `${n.name}-managed-agent.log`) });
    }
    const elected = await pollUntil(
      async () => {
        const r = await ctl(["get", "/understudy/lab/leader", "--print-value-only"], { user: root() });
        return r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout.trim()) as { node: string }).node : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.ok(elected && names.includes(elected), `the agents elected a primary over TLS + auth (${String(elected)})`);
    const memberKeys = await pollUntil(
      async () => {
        const r = await ctl(["get", "/understudy/lab/members/", "--prefix", "--keys-only"], { user: root() });
        const keys = r.stdout.split("\n").filter(Boolean);
        return keys.length === 3 ? keys : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.ok(memberKeys, "all three agents registered");
    t.diagnostic(`managed etcd: agents elected ${elected} at +${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    for (const n of lab.nodes) await lab.killAllIn(n.ns).catch(() => 0);
    await lab.teardown();
    t.diagnostic(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
});
