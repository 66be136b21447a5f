/**
 * keepalived peer for bench/proftpd: Debian's /usr/sbin/keepalived (VRRP only) in each node
 * namespace, unicast VRRP, advert_int 1, priorities 150/100/50, `state BACKUP` + `nopreempt`
 * everywhere (a returning node does not take the address back, so each fault is one move), and
 * a track script that passes while ProFTPD listens on both :21 and :2022 in that namespace.
 * ProFTPD runs warm on every node with the same files (what keepalived sites do: keepalived
 * moves the address, nothing starts the daemon).
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lab, LabNode } from "../../test/lab/harness/index.js";

export const KEEPALIVED = "/usr/sbin/keepalived";
export const PRIORITIES = [150, 100, 50];

function checkScript(lab: Lab): string {
  const dir = join(lab.dir, "keepalived");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "check_proftpd.sh");
  // The namespace's own socket table (pgrep would see every namespace's proftpd).
  writeFileSync(
    file,
    "#!/bin/sh\n# passes while ProFTPD listens on :21 and :2022 in this network namespace\n[ -n \"$(/usr/bin/ss -Hltn 'sport = :21')\" ] && [ -n \"$(/usr/bin/ss -Hltn 'sport = :2022')\" ]\n",
  );
  chmodSync(file, 0o755);
  return file;
}

export function renderConf(lab: Lab, n: LabNode): string {
  const priority = PRIORITIES[lab.nodes.indexOf(n)] ?? 10;
  const peers = lab.nodes.filter((x) => x.name !== n.name).map((x) => `    ${x.address}`);
  return `# bench/proftpd: keepalived peer for ${n.name} (${lab.prefix})
global_defs {
  router_id ${lab.prefix}-${n.name}
  script_user root
  vrrp_garp_master_delay 5
  vrrp_garp_master_repeat 5
}

vrrp_script chk_proftpd {
  script "${checkScript(lab)}"
  interval 1
  timeout 1
  fall 1
  rise 1
}

vrrp_instance VI_FTP {
  state BACKUP
  nopreempt
  interface ${n.iface}
  virtual_router_id ${(lab.subnetIndex % 250) + 1}
  priority ${priority}
  advert_int 1
  unicast_src_ip ${n.address}
  unicast_peer {
${peers.join("\n")}
  }
  virtual_ipaddress {
    ${lab.vip} dev ${n.iface}
  }
  track_script {
    chk_proftpd
  }
}
`;
}

/** Write the node's keepalived.conf and run keepalived in the foreground in its namespace (tracked by lab.spawn). */
export function startKeepalived(lab: Lab, n: LabNode): ChildProcess {
  const dir = join(n.dir, "keepalived");
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "keepalived.conf");
  writeFileSync(conf, renderConf(lab, n));
  return lab.spawn(
    n,
    [
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
    ],
    { logFile: join(lab.logDir, `${n.name}-keepalived.log`) },
  );
}
