// vip.backend keepalived: keepalived owns the floating IP (VRRP, unicast
// peers), and understudy decides who may hold it. Every node's keepalived
// tracks a file the agent writes: "0" only on the etcd lease holder, "1"
// everywhere else, and `weight 0` turns a non-zero value into FAULT. So at
// most one keepalived is ever out of FAULT and can become MASTER: no
// preemption fights, and a keepalived that outlives its agent is pushed into
// FAULT by the fence guard, which rewrites the file (docs/architecture.md, "The fence guard").
import { mkdirSync } from "node:fs";
import path from "node:path";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import type { DurableFs } from "../platform/durable-fs.js";
import { NODE_DURABLE_FS } from "../platform/node-durable-fs.js";
import { IpFloatingIp, type VipConfig } from "./ip.js";
import { UNUSED_ARPING } from "./arping.js";
import type { FloatingIp } from "./port.js";

/** Track file values: keepalived's `weight 0` puts the instance in FAULT for any non-zero value. */
export const TRACK_PRIMARY = "0\n";
export const TRACK_STANDBY = "1\n";

export class KeepalivedFloatingIp implements FloatingIp {
  readonly address: string;
  private readonly ip: IpFloatingIp;
  private readonly trackFile: string;

  constructor(
    config: VipConfig,
    runner: CommandRunner,
    clock: Clock,
    private readonly logger: Logger,
    /** The track file decides who may hold the VIP: written atomically and durably. */
    private readonly files: DurableFs = NODE_DURABLE_FS,
  ) {
    if (!config.keepalived) throw new UnderstudyError("US_E_VIP_ADD", { address: config.address, interface: config.interface, cause: "vip.keepalived is missing" });
    this.address = config.address;
    this.trackFile = config.keepalived.track_file;
    // Only for isHeld() and a last-resort remove(); keepalived adds and announces.
    this.ip = new IpFloatingIp({ ...config, duplicate_check: false, arp_count: 0 }, runner, clock, logger, UNUSED_ARPING);
    mkdirSync(path.dirname(this.trackFile), { recursive: true, mode: 0o755 });
  }

  isHeld(): Promise<boolean> {
    return this.ip.isHeld();
  }

  /** Let keepalived out of FAULT; it becomes MASTER once no advert arrives (3 × advert_int). */
  async add(): Promise<void> {
    await this.write(TRACK_PRIMARY, "US_E_VIP_ADD");
  }

  /** FAULT first (keepalived drops the address and stops advertising), then make sure the address is gone now. */
  async remove(): Promise<void> {
    await this.write(TRACK_STANDBY, "US_E_VIP_DEL");
    await this.ip.remove();
  }

  /** keepalived sends its own gratuitous ARPs on becoming MASTER. */
  async announce(): Promise<void> {}

  private async write(value: string, code: "US_E_VIP_ADD" | "US_E_VIP_DEL"): Promise<void> {
    try {
      await this.files.writeFileAtomic(this.trackFile, value, 0o644);
    } catch (e) {
      throw new UnderstudyError(code, { address: this.address, interface: "keepalived", cause: `cannot write track file ${this.trackFile}: ${describeError(e)}` });
    }
    this.logger.debug({ track_file: this.trackFile, value: value.trim() }, "keepalived track file written");
  }
}
