// `understudy keepalived render`: the keepalived.conf for vip.backend
// keepalived. One VRRP instance, BACKUP with nopreempt, unicast to the peers,
// and a track file with weight 0 that only the etcd lease holder sets to 0
// (see keepalived.ts): every other node sits in FAULT and cannot become MASTER.
import type { Config } from "../config/load.js";
import { UnderstudyError } from "../errors/catalogue.js";

const SAFE = /^[A-Za-z0-9_.:/@-]+$/;

function word(setting: string, value: string): string {
  // keepalived.conf has its own quoting rules; refuse anything that would need them.
  if (!SAFE.test(value)) throw new UnderstudyError("US_E_CONFIG_INVALID", { file: "(render)", path: setting, problem: "must hold no spaces, quotes, braces or '#'", value: JSON.stringify(value) });
  return value;
}

export function renderKeepalivedConf(config: Config): string {
  const vip = config.vip;
  if (!vip || vip.backend !== "keepalived" || !vip.keepalived) {
    throw new UnderstudyError("US_E_CONFIG_INVALID", {
      file: "(render)",
      path: "vip.backend",
      problem: "must be keepalived to render a keepalived.conf",
      value: JSON.stringify(vip?.backend ?? "nothing"),
    });
  }
  const k = vip.keepalived;
  const self = config.node.address;
  const peers = k.unicast_peers.filter((p) => p !== self);
  const name = word("cluster", config.cluster).replaceAll("-", "_");
  const lines = [
    `# keepalived.conf for understudy node ${config.node.name} of cluster ${config.cluster}.`,
    "# Rendered by `understudy keepalived render`; re-render after changing the understudy config, do not edit.",
    "# Only the etcd primary writes 0 to the track file; every other node stays in FAULT, so VRRP",
    "# can never elect a second MASTER, and preemption never moves the address on its own.",
    "global_defs {",
    `    router_id understudy_${word("node.name", config.node.name).replaceAll("-", "_")}`,
    "    enable_script_security",
    "}",
    "",
    "vrrp_track_file understudy_primary {",
    `    file ${word("vip.keepalived.track_file", k.track_file)}`,
    // Until the agent says otherwise (it writes the file at start), FAULT.
    "    init_file 1",
    "}",
    "",
    `vrrp_instance understudy_${name} {`,
    "    state BACKUP",
    "    nopreempt",
    `    interface ${word("vip.interface", vip.interface)}`,
    `    virtual_router_id ${k.virtual_router_id}`,
    `    priority ${k.priority}`,
    `    advert_int ${k.advert_int / 1000}`,
    ...(peers.length > 0 ? [`    unicast_src_ip ${word("node.address", self)}`, "    unicast_peer {", ...peers.map((p) => `        ${word("vip.keepalived.unicast_peers", p)}`), "    }"] : []),
    "    virtual_ipaddress {",
    `        ${word("vip.address", vip.address)} dev ${vip.interface}`,
    "    }",
    "    track_file {",
    "        understudy_primary weight 0",
    "    }",
    "}",
    "",
  ];
  return lines.join("\n");
}
