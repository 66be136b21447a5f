// The primary's client for a planned move's target's POST /handover/ready
// (src/api/handover-ready.ts): the TargetPeers port of ha/ports.ts. Like the
// failsafe client it sends no bearer token: the request is MAC'd with
// k = failsafeKey(token), and the answer must carry the nonce and a MAC with k.
import { randomBytes } from "node:crypto";
import type { TargetAnswer, TargetPeers } from "../ha/ports.js";
import { describeError } from "../errors/catalogue.js";
import { request, type TlsOptions } from "../platform/http-request.js";
import { failsafeKey, hexMacMatches } from "./failsafe.js";
import { readyAnswerMac, readyRequestMac, type ReadyAnswerBody, type ReadyRequestBody } from "./handover-ready.js";

/** An answer is a few hundred bytes; more is not an answer. */
const MAX_ANSWER = 4096;

export interface ReadyClientOptions {
  /** The cluster-wide API token (re-read at each ask); null: none configured. */
  readonly token: () => Promise<string | null>;
  /** https peers: the CA and this node's client certificate (mTLS). */
  readonly tls?: TlsOptions;
}

export class HandoverReadyClient implements TargetPeers {
  constructor(private readonly options: ReadyClientOptions) {}

  async ask(target: { node: string; api: string }, from: { node: string; term: number }, timeoutMs: number): Promise<TargetAnswer> {
    const token = await this.options.token().catch(() => null);
    const key = token ? failsafeKey(token) : null;
    // Without the token's key only a verified TLS server can vouch for the answer.
    if (!key && !(this.options.tls?.cert !== undefined && target.api.startsWith("https:")))
      return { kind: "cannot ask", why: "no API token on this node, and no mutual TLS to the target, to ask it with" };
    try {
      return await this.askOne(target, from, key, timeoutMs);
    } catch (e) {
      return { kind: "no answer", why: describeError(e) };
    }
  }

  private async askOne(target: { node: string; api: string }, from: { node: string; term: number }, key: Buffer | null, timeoutMs: number): Promise<TargetAnswer> {
    const nonce = randomBytes(16).toString("hex");
    const fields = { node: from.node, to: target.node, term: from.term, nonce };
    const wire: ReadyRequestBody = { ...fields, ...(key ? { req_mac: readyRequestMac(key, fields) } : {}) };
    // With the key the answer is authenticated by its MAC over our nonce, and the request carries no
    // secret: the server's certificate is not what vouches for it (a peer's may not chain to api.tls.client_ca).
    const tls = key ? { ...this.options.tls, rejectUnauthorized: false } : this.options.tls;
    const answer = await request("POST", new URL("/handover/ready", target.api), {
      body: JSON.stringify(wire),
      headers: { "content-type": "application/json" },
      timeoutMs,
      maxBytes: MAX_ANSWER,
      ...(tls ? { tls } : {}),
    });
    let a: Partial<ReadyAnswerBody> & { message?: unknown };
    try {
      a = JSON.parse(answer.text) as typeof a;
    } catch {
      return { kind: "no answer", why: `HTTP ${answer.status}, not a JSON answer` };
    }
    if (typeof a !== "object" || a === null) return { kind: "no answer", why: `HTTP ${answer.status}, not a JSON object` };
    const said = typeof a.message === "string" ? a.message.slice(0, 300) : "no reason";
    if (answer.status === 401 && said.startsWith("no API token is configured")) {
      // This node holds the cluster's token, so the target should too: a node set up without it (its
      // own API and failsafe grants unauthenticated), or an answer that did not come from the target
      // (the server's certificate is not checked for this call). Either way not an answer to go on by.
      if (key) return { kind: "no answer", why: `HTTP 401: the target says it has no API token (${said}) while this node has one; set api.token_file on every node` };
      // Asked over verified mutual TLS without a token: the target is who it says, and cannot authenticate anyone.
      return { kind: "cannot ask", why: `the target cannot authenticate the question (${said})` };
    }
    if (answer.status !== 200) return { kind: "no answer", why: `HTTP ${answer.status}: ${said}` };
    const { acting, healthy, etcd_reachable, loop_alive } = a;
    if (
      a.node !== target.node ||
      a.nonce !== nonce ||
      (acting !== "primary" && acting !== "standby") ||
      typeof healthy !== "boolean" ||
      typeof etcd_reachable !== "boolean" ||
      typeof loop_alive !== "boolean"
    )
      return { kind: "no answer", why: "the answer does not match the request (node, nonce or fields)" };
    // With a token the answer must be signed with it; without one it came over verified mutual TLS.
    if (key && !hexMacMatches(readyAnswerMac(key, { node: a.node, nonce, acting, healthy, etcd_reachable, loop_alive }), a.mac))
      return { kind: "no answer", why: "the answer's MAC does not verify (another API token?)" };
    return { kind: "answer", acting, healthy, etcdReachable: etcd_reachable, loopAlive: loop_alive };
  }
}
