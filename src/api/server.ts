import { vipFindings } from "../ha/vip-truth.js";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Coordinator } from "../coordinator/port.js";
import { describeError, isUnderstudyError } from "../errors/catalogue.js";
import type { NodeView } from "../ha/events.js";
import type { Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";
import { RefusalLogLimiter, bearerMatches } from "./auth.js";
import type { AgentMetrics } from "./metrics.js";
import { registerControlRoutes } from "./control.js";
import type { SyncStatus } from "../sync/engine.js";
import type { Manifest } from "../sync/manifest.js";
import type { DataControl } from "../data/port.js";
import { registerDataRoutes } from "./data.js";
import { syncDataBlock } from "./sync-data.js";
import type { GrantAnswer, GrantRequest } from "../ha/failsafe.js";
import { FAILSAFE_OWN_AUTH, registerFailsafeRoutes } from "./failsafe.js";
import { registerReadyRoute } from "./handover-ready.js";
import { HISTORY_QUERY, ZOD_SCHEMAS } from "./validate.js";

export interface ApiDeps {
  readonly view: () => NodeView;
  readonly coordinator: Coordinator;
  readonly metrics: AgentMetrics;
  readonly clock: Clock;
  readonly log: Logger;
  /** Bearer token for mutations; null refuses every mutation. */
  readonly token: string | null;
  /** api.token_file re-read when it changes (a rotated token); takes the place of `token`. */
  readonly tokenSource?: { get(): Promise<string> };
  readonly authReads: boolean;
  /** /liveness fails when no HA cycle completed for this long (a frozen loop). */
  readonly livenessMaxMs: number;
  readonly failbackPreferred: string | null;
  /** The sync engine, when sync roots are configured: GET /sync, GET /sync/manifest/:root, POST /resync. */
  readonly sync?: {
    status(): SyncStatus;
    manifest(root: string): Manifest | undefined;
    resync(): void;
  };
  /** Data replication, when data roots are configured: GET /data, POST /data/notify (src/api/data.ts). */
  readonly data?: DataControl;
  /** Serve HTTPS; with clientCa, a verified client certificate also authorizes mutations (mTLS). */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer; readonly clientCa?: Buffer };
  /** The same files re-read when they change (a renewed certificate): new connections get the new ones, without a restart. */
  readonly tlsSource?: { check(): Promise<boolean>; peek(): { readonly key: Buffer; readonly cert: Buffer; readonly clientCa?: Buffer } };
  /** How often tlsSource is checked (a stat of each file). Default 5 s. */
  readonly tlsCheckMs?: number;
  /** Failsafe mode (docs/failsafe-design.md): answers POST /failsafe/grant; absent: every request is refused. */
  readonly failsafe?: { answer(request: GrantRequest): Promise<GrantAnswer> };
  /** Connection and timing limits; API_LIMITS unless a test shortens them. */
  readonly limits?: ApiLimits;
}

export interface ApiLimits {
  /** Open connections at once; more are closed on accept (a slowloris or an fd exhaustion attempt). */
  readonly maxConnections: number;
  /** The request's headers must arrive within this. */
  readonly headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** A socket with no traffic at all is closed after this. */
  readonly idleTimeoutMs: number;
  /** Body size for any route; mutations take at most MUTATION_BODY_LIMIT. */
  readonly bodyLimitBytes: number;
  /** At most one "unauthorized" log line per this interval (with a count of the rest). */
  readonly refusalLogIntervalMs: number;
}

export const API_LIMITS: ApiLimits = {
  maxConnections: 256,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  bodyLimitBytes: 16 * 1024,
  refusalLogIntervalMs: 10_000,
};
/** A switchover or ban request is a few hundred bytes. */
export const MUTATION_BODY_LIMIT = 4 * 1024;

/** An error answer: a stable code and one sentence. */
export function refuse(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ error: code, message });
}

/**
 * The REST API (docs/configuration.md). Health endpoints answer from this node's own
 * state without touching etcd, so a load balancer's checks stay fast and keep
 * working while etcd is slow; /cluster and /history read etcd.
 */
