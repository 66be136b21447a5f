// Builds the FloatingIp adapter the config asks for; only the composition root calls this.
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { IpFloatingIp, type VipConfig } from "./ip.js";
import { ProbingArpingLocator } from "./arping.js";
import { KeepalivedFloatingIp } from "./keepalived.js";
import { NoFloatingIp } from "./none.js";
import type { GarpSender } from "./garp.js";
import type { FloatingIp } from "./port.js";

export type { FloatingIp } from "./port.js";
export type { VipConfig } from "./ip.js";
export { ResidentGarpSender } from "./garp.js";
export { VipReconciler, type VipReconcilerOptions, type VipState } from "./reconcile.js";

export interface FloatingIpDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The agent's resident gratuitous-ARP sender (absent: `arping` per packet). */
  readonly garp?: GarpSender;
}

/** No `vip` section, or `backend: none`, means no floating IP. */
export function createFloatingIp(config: VipConfig | undefined, deps: FloatingIpDeps): FloatingIp {
  if (config === undefined) return new NoFloatingIp();
  switch (config.backend) {
    case "none":
      return new NoFloatingIp(config.address);
    case "ip":
      return new IpFloatingIp(config, deps.runner, deps.clock, deps.logger.child({ component: "vip" }), new ProbingArpingLocator(deps.runner, config.arping), deps.garp);
    case "keepalived":
      return new KeepalivedFloatingIp(config, deps.runner, deps.clock, deps.logger.child({ component: "vip" }));
  }
}
