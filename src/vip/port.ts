// The floating IP. Adapters: ip.ts (`ip addr` + iputils arping), none.ts.

export interface FloatingIp {
  readonly address: string; // "198.18.0.100/24"
  /** Whether this host has the address on its interface right now. */
  isHeld(): Promise<boolean>;
  /**
   * Add the address unless held, after a duplicate-address check: throws
   * US_E_VIP_DUPLICATE if another host answers for it. Announces it (gratuitous ARP).
   * skipDuplicateCheck: the previous holder is known to have released it (its
   * release was committed in etcd after it removed the address).
   * notHeld: the caller has just seen the address absent; do not look again.
   */
  add(options?: { skipDuplicateCheck?: boolean; notHeld?: boolean }): Promise<void>;
  /** Remove if held. Idempotent; never throws for "not held". */
  remove(): Promise<void>;
  /** Gratuitous ARP / unsolicited NA so neighbours update their caches. */
  announce(): Promise<void>;
}
