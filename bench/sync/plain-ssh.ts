/**
 * The plain sshd (port 2223, the lab client key, no forced command) and the
 * ssh command line the plain-rsync baselines and lsyncd use: understudy's
 * transport options minus ControlMaster. Shared by bench/sync and bench/data.
 */
import { join } from "node:path";
import type { Lab } from "../../test/lab/harness/index.js";

export const PLAIN_SSH_PORT = 2223;

/** Start the plain sshd on PLAIN_SSH_PORT in every node (same host key, `SetEnv SHLVL=1` like the sync sshd). */
export async function startPlainSshds(lab: Lab): Promise<void> {
  for (const n of lab.nodes) {
    await lab.startSshd(n, {
      port: PLAIN_SSH_PORT,
      configFile: join(n.dir, "plain_sshd_config"),
      hostKeyDir: join(n.dir, "plain-hostkey"),
      extraConfig: ["SetEnv SHLVL=1"],
    });
  }
}

/** The ssh command line for rsync -e / lsyncd's rsh: the understudy transport's options minus ControlMaster, lab client key, plain sshd. */
export function plainSsh(lab: Lab): string {
  return [
    "/usr/bin/ssh",
    "-F",
    "/dev/null",
    "-i",
    lab.clientKey,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${lab.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "CheckHostIP=no",
    "-o",
    "ConnectTimeout=2",
    "-o",
    "LogLevel=ERROR",
    "-p",
    String(PLAIN_SSH_PORT),
  ].join(" ");
}
