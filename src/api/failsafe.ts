// Failsafe grants over the agents' API (docs/failsafe-design.md, "Messages").
// POST /failsafe/grant carries no secret: the request is authenticated by
// req_mac, an HMAC keyed with the failsafe key k = HMAC-SHA256(token,
// "understudy-failsafe-key-v1") over the request's fields (or by an mTLS
// client certificate), never by the bearer token, so an eavesdropper on plain
// http or a forged `api` URL in etcd never learns the token or k. The answer
// is the failsafe planner's decision (answerGrant), signed with k over the
// primary's nonce, so a grant cannot be forged or replayed on the way back;
// the request's `to` and `seq` (under req_mac) keep a captured request from
// being replayed on the way in, to its member or another (S7).
import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { NODE_NAME } from "./validate.js";
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
  /** Hex HMAC-SHA256(k, grantMacInput(answer)), k = failsafeKey(token); null when this node has no token (mTLS only: cannot sign). */
  readonly mac: string | null;
}

/** The wire form of a request: the GrantRequest fields and their MAC. */
export interface GrantRequestBody {
  readonly node: string;
  /** The member asked (GrantRequest.to): any other member refuses the request. */
  readonly to: string;
  readonly term: number;
  readonly lease_ms: number;
  readonly nonce: string;
  /** GrantRequest.seq: above the last one this member answered from the sender in this term, or refused (S7). */
  readonly seq: number;
  /** Hex HMAC-SHA256(k, requestMacInput(request)). */
  readonly req_mac?: string;
}

/** Route config flag: the server's bearer hook leaves this route's authentication to the route. */
export const FAILSAFE_OWN_AUTH = "failsafeOwnAuth";

type AnswerFields = Pick<GrantAnswer, "node" | "granted" | "leaseMs" | "nonce">;

/** k: the failsafe key, derived from the cluster-wide API token; neither leaves the node. */
export function failsafeKey(token: string): Buffer {
  return createHmac("sha256", token).update("understudy-failsafe-key-v1").digest();
}

/**
 * The canonical request string; its prefix differs from grantMacInput's, so a request MAC is never an
 * answer MAC. v2 covers the member asked and seq (S7); a v1 request has neither and is refused
 * (400), as a v2 request is by a v1 agent (unknown fields): a mixed-version pair fences as without failsafe.
 */
export function requestMacInput(r: GrantRequest): string {
  return `understudy-failsafe-req-v2|${r.node}|${r.to}|${r.term}|${r.leaseMs}|${r.seq}|${r.nonce}`;
}

export function requestMac(key: Buffer, r: GrantRequest): string {
  return createHmac("sha256", key).update(requestMacInput(r)).digest("hex");
}

export function grantMac(key: Buffer, a: AnswerFields): string {
  return createHmac("sha256", key).update(grantMacInput(a)).digest("hex");
}

/** Constant-time compare of a hex MAC with the one expected (also POST /handover/ready's). */
export function hexMacMatches(expected: string, mac: string | null | undefined): boolean {
  if (typeof mac !== "string" || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(mac, "hex"));
}

/** Constant-time check of a request's MAC against k. */
export function requestMacMatches(key: Buffer, r: GrantRequest, mac: string | null | undefined): boolean {
  return hexMacMatches(requestMac(key, r), mac);
}

/** Constant-time check of an answer's MAC against k. */
export function grantMacMatches(key: Buffer, a: AnswerFields, mac: string | null | undefined): boolean {
  return hexMacMatches(grantMac(key, a), mac);
}

const grantSchema = {
  body: z
    .object({
      node: NODE_NAME,
      to: NODE_NAME,
      term: z.number().int().min(1),
      // etcd's lease TTLs are whole seconds; an hour is far beyond any election.ttl.
      lease_ms: z.number().int().min(1000).max(3_600_000),
      nonce: z.string().regex(/^[0-9a-f]{32}$/, "must be 32 lower-case hex digits"),
      seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
      // Checked by the handler (401 when missing or wrong), not by the schema (400).
      req_mac: z.string().max(128).optional(),
    })
    .strict(),
};

/** Refuse as the server's bearer hook does (401, rate-limited log line). */
export type Unauthorized = (req: FastifyRequest, reply: FastifyReply, why: string) => FastifyReply;

/**
 * Who may call a peer route (this one, POST /handover/ready): a req_mac that verifies under k (one
 * that is sent must verify, even with mTLS: a wrong one means another token, so the answer could not
 * verify either), else a client certificate signed by api.tls.client_ca; a bearer token does not
 * count. k comes from the current token (api.token_file is re-read when it changes), null without one.
 */
export async function peerAuth(deps: ApiDeps, req: FastifyRequest, sent: string | undefined, macMatches: (key: Buffer, mac: string) => boolean): Promise<{ key: Buffer | null } | { why: string }> {
  const token = deps.tokenSource ? await deps.tokenSource.get() : deps.token;
  const key = token ? failsafeKey(token) : null;
  const mtls = deps.tls?.clientCa !== undefined && (req.raw.socket as { authorized?: boolean }).authorized === true;
  if (sent !== undefined ? key && macMatches(key, sent) : mtls) return { key };
  return { why: key === null ? "no API token is configured on this node (api.token_file)" : sent === undefined ? "missing req_mac" : "wrong req_mac (another API token?)" };
}

export function registerFailsafeRoutes(app: FastifyInstance, deps: ApiDeps, unauthorized: Unauthorized): void {
  app.post<{ Body: GrantRequestBody }>("/failsafe/grant", { schema: grantSchema, config: { [FAILSAFE_OWN_AUTH]: true } }, async (req, reply) => {
    const b = req.body;
    const request: GrantRequest = { node: b.node, to: b.to, term: b.term, leaseMs: b.lease_ms, nonce: b.nonce, seq: b.seq };
    const auth = await peerAuth(deps, req, b.req_mac, (k, mac) => requestMacMatches(k, request, mac));
    if ("why" in auth) return unauthorized(req, reply, auth.why);
    const { key } = auth;
    const node = deps.view().node;
    const answer: GrantAnswer = deps.failsafe
      ? await deps.failsafe.answer(request)
      : { node, granted: false, leaseMs: request.leaseMs, nonce: request.nonce, promisedForMs: 0, reason: "refused: failsafe is not wired on this node" };
    const body: GrantAnswerBody = {
      node: answer.node,
      granted: answer.granted,
      lease_ms: answer.leaseMs,
      nonce: answer.nonce,
      promised_for_ms: answer.promisedForMs,
      reason: answer.reason,
      mac: key ? grantMac(key, answer) : null,
    };
    // Every answer is logged: a grant binds this node not to campaign, a refusal makes the primary fence.
    deps.log[answer.granted ? "info" : "warn"]({ from: request.node, term: request.term, lease_ms: request.leaseMs, seq: request.seq }, `failsafe grant request: ${answer.reason}`);
    return reply.code(answer.granted ? 200 : 409).send(body);
  });
}