export function buildApi(deps: ApiDeps): FastifyInstance {
  const limits = deps.limits ?? API_LIMITS;
  // Node checks headers/request timeouts on this interval (30 s by default): check often enough to enforce them.
  const serverOptions = { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) };
  const https = deps.tls ? { ...serverOptions, key: deps.tls.key, cert: deps.tls.cert, ...(deps.tls.clientCa ? { ca: deps.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}) } : null;
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyLimitBytes,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    http: serverOptions,
    // Route schemas are zod's (validate.ts): unknown fields are errors (400), never dropped, and no
    // type coercion: `"to": 7` or `"to": ["n2"]` is refused, not turned into a node name.
    schemaController: ZOD_SCHEMAS,
    ...(https ? { https } : {}),
  });
  app.server.maxConnections = limits.maxConnections;
  app.addHook("onRoute", (route) => {
    if (route.method !== "GET" && route.method !== "HEAD") route.bodyLimit ??= Math.min(MUTATION_BODY_LIMIT, limits.bodyLimitBytes);
  });
  const refusals = new RefusalLogLimiter(limits.refusalLogIntervalMs, () => deps.clock.monotonicMs());

  const unauthorized = (req: FastifyRequest, reply: FastifyReply, why: string) => {
    const admitted = refusals.admit();
    if (admitted) deps.log.warn({ method: req.method, url: req.url, ip: req.ip, refused_since_last_line: admitted.suppressed }, "API request refused: unauthorized");
    return refuse(reply, 401, "US_E_API_UNAUTHORIZED", why);
  };

  app.addHook("onRequest", async (req, reply) => {
    const mutation = req.method !== "GET" && req.method !== "HEAD";
    if (!mutation && !deps.authReads) return;
    // POST /failsafe/grant and /handover/ready authenticate themselves (req_mac or mTLS): their client never sends the bearer token.
    if ((req.routeOptions.config as unknown as Record<string, unknown> | undefined)?.[FAILSAFE_OWN_AUTH] === true) return;
    // A client certificate signed by api.tls.client_ca counts as well as the token.
    const mtls = deps.tls?.clientCa !== undefined && (req.raw.socket as { authorized?: boolean }).authorized === true;
    const token = deps.tokenSource ? await deps.tokenSource.get() : deps.token;
    if (!mtls && !bearerMatches(req.headers.authorization, token)) {
      const why = deps.token === null ? "no API token is configured on this node (api.token_file)" : "missing or wrong bearer token";
      return unauthorized(req, reply, why);
    }
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    // A body or query refused by its zod schema (validate.ts); fastify's own 4xx (bad JSON, too large) below.
    if (isUnderstudyError(err, "US_E_API_BAD_REQUEST")) return refuse(reply, 400, "US_E_API_BAD_REQUEST", String(err.details["why"] ?? err.message));
    if (err.statusCode && err.statusCode < 500) return refuse(reply, err.statusCode, "US_E_API_BAD_REQUEST", err.message);
    deps.log.error({ err: describeError(err) }, "API request failed");
    return refuse(reply, 503, "US_E_ETCD_UNREACHABLE", describeError(err));
  });

  const health = (ok: (v: NodeView) => boolean) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const v = deps.view();
    return reply.code(ok(v) ? 200 : 503).send(v);
  };
  const holdsLease = (v: NodeView) => v.acting === "primary" && (v.leaseRemainingMs ?? 0) > 0;
  // 200 only on the lease holder: what HAProxy's http-check and other load balancers want.
  app.get("/primary", health(holdsLease));
  app.get(
    "/standby",
    health((v) => v.acting === "standby" && v.healthy),
  );
  app.get(
    "/health",
    health((v) => (holdsLease(v) ? v.daemonRunning : v.acting === "standby")),
  );
  app.get(
    "/liveness",
    health((v) => v.sinceLastCycleMs !== null && v.sinceLastCycleMs < deps.livenessMaxMs),
  );
  app.get(
    "/readiness",
    health((v) => v.etcdReachable && (holdsLease(v) ? v.daemonRunning : v.healthy)),
  );

  app.get("/cluster", async () => {
    const snap = await deps.coordinator.snapshot();
    // vipProblems: a primary without its VIP, or the VIP on a node that is not the primary (unhealthy).
    return { ...snap, node: deps.view().node, vipProblems: vipFindings(snap) };
  });
  // Query strings are text (no type coercion): a limit is 1-1000 written in digits.
  app.get<{ Querystring: { limit?: string } }>("/history", { schema: { querystring: HISTORY_QUERY } }, async (req) => ({
    events: await deps.coordinator.history(req.query.limit === undefined ? 100 : Number(req.query.limit)),
  }));
  const noSync = (reply: FastifyReply) => refuse(reply, 404, "US_E_API_PRECONDITION", "file sync is not configured on this node (no sync section)");
  app.get("/sync", async (_req, reply) => (deps.sync ? { ...deps.sync.status(), ...(deps.data ? { data: syncDataBlock(deps.data.status()) } : {}) } : noSync(reply)));
  app.get<{ Params: { root: string } }>("/sync/manifest/:root", async (req, reply) => {
    if (!deps.sync) return noSync(reply);
    const m = deps.sync.manifest(req.params.root);
    if (!m) return refuse(reply, 404, "US_E_API_PRECONDITION", `no manifest for root ${JSON.stringify(req.params.root)} on this node (unknown root, or never synced)`);
    return m;
  });
  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });

  registerControlRoutes(app, deps);
  registerDataRoutes(app, deps);
  registerFailsafeRoutes(app, deps, unauthorized);
  registerReadyRoute(app, deps, unauthorized);
  if (deps.tls && deps.tlsSource) watchApiTls(app, deps.tlsSource, deps.clock, deps.tlsCheckMs ?? 5000);
  return app;
}

/** Swap the server's certificate (and client CA) when the files change: setSecureContext applies to new connections. */
function watchApiTls(app: FastifyInstance, source: NonNullable<ApiDeps["tlsSource"]>, clock: Clock, everyMs: number): void {
  let timer: { cancel(): void } | undefined;
  let closed = false;
  const arm = () => {
    timer = clock.setTimer(everyMs, () => {
      void source
        .check()
        .then((changed) => {
          if (!changed || closed) return;
          const t = source.peek();
          (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ key: t.key, cert: t.cert, ...(t.clientCa ? { ca: t.clientCa } : {}) });
        })
        .catch(() => undefined)
        .finally(() => {
          if (!closed) arm();
        });
    });
  };
  app.addHook("onReady", async () => arm());
  app.addHook("onClose", async () => {
    closed = true;
    timer?.cancel();
  });
}
