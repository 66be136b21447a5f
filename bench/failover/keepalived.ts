/**
 * keepalived peer for the failover benchmark: Debian's /usr/sbin/keepalived
 * (VRRP only) in each node namespace of a Lab, unicast VRRP between the
 * nodes, advert_int 1, priorities 150/100/50, a track script that passes while
 * sshd listens on :22 in that namespace, and sshd running on every node
 * (keepalived-style warm standby).
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab, LabNode } from "../../test/lab/harness/index.js";

export const KEEPALIVED = "/usr/sbin/keepalived";
export const KEEPALIVED_PRIORITIES = [150, 100, 50];

export interface KeepalivedOptions {
  /** VRRP advertisement interval in seconds (VRRPv2: whole seconds). Default 1. */
  advertInt?: number;
  priorities?: number[];
}

function checkScript(lab: Lab): string {
  const file = join(lab.dir, "keepalived", "check_sshd.sh");
  mkdirSync(join(lab.dir, "keepalived"), { recursive: true });
  // `pgrep -x sshd` would see every namespace's sshd: ask the namespace's own socket table instead.
  writeFileSync(file, "#!/bin/sh\n# passes while something listens on TCP :22 in this network namespace\n[ -n \"$(/usr/bin/ss -Hltn 'sport = :22')\" ]\n");
  chmodSync(file, 0o755);
  return file;
}

export function renderKeepalivedConf(lab: Lab, n: LabNode, opts: KeepalivedOptions = {}): string {
  const idx = lab.nodes.indexOf(n);
  const priority = (opts.priorities ?? KEEPALIVED_PRIORITIES)[idx] ?? 10;
  const peers = lab.nodes.filter((x) => x.name !== n.name).map((x) => `    ${x.address}`);
  return `# understudy failover bench: keepalived peer for ${n.name} (${lab.prefix})
global_defs {
  router_id ${lab.prefix}-${n.name}
  script_user root
  vrrp_garp_master_delay 5
  vrrp_garp_master_repeat 5
}

vrrp_script chk_sshd {
  script "${checkScript(lab)}"
  interval 1
  timeout 1
  fall 1
  rise 1
}

vrrp_instance VI_BENCH {
  state BACKUP
  interface ${n.iface}
  virtual_router_id ${(lab.subnetIndex % 250) + 1}
  priority ${priority}
  advert_int ${opts.advertInt ?? 1}
  unicast_src_ip ${n.address}
  unicast_peer {
${peers.join("\n")}
  }
  virtual_ipaddress {
    ${lab.vip} dev ${n.iface}
  }
  track_script {
    chk_sshd
  }
}
`;
}

/** Write the node's keepalived.conf and start keepalived in the foreground in its namespace (tracked by lab.spawn). */
export function startKeepalived(lab: Lab, n: LabNode, opts: KeepalivedOptions = {}): ChildProcess {
  const dir = join(n.dir, "keepalived");
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "keepalived.conf");
  writeFileSync(conf, renderKeepalivedConf(lab, n, opts));
  const argv = [
    KEEPALIVED,
    "--dont-fork",
    "--log-console",
    "--log-detail",
    "--no-syslog",
    "--vrrp",
    "--use-file",
    conf,
    "--pid",
    join(dir, "keepalived.pid"),
    "--vrrp_pid",
    join(dir, "vrrp.pid"),
    "--checkers_pid",
    join(dir, "checkers.pid"),
  ];
  return lab.spawn(n, argv, { logFile: join(lab.logDir, `${n.name}-keepalived.log`) });
}
