import type { FloatingIp } from "./port.js";

/**
 * Backend `none`: the cluster has no floating IP (clients reach the primary
 * through a load balancer probing /primary, or DNS). Holds nothing, does nothing.
 */
export class NoFloatingIp implements FloatingIp {
  constructor(readonly address: string = "") {}

  async isHeld(): Promise<boolean> {
    return false;
  }
  async add(): Promise<void> {}
  async remove(): Promise<void> {}
  async announce(): Promise<void> {}
}
