// POST /handover/ready: a planned move's target says whether it can take the
// role now (src/ha/target-check.ts asks it just before the move). Authenticated
// as POST /failsafe/grant is: req_mac keyed with k = failsafeKey(token) (the
// bearer token is never sent to an address read from etcd) or an mTLS client
// certificate; the answer carries the asker's nonce and a MAC keyed with k, so
// a forged `api` URL in etcd cannot make a dead target look ready. Domain
// separation from the failsafe messages is by the MAC inputs' prefixes.
import { createHmac } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { NODE_NAME } from "./validate.js";
import { FAILSAFE_OWN_AUTH, hexMacMatches, peerAuth, type Unauthorized } from "./failsafe.js";
import { refuse, type ApiDeps } from "./server.js";
import type { NodeView } from "../ha/events.js";

export interface ReadyRequestBody {
  readonly node: string;
  /** The member asked: any other member refuses. */
  readonly to: string;
  readonly term: number;
  readonly nonce: string;
  /** Hex HMAC-SHA256(k, readyRequestInput(...)); absent: mTLS only. */
  readonly req_mac?: string;
}

/** The target's facts; target-check.ts judges them. */
export interface ReadyAnswerBody {
  readonly node: string;
  readonly nonce: string;
  readonly acting: "primary" | "standby";
  readonly healthy: boolean;
  readonly etcd_reachable: boolean;
  readonly loop_alive: boolean;
  /** Hex HMAC-SHA256(k, readyAnswerInput(...)); null: this node has no token (mTLS only). */
  readonly mac: string | null;
}

type RequestFields = Pick<ReadyRequestBody, "node" | "to" | "term" | "nonce">;
type AnswerFields = Omit<ReadyAnswerBody, "mac">;

export function readyRequestMac(key: Buffer, r: RequestFields): string {
  return createHmac("sha256", key).update(`understudy-ready-req-v1|${r.node}|${r.to}|${r.term}|${r.nonce}`).digest("hex");
}

export function readyAnswerMac(key: Buffer, a: AnswerFields): string {
  const input = `understudy-ready-ans-v1|${a.node}|${a.nonce}|${a.acting}|${a.healthy}|${a.etcd_reachable}|${a.loop_alive}`;
  return createHmac("sha256", key).update(input).digest("hex");
}

/** The answer from this node's view: GET /standby's and GET /liveness's rules. */
export function readyFacts(v: NodeView, livenessMaxMs: number): Omit<AnswerFields, "node" | "nonce"> {
  return {
    acting: v.acting,
    healthy: v.healthy,
    etcd_reachable: v.etcdReachable,
    loop_alive: v.sinceLastCycleMs !== null && v.sinceLastCycleMs < livenessMaxMs,
  };
}

const readySchema = {
  body: z
    .object({
      node: NODE_NAME,
      to: NODE_NAME,
      term: z.number().int().min(1),
      nonce: z.string().regex(/^[0-9a-f]{32}$/, "must be 32 lower-case hex digits"),
      // Checked by the handler (401), not by the schema (400).
      req_mac: z.string().max(128).optional(),
    })
    // Not strict: a later client's extra field must not make this agent refuse (and cancel the move); the MAC covers the fields read.
    .passthrough(),
};

export function registerReadyRoute(app: FastifyInstance, deps: ApiDeps, unauthorized: Unauthorized): void {
  app.post<{ Body: ReadyRequestBody }>("/handover/ready", { schema: readySchema, config: { [FAILSAFE_OWN_AUTH]: true } }, async (req, reply) => {
    const b = req.body;
    const auth = await peerAuth(deps, req, b.req_mac, (k, mac) => hexMacMatches(readyRequestMac(k, b), mac));
    if ("why" in auth) return unauthorized(req, reply, auth.why);
    const { key } = auth;
    const view = deps.view();
    if (b.to !== view.node) return refuse(reply, 409, "US_E_API_PRECONDITION", `asked ${b.to}, but this is ${view.node}`);
    const fields: AnswerFields = { node: view.node, nonce: b.nonce, ...readyFacts(view, deps.livenessMaxMs) };
    deps.log.info({ from: b.node, term: b.term, ...fields, nonce: undefined }, `asked by ${b.node} whether ready to take over`);
    return reply.code(200).send({ ...fields, mac: key ? readyAnswerMac(key, fields) : null } satisfies ReadyAnswerBody);
  });
}
