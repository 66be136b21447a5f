// The failsafe primary's client for the other agents' POST /failsafe/grant
// (docs/failsafe-design.md, "Messages"): the FailsafePeers port of ha/ports.ts.
// One request per member with the platform's node:http helper (no undici load in the agent).
// The request carries no secret (no bearer token): it is authenticated by
// req_mac, keyed with k = failsafeKey(token), and the answer must carry a MAC
// keyed with k too. A member's `api` URL comes from etcd (untrusted), so
// whoever it points to learns a nonce and a MAC, never the token or k.
import { randomBytes } from "node:crypto";
import type { FailsafePeers, FailsafeVerdict } from "../ha/ports.js";
import { failsafeKey, grantMacMatches, requestMac, type GrantAnswerBody, type GrantRequestBody } from "./failsafe.js";
import { describeError } from "../errors/catalogue.js";
import { request } from "../platform/http-request.js";

/** An answer is a few hundred bytes; more is not an answer. */
const MAX_ANSWER = 4096;

export interface FailsafePeerOptions {
  /** The cluster-wide API token (re-read at each round): k = failsafeKey(token) signs the request and checks the answer; never sent. */
  readonly token: () => Promise<string | null>;
  /** https peers: the CA that signed their API certificates, and this node's client certificate (mTLS). */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Wall-clock ms (Clock.wallMs): the first request's seq, so a restarted agent's requests go on above its last run's (S7). */
  readonly wallMs: () => number;
}

export class FailsafePeerClient implements FailsafePeers {
  /** The last request's seq: strictly increasing, at least the wall clock (S7). */
  private seq = 0;

  constructor(private readonly options: FailsafePeerOptions) {}

  private nextSeq(): number {
    this.seq = Math.max(this.seq + 1, Math.floor(this.options.wallMs()));
    return this.seq;
  }

  async ask(
    targets: readonly { readonly node: string; readonly api: string }[],
    request: { readonly node: string; readonly term: number; readonly leaseMs: number },
    timeoutMs: number,
  ): Promise<ReadonlyMap<string, FailsafeVerdict>> {
    const token = await this.options.token().catch(() => null);
    const key = token ? failsafeKey(token) : null;
    const verdicts = await Promise.all(
      targets.map(async (t): Promise<[string, FailsafeVerdict]> => {
        if (!key) return [t.node, { granted: false, why: "no API token on this node to ask or to check an answer with" }];
        try {
          return [t.node, await this.askOne(t, request, key, timeoutMs)];
        } catch (e) {
          return [t.node, { granted: false, why: describeError(e) }];
        }
      }),
    );
    return new Map(verdicts);
  }

  private async askOne(t: { node: string; api: string }, r: { node: string; term: number; leaseMs: number }, key: Buffer, timeoutMs: number): Promise<FailsafeVerdict> {
    const nonce = randomBytes(16).toString("hex");
    const fields = { node: r.node, to: t.node, term: r.term, leaseMs: r.leaseMs, nonce, seq: this.nextSeq() };
    const wire: GrantRequestBody = { node: r.node, to: t.node, term: r.term, lease_ms: r.leaseMs, nonce, seq: fields.seq, req_mac: requestMac(key, fields) };
    const url = new URL("/failsafe/grant", t.api);
    // No authorization header: the bearer token never leaves the node on this path (req_mac in the body instead).
    const answer = await request("POST", url, {
      body: JSON.stringify(wire),
      headers: { "content-type": "application/json" },
      timeoutMs,
      maxBytes: MAX_ANSWER,
      ...(this.options.tls ? { tls: this.options.tls } : {}),
    });
    let a: GrantAnswerBody;
    try {
      a = JSON.parse(answer.text) as GrantAnswerBody;
    } catch {
      return { granted: false, why: `HTTP ${answer.status}, not a JSON answer` };
    }
    if (typeof a !== "object" || a === null) return { granted: false, why: `HTTP ${answer.status}, not a JSON object` };
    // A refusal has a reason (409) or, from the server's checks (400, 401), a message.
    const said = (a as { reason?: unknown; message?: unknown }).reason ?? (a as { message?: unknown }).message;
    if (answer.status !== 200) return { granted: false, why: `HTTP ${answer.status}: ${typeof said === "string" ? said.slice(0, 300) : "no reason"}` };
    // Only the member asked, for this lease and this nonce, signed with k (the cluster token's failsafe key), counts (P4).
    if (a.node !== t.node || a.granted !== true || a.lease_ms !== r.leaseMs || a.nonce !== nonce)
      return { granted: false, why: "the answer does not match the request (node, verdict, lease or nonce)" };
    if (!grantMacMatches(key, { node: a.node, granted: a.granted, leaseMs: a.lease_ms, nonce: a.nonce }, a.mac)) return { granted: false, why: "the answer's MAC does not verify" };
    return { granted: true };
  }
}
