import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { HistoryEvent, SwitchoverRequest } from "../coordinator/port.js";
import { parseDuration } from "../config/duration.js";
import { failbackTarget, planMove, type MoveBody } from "./move-plan.js";
import { z } from "zod";
import { refuse, type ApiDeps } from "./server.js";
import { NODE_NAME, mutationBody } from "./validate.js";

// Mutations: each checks what it can against the cluster as etcd has it,
// answers 412 with a reason when the action is not possible, records who
// asked and why in history, and returns 202 once the request is in etcd.

/** The longest drain a switchover may ask for (docs/operations.md, "Drained switchover"). */
const MAX_DRAIN_MS = 24 * 3_600_000;

// Bodies with only optional fields may be left out (`curl -X POST .../resume`): fastify hands those over as null.
const OPTIONAL = { body: mutationBody({}).nullable() };
const AT = z.iso.datetime({ offset: true, message: "must be an RFC 3339 date-time with a zone, like 2026-12-01T03:00:00Z" });
const SWITCHOVER = { body: mutationBody({ to: NODE_NAME.optional(), at: AT.optional(), drain: z.string().max(20, "must be at most 20 characters").optional() }).nullable() };
const FAILBACK = { body: mutationBody({ to: NODE_NAME.optional() }).nullable() };
const FAILOVER = { body: mutationBody({ to: NODE_NAME, force: z.boolean().optional() }) };
const BAN = { body: mutationBody({ node: NODE_NAME, duration: z.string() }) };
const UNBAN = { body: mutationBody({ node: NODE_NAME }) };

