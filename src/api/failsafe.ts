// Failsafe grants over the agents' API (docs/failsafe-design.md, "Messages").
// POST /failsafe/grant is a mutation (bearer token or mTLS, checked by the
// server's onRequest hook); the answer is the failsafe planner's decision
// (answerGrant), signed with an HMAC keyed by the API token over the
// primary's nonce, so a grant cannot be forged or replayed on the way back.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { grantMacInput, type GrantAnswer, type GrantRequest } from "../ha/failsafe.js";
import type { ApiDeps } from "./server.js";

/** The wire form of an answer (snake_case, as every API body). */
export interface GrantAnswerBody {
  readonly node: string;
  readonly granted: boolean;
  readonly lease_ms: number;
  readonly nonce: string;
  readonly promised_for_ms: number;
  readonly reason: string;
  /** Hex HMAC-SHA256(token, grantMacInput(answer)); null when this node has no token (mTLS only: cannot sign). */
  readonly mac: string | null;
}

export function grantMac(token: string, a: Pick<GrantAnswer, "node" | "granted" | "leaseMs" | "nonce">): string {
  return createHmac("sha256", token).update(grantMacInput(a)).digest("hex");
}

/** Constant-time check of an answer's MAC against the token. */
export function grantMacMatches(token: string, a: Pick<GrantAnswer, "node" | "granted" | "leaseMs" | "nonce">, mac: string | null): boolean {
  if (mac === null || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return timingSafeEqual(Buffer.from(grantMac(token, a), "hex"), Buffer.from(mac, "hex"));
}

const NAME = { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" } as const;
const grantSchema = {
  body: {
    type: "object",
    properties: {
      node: NAME,
      term: { type: "integer", minimum: 1 },
      // etcd's lease TTLs are whole seconds; an hour is far beyond any election.ttl.
      lease_ms: { type: "integer", minimum: 1000, maximum: 3_600_000 },
      nonce: { type: "string", pattern: "^[0-9a-f]{32}$" },
    },
    required: ["node", "term", "lease_ms", "nonce"],
    additionalProperties: false,
  },
} as const;

export function registerFailsafeRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<{ Body: { node: string; term: number; lease_ms: number; nonce: string } }>("/failsafe/grant", { schema: grantSchema }, async (req, reply) => {
    const request: GrantRequest = { node: req.body.node, term: req.body.term, leaseMs: req.body.lease_ms, nonce: req.body.nonce };
    const node = deps.view().node;
    const answer: GrantAnswer = deps.failsafe
      ? deps.failsafe.answer(request)
      : { node, granted: false, leaseMs: request.leaseMs, nonce: request.nonce, promisedForMs: 0, reason: "refused: failsafe is not wired on this node" };
    const token = deps.tokenSource ? await deps.tokenSource.get() : deps.token;
    const body: GrantAnswerBody = {
      node: answer.node,
      granted: answer.granted,
      lease_ms: answer.leaseMs,
      nonce: answer.nonce,
      promised_for_ms: answer.promisedForMs,
      reason: answer.reason,
      mac: token ? grantMac(token, answer) : null,
    };
    // Every answer is logged: a grant binds this node not to campaign, a refusal makes the primary fence.
    deps.log[answer.granted ? "info" : "warn"]({ from: request.node, term: request.term, lease_ms: request.leaseMs }, `failsafe grant request: ${answer.reason}`);
    return reply.code(answer.granted ? 200 : 409).send(body);
  });
}
