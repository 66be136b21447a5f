/**
 * How long one etcd request may take: `etcd.request_timeout`, never past the lease's usable part
 * (ttl - fence_margin): a keepalive stuck longer than that is as good as lost.
 */
export function etcdRequestTimeoutMs(c: { readonly etcd: { readonly request_timeout: number }; readonly election: { readonly ttlMs: number; readonly fenceMarginMs: number } }): number {
  return Math.min(c.etcd.request_timeout, c.election.ttlMs - c.election.fenceMarginMs);
}
