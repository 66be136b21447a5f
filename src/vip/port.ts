// The floating IP. Adapters: ip.ts (`ip addr` + iputils arping),
// keepalived.ts (keepalived holds the address, understudy writes the track
// file that lets it), none.ts. VipReconciler (reconcile.ts) drives one of them
// towards the state the HA loop desires (ha/ports.ts VipControl).

/**
 * One floating IP on this host.
 *
 * Guarantees an implementation must give:
 * - `add` never adds an address another host answers for: unless told the
 *   previous holder released it (skipDuplicateCheck) or vip.duplicate_check
 *   is off, it runs the duplicate check first (IPv4 `arping -D`; IPv6 has
 *   none yet and says so in the log) and rejects with US_E_VIP_DUPLICATE,
 *   naming the MAC that answered. No reply within
 *   vip.duplicate_check_timeout means free; a check that could not run
 *   rejects with US_E_VIP_CHECK, it is never taken as "free".
 * - `add` is idempotent (held already: it only announces again) and resolves
 *   once the address is on the interface; a failure rejects with US_E_VIP_ADD.
 *   Announcements (gratuitous ARP) follow in the background and never delay
 *   or fail `add`.
 * - `remove` is idempotent, never throws for "not held", and stops any
 *   announcement in progress before it removes the address (a late ARP after
 *   a failover would pull traffic back). It rejects with US_E_VIP_DEL only
 *   when the address may still be held.
 * - Every call runs its commands with a timeout (`ip` 5 s, the duplicate
 *   check vip.duplicate_check_timeout), so none blocks a cycle indefinitely;
 *   an `ip` command that times out rejects, never resolves as success.
 * - `isHeld` reads the kernel's state each time (`ip -j addr show`); it never
 *   answers from memory. It rejects when it cannot tell.
 * - Calls are not made concurrently: the reconciler runs them one at a time.
 */
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
