// Every external program a config needs, where the config asks for it, and
// the Debian package that provides it. Pure: checking them is check.ts.
import type { Config } from "../config/load.js";

export interface ToolNeed {
  /** Absolute path, or a bare name looked up on PATH (daemon commands may be bare). */
  readonly program: string;
  /** The config setting (or feature) that needs it, for the error message. */
  readonly setting: string;
  /** "arping": found and told apart by probing (two Debian packages, different flags). */
  readonly kind: "program" | "arping";
}

/** Debian 12 packages by program name; a program not listed is named with a hint to look it up. */
export const PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  arping: "iputils-arping (or arping)",
  rsync: "rsync",
  ssh: "openssh-client",
  sshd: "openssh-server",
  systemctl: "systemd",
  keepalived: "keepalived",
  proftpd: "proftpd-core",
  ftpasswd: "proftpd-core",
  vsftpd: "vsftpd",
  "sftp-server": "openssh-sftp-server",
  curl: "curl",
  setpriv: "util-linux",
  sftpgo: "none in Debian 12 (use the sftpgo project's .deb)",
  inotifywait: "inotify-tools",
};

export function packageFor(program: string): string {
  const base = program.slice(program.lastIndexOf("/") + 1);
  return PACKAGES[base] ?? `that provides ${base} (find it with \`apt-file search ${base}\`)`;
}

export function toolNeeds(config: Config): ToolNeed[] {
  const needs: ToolNeed[] = [];
  const add = (program: string | undefined, setting: string, kind: ToolNeed["kind"] = "program") => {
    if (program !== undefined && !needs.some((n) => n.program === program && n.kind === kind)) needs.push({ program, setting, kind });
  };
  const v = config.vip;
  if (v && v.backend !== "none") {
    add("ip", "vip (ip addr), the fence guard");
    const ipv4 = !v.address.includes(":");
    if (v.backend === "ip" && ipv4 && (v.duplicate_check || v.arp_count > 0)) add(v.arping ?? "arping", v.arping ? "vip.arping" : "vip (duplicate check, gratuitous ARP)", "arping");
    if (v.backend === "keepalived") add("keepalived", "vip.backend keepalived");
  }
  const d = config.daemon;
  if (d.backend === "process") add(d.command?.[0], "daemon.command");
  if (d.backend === "command") {
    add(d.start?.[0], "daemon.start");
    add(d.stop?.[0], "daemon.stop");
    add(d.status?.[0], "daemon.status");
  }
  if (d.backend === "systemd") add("systemctl", "daemon.backend systemd");
  add(d.check?.[0], "daemon.check");
  const s = config.sync;
  if (s) {
    add(s.rsync_path, "sync.rsync_path");
    add("/usr/bin/ssh", "sync.ssh (pulls from the primary)");
    s.roots.forEach((r, i) => {
      add(r.validate?.[0], `sync.roots.${i}.validate`);
      add(r.post_sync?.[0], `sync.roots.${i}.post_sync`);
    });
  }
  const dataRoots = config.data;
  if (dataRoots) {
    // Without it the primary never sees an upload close: nothing would ship but full passes.
    add(dataRoots.inotifywait_path, "data (the upload watcher)");
  }
  const h = config.hooks;
  if (h) {
    for (const event of ["on_role_change", "pre_promote", "post_promote", "on_demote", "post_sync"] as const) add(h[event]?.[0], `hooks.${event}`);
  }
  return needs;
}