export function registerControlRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const now = () => new Date(deps.clock.wallMs()).toISOString();
  const who = (req: FastifyRequest, body: { requested_by?: string } | undefined) => body?.requested_by ?? `api@${req.ip}`;
  const record = async (event: Omit<HistoryEvent, "at" | "node" | "term">) => {
    await deps.coordinator.appendHistory({ ...event, at: now(), node: deps.view().node, term: null }, null).catch(() => undefined);
  };

  // Re-pull every root (standby) or rebuild and republish every manifest (primary), on this node.
  app.post<{ Body: { reason?: string; requested_by?: string } | null }>("/resync", { schema: OPTIONAL }, async (req, reply) => {
    if (!deps.sync) return refuse(reply, 412, "US_E_API_PRECONDITION", "file sync is not configured on this node (no sync section)");
    deps.sync.resync();
    deps.log.info({ requested_by: who(req, req.body ?? undefined), reason: req.body?.reason ?? "" }, "resync requested");
    return reply.code(202).send({ accepted: true, node: deps.view().node });
  });

  /** Validate and write a switchover / failback / failover request. */
  const move = async (req: FastifyRequest, reply: FastifyReply, kind: SwitchoverRequest["kind"], body: MoveBody, namedBy?: string) => {
    const snap = await deps.coordinator.snapshot();
    const drainMs = body.drain === undefined ? undefined : parseDuration(body.drain);
    if (body.drain !== undefined && (drainMs === undefined || drainMs < 1000 || drainMs > MAX_DRAIN_MS)) {
      return refuse(reply, 400, "US_E_API_BAD_REQUEST", `drain ${JSON.stringify(body.drain)} must be a duration between 1s and 24h, like 30s`);
    }
    const plan = planMove(snap, kind, body, deps.clock.wallMs(), namedBy);
    if (!plan.ok) return refuse(reply, plan.status, plan.status === 400 ? "US_E_API_BAD_REQUEST" : "US_E_API_PRECONDITION", plan.message);
    const request: SwitchoverRequest = {
      kind,
      from: snap.leader?.node ?? null,
      to: plan.to,
      ...(plan.chosen ? { chosen: true } : {}),
      at: body.at ? new Date(Date.parse(body.at)).toISOString() : null,
      force: body.force === true,
      requestedBy: who(req, body),
      reason: body.reason ?? "",
      requestedAt: now(),
      ...(drainMs !== undefined ? { drainMs } : {}),
    };
    if (!(await deps.coordinator.requestSwitchover(request))) {
      return refuse(reply, 412, "US_E_API_PRECONDITION", "another switchover request is already pending");
    }
    await record({
      kind: "request",
      from: request.from,
      to: request.to,
      reason: `${kind} requested${request.at ? ` for ${request.at}` : ""}${drainMs !== undefined ? ` with a drain of up to ${body.drain}` : ""}: ${request.reason}`,
      requestedBy: request.requestedBy,
    });
    deps.log.info({ request, target: plan.reason }, `${kind} requested`);
    return reply.code(202).send({ accepted: true, request, target: plan.reason });
  };

  app.post<{ Body: MoveBody }>("/switchover", { schema: SWITCHOVER }, (req, reply) => move(req, reply, "switchover", req.body ?? {}));
  app.post<{ Body: MoveBody }>("/failback", { schema: FAILBACK }, (req, reply) => {
    const target = failbackTarget(req.body?.to, deps.failbackPreferred ?? null);
    if (!target.ok) return refuse(reply, target.status, "US_E_API_PRECONDITION", target.message);
    return move(req, reply, "failback", { ...req.body, to: target.to }, target.namedBy);
  });
  app.post<{ Body: MoveBody }>("/failover", { schema: FAILOVER }, (req, reply) => move(req, reply, "failover", req.body));
  app.delete("/switchover", async (req, reply) => {
    const snap = await deps.coordinator.snapshot();
    if (!snap.switchover) return refuse(reply, 412, "US_E_API_PRECONDITION", "no switchover is pending");
    await deps.coordinator.cancelSwitchover();
    await record({ kind: "request", from: snap.switchover.from, to: snap.switchover.to, reason: `${snap.switchover.kind} cancelled`, requestedBy: who(req, undefined) });
    return reply.code(202).send({ cancelled: snap.switchover });
  });

  for (const [path, paused] of [
    ["/pause", true],
    ["/resume", false],
  ] as const) {
    app.post<{ Body: { reason?: string; requested_by?: string } }>(path, { schema: OPTIONAL }, async (req, reply) => {
      const snap = await deps.coordinator.snapshot();
      if (snap.paused === paused) return refuse(reply, 412, "US_E_API_PRECONDITION", paused ? "the cluster is already paused" : "the cluster is not paused");
      await deps.coordinator.setPaused(paused);
      await record({ kind: paused ? "pause" : "resume", from: null, to: null, reason: req.body?.reason ?? "", requestedBy: who(req, req.body) });
      return reply.code(202).send({ paused });
    });
  }

  app.post<{ Body: { node: string; duration: string; reason?: string; requested_by?: string } }>("/ban", { schema: BAN }, async (req, reply) => {
    const ms = parseDuration(req.body.duration);
    if (ms === undefined || ms < 1000 || ms > 7 * 24 * 3_600_000) {
      return refuse(reply, 400, "US_E_API_BAD_REQUEST", `duration ${JSON.stringify(req.body.duration)} must be between 1s and 168h, like 30m`);
    }
    const snap = await deps.coordinator.snapshot();
    if (snap.leader?.node === req.body.node) {
      return refuse(reply, 412, "US_E_API_PRECONDITION", `${req.body.node} is the primary: switch over first, then ban it`);
    }
    const until = new Date(deps.clock.wallMs() + ms).toISOString();
    const requestedBy = who(req, req.body);
    await deps.coordinator.ban({ node: req.body.node, until, requestedBy, reason: req.body.reason ?? "" }, ms);
    await record({ kind: "ban", from: null, to: req.body.node, reason: `until ${until}: ${req.body.reason ?? ""}`, requestedBy });
    return reply.code(202).send({ banned: req.body.node, until });
  });
  // Flap damping (src/ha/flap.ts): the clear is a history event, so every node's count restarts from it.
  app.post<{ Body: { reason?: string; requested_by?: string } | null }>("/flap/clear", { schema: OPTIONAL }, async (req, reply) => {
    const events = await deps.coordinator.history(200);
    const lastClear = events.filter((e) => e.kind === "flap_clear").pop();
    const damped = events.filter((e) => e.kind === "flap_damped" && (!lastClear || Date.parse(e.at) > Date.parse(lastClear.at))).pop();
    const requestedBy = who(req, req.body ?? undefined);
    await deps.coordinator.appendHistory(
      {
        kind: "flap_clear",
        at: now(),
        node: deps.view().node,
        from: null,
        to: null,
        term: null,
        reason: req.body?.reason || (damped ? `cleared: ${damped.reason}` : "cleared (was not damped)"),
        requestedBy,
      },
      null,
    );
    deps.log.info({ requested_by: requestedBy, was_damped: damped !== undefined }, "flap damping cleared");
    return reply.code(202).send({ cleared: true, wasDamped: damped !== undefined, ...(damped ? { damped: { at: damped.at, reason: damped.reason } } : {}) });
  });
  app.post<{ Body: { node: string; requested_by?: string; reason?: string } }>("/unban", { schema: UNBAN }, async (req, reply) => {
    await deps.coordinator.unban(req.body.node);
    await record({ kind: "unban", from: null, to: req.body.node, reason: req.body.reason ?? "", requestedBy: who(req, req.body) });
    return reply.code(202).send({ unbanned: req.body.node });
  });
}
