import type { IOptions } from "etcd3";
import { ConstantBackoff, noop } from "cockatiel";
import type { EtcdCoordinatorOptions } from "./etcd.js";

/**
 * The etcd3 client's options: its own retries and circuit breaker off (see
 * EtcdCoordinator), gRPC reconnects quick, TLS and credentials when configured.
 */
export function clientOptions(opts: EtcdCoordinatorOptions): IOptions {
  return {
    hosts: [...opts.endpoints],
    dialTimeout: opts.dialTimeoutMs,
    faultHandling: { host: () => noop, global: noop, watchBackoff: new ConstantBackoff(200).next() },
    grpcOptions: {
      // Lease keepalives already exercise the connection every renew interval; these
      // pings only catch a dead connection while nothing else is in flight.
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 2000,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 500,
      ...(opts.security?.tls?.serverName ? { "grpc.ssl_target_name_override": opts.security.tls.serverName, "grpc.default_authority": opts.security.tls.serverName } : {}),
    },
    ...(opts.security?.tls
      ? {
          credentials: {
            rootCertificate: opts.security.tls.ca,
            ...(opts.security.tls.key ? { privateKey: opts.security.tls.key } : {}),
            ...(opts.security.tls.cert ? { certChain: opts.security.tls.cert } : {}),
          },
        }
      : {}),
    ...(opts.security?.auth ? { auth: { username: opts.security.auth.user, password: opts.security.auth.password } } : {}),
  };
}
