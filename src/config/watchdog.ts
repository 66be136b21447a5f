// Hardware-grade fencing (docs/architecture.md, "The fence guard"): the Linux watchdog device, held open
// by the fence guard while this node is primary. The guard keeps it fed only
// while the lease is safely ahead; if the guard itself freezes, or its fence
// fails, the kernel resets the node before etcd can expire the lease. The
// device code is in the native guard (src/fence/native/watchdog.c); this file
// has the timeout the agent computes from config; the guard's port is fence/port.ts.

/**
 * The watchdog timeout that keeps a healthy primary fed and still resets a
 * frozen one in time. The guard may feed the device only while
 * `now + timeout <= leaseEnd - safety_margin`; renewals arrive every
 * renew_interval and move leaseEnd to about now + ttl, so feeding never pauses
 * while renewals succeed if timeout <= ttl - renew_interval - safety_margin,
 * less a quarter second for the renewal's round trip. Whole seconds: the
 * watchdog API's unit.
 */
export function watchdogTimeoutS(t: { ttlMs: number; renewIntervalMs: number }, safetyMarginMs: number): number {
  return Math.floor((t.ttlMs - t.renewIntervalMs - safetyMarginMs - 250) / 1000);
}
