import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { settlesWithin, type Clock } from "../platform/clock.js";
import type { Logger } from "../platform/logger.js";

export interface WebhookOptions {
  /** http(s) URL; its path and query may carry a token, so only its origin is ever logged. */
  readonly url: string;
  /** Per attempt. */
  readonly timeoutMs: number;
  /** Further attempts after the first, for network errors, timeouts, 5xx and 429. */
  readonly retries: number;
  /** Sent with every request; values may be credentials and are never logged. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface WebhookDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly cluster: string;
  readonly node: string;
  /** Undelivered events kept; the oldest is dropped beyond this. Default 100. */
  readonly queueLimit?: number;
  /** How long close() waits for deliveries in progress. Default 2000 ms. */
  readonly closeTimeoutMs?: number;
}

/** The first retry waits this long, each later one twice as long as the one before. */
export const WEBHOOK_FIRST_BACKOFF_MS = 200;

type Verdict = { ok: true } | { ok: false; retry: boolean; cause: string };

/**
 * Posts events as JSON to one URL. Guarantees: notify() returns at once and
 * never throws; events are delivered one at a time in order; a failed delivery
 * is retried with backoff, then logged and dropped; at most queueLimit events
 * wait, the oldest dropped (and logged) first; no URL path, query or header
 * value is ever logged.
 */
export class Webhook {
  private readonly queue: Record<string, unknown>[] = [];
  private readonly origin: string;
  private readonly headers: Record<string, string>;
  private readonly limit: number;
  private readonly stop = new AbortController();
  private pumping: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly options: WebhookOptions,
    private readonly deps: WebhookDeps,
  ) {
    this.origin = checkUrl(options.url);
    const bad = (setting: string, problem: string) => new UnderstudyError("US_E_HOOK_CONFIG", { setting: `hooks.webhook.${setting}`, problem });
    if (!(options.timeoutMs > 0)) throw bad("timeout", "must be greater than 0");
    if (!Number.isInteger(options.retries) || options.retries < 0) throw bad("retries", "must be a whole number, 0 or more");
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw bad("headers", `${JSON.stringify(name)} is not an HTTP header name`);
      if (/[\r\n\0]/.test(value)) throw bad(`headers.${name}`, "must not contain line breaks");
    }
    this.headers = { ...options.headers, "content-type": "application/json" };
    this.limit = deps.queueLimit ?? 100;
    if (!(this.limit >= 1)) throw bad("queue", "must hold at least 1 event");
  }

  /** Queue `event` (plus cluster, node and the time) for delivery; returns at once. */
  notify(event: object): void {
    try {
      if (this.closed) {
        this.deps.log.debug({ event: typeOf(event) }, "webhook closed: event not sent");
        return;
      }
      const at = new Date(this.deps.clock.wallMs()).toISOString();
      this.queue.push({ ...event, cluster: this.deps.cluster, node: this.deps.node, at });
      if (this.queue.length > this.limit) {
        const dropped = this.queue.shift()!;
        const e = new UnderstudyError("US_E_WEBHOOK_DROPPED", { limit: this.limit, event: typeOf(dropped) });
        this.deps.log.warn({ webhook: this.origin }, e.message);
      }
      this.pumping ??= this.pump();
    } catch {
      // Never the caller's problem: an event that cannot be serialised or logged is lost.
    }
  }

  /** Events waiting, not counting the one being delivered. */
  pending(): number {
    return this.queue.length;
  }

  /** Stop taking events; wait (bounded) for those queued, then abandon the rest. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pumping) {
      if (!(await settlesWithin(this.deps.clock, this.deps.closeTimeoutMs ?? 2000, this.pumping)))
        this.deps.log.warn({ webhook: this.origin, undelivered: this.queue.length + 1 }, "webhook: shutting down with events undelivered");
    }
    this.queue.length = 0;
    this.stop.abort();
    await this.pumping?.catch(() => undefined);
  }

  private async pump(): Promise<void> {
    try {
      for (let next = this.queue.shift(); next && !this.stop.signal.aborted; next = this.queue.shift()) await this.deliver(next);
    } catch (e) {
      this.deps.log.error({ webhook: this.origin, err: describeError(e) }, "webhook delivery loop failed");
    } finally {
      this.pumping = null;
      // An event queued while the last delivery was finishing gets its own pump.
      if (this.queue.length > 0 && !this.stop.signal.aborted) this.pumping = this.pump();
    }
  }

  private async deliver(payload: Record<string, unknown>): Promise<void> {
    const { clock, log } = this.deps;
    let body: string;
    try {
      body = JSON.stringify(payload);
    } catch (e) {
      log.warn({ webhook: this.origin, event: typeOf(payload), err: describeError(e) }, "webhook event cannot be encoded as JSON; dropped");
      return;
    }
    let attempts = 0;
    for (;;) {
      attempts++;
      const verdict = await this.post(body);
      if (verdict.ok) {
        log.debug({ webhook: this.origin, event: typeOf(payload), attempts }, "webhook event delivered");
        return;
      }
      if (!verdict.retry || attempts > this.options.retries || this.stop.signal.aborted) {
        const e = new UnderstudyError("US_E_WEBHOOK_FAILED", { event: typeOf(payload), origin: this.origin, attempts, cause: verdict.cause });
        log.warn({ webhook: this.origin }, e.message);
        return;
      }
      const waitMs = WEBHOOK_FIRST_BACKOFF_MS * 2 ** (attempts - 1);
      log.debug({ webhook: this.origin, attempts, wait_ms: waitMs, cause: verdict.cause }, "webhook delivery failed; retrying");
      const slept = await clock.sleep(waitMs, this.stop.signal).then(
        () => true,
        () => false,
      );
      if (!slept) return;
    }
  }

  private async post(body: string): Promise<Verdict> {
    try {
      const res = await fetch(this.options.url, {
        method: "POST",
        headers: this.headers,
        body,
        // A redirect would resend the headers elsewhere: treat it as a refusal.
        redirect: "manual",
        signal: AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs), this.stop.signal]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return { ok: false, retry: res.status >= 500 || res.status === 429, cause: `HTTP ${res.status}` };
    } catch (e) {
      return { ok: false, retry: true, cause: this.scrub(networkCause(e)) };
    }
  }

  /** Error texts should not hold the URL, but make sure the path and query never reach a log. */
  private scrub(text: string): string {
    return text.split(this.options.url).join(this.origin);
  }
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UnderstudyError("US_E_HOOK_CONFIG", { setting: "hooks.webhook.url", problem: "must be an http or https URL" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UnderstudyError("US_E_HOOK_CONFIG", { setting: "hooks.webhook.url", problem: "must be an http or https URL" });
  }
  return parsed.origin;
}

function typeOf(event: object): string {
  const t = (event as { type?: unknown }).type;
  return typeof t === "string" ? t : "(untyped)";
}

/** fetch() says "fetch failed" and puts the reason (ECONNREFUSED, a timeout) in `cause`. */
function networkCause(e: unknown): string {
  if (e instanceof Error && e.name === "TimeoutError") return "timed out";
  const cause = e instanceof Error ? (e.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === "string") return cause.code;
  if (cause && typeof cause.message === "string") return cause.message;
  return describeError(e);
}
