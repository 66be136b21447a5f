import type { Etcd3 } from "etcd3";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Clock, TimerHandle } from "../platform/clock.js";

interface StreamLike {
  write(item: { ID: string }): void;
  on(event: "data", fn: (item: { ID: string; TTL: string }) => void): unknown;
  on(event: "error", fn: (err: Error) => void): unknown;
  on(event: "end", fn: () => void): unknown;
  cancel(): void;
}

interface Waiter {
  readonly id: string;
  resolve(v: { ttlMs: number }): void;
  reject(e: Error): void;
}

/**
 * One keepalive stream, one request in flight at a time. A request that times
 * out tears the stream down so its late answer can never be credited to a
 * later send (the lease deadline is computed from the send time).
 */
export class KeepAliveChannel {
  private stream: StreamLike | undefined;
  private opening: Promise<StreamLike> | undefined;
  private waiter: Waiter | undefined;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly client: Etcd3,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  send(leaseId: string): Promise<{ ttlMs: number }> {
    const run = this.busy.then(() => this.sendOne(leaseId));
    this.busy = run.catch(() => undefined);
    return run;
  }

  private async sendOne(leaseId: string): Promise<{ ttlMs: number }> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.clock.setTimer(this.timeoutMs, () => {
        const err = new UnderstudyError("US_E_ETCD_TIMEOUT", { request: `the keepalive for lease ${leaseId}`, timeout_ms: this.timeoutMs });
        this.reset(err);
        reject(err);
      });
    });
    try {
      return await Promise.race([this.exchange(leaseId), timeout]);
    } finally {
      timer?.cancel();
    }
  }

  private async exchange(leaseId: string): Promise<{ ttlMs: number }> {
    const stream = await this.open();
    return new Promise((resolve, reject) => {
      this.waiter = { id: leaseId, resolve, reject };
      stream.write({ ID: leaseId });
    });
  }

  private open(): Promise<StreamLike> {
    if (this.stream) return Promise.resolve(this.stream);
    if (!this.opening) {
      this.opening = (this.client.leaseClient.leaseKeepAlive() as Promise<unknown> as Promise<StreamLike>).then(
        (s) => {
          this.opening = undefined;
          this.stream = s;
          s.on("data", (res) => {
            const w = this.waiter;
            this.waiter = undefined;
            if (w && String(res.ID) === w.id) w.resolve({ ttlMs: Number(res.TTL) * 1000 });
            else if (w) w.reject(new UnderstudyError("US_E_ETCD_KEEPALIVE", { problem: `answered for lease ${res.ID}, expected ${w.id}` }));
          });
          s.on("error", (err) => this.reset(err, s));
          s.on("end", () => this.reset(new UnderstudyError("US_E_ETCD_KEEPALIVE", { problem: "ended" }), s));
          return s;
        },
        (e: unknown) => {
          this.opening = undefined;
          throw e;
        },
      );
    }
    return this.opening;
  }

  private reset(err: Error, which?: StreamLike): void {
    if (which && which !== this.stream) return;
    const s = this.stream;
    this.stream = undefined;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
    try {
      s?.cancel();
    } catch {
      /* already closed */
    }
  }

  close(): void {
    this.reset(new UnderstudyError("US_E_ETCD_KEEPALIVE", { problem: "was closed: the agent is stopping" }));
  }
}
