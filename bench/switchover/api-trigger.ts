/**
 * `bench/switchover --trigger api`: the switchover requested by one HTTP POST
 * from a client already running in the lab's client namespace
 * (api-client.mjs), as an automation system calls the REST API, instead of a
 * CLI process whose Node start-up shares the host's cores with the move.
 */
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { killGroup } from "../../test/lab/harness/exec.js";
import { type LabCluster, pollUntil } from "../../test/lab/harness/index.js";

const API_CLIENT = join(dirname(new URL(import.meta.url).pathname), "api-client.mjs");

export interface ApiReply {
  status?: number;
  body?: string;
  ms?: number;
  error?: string;
}

/** `--trigger api`: one resident client in the client namespace (api-client.mjs), one POST per switchover. */
export class ApiTrigger {
  private readonly replies: string[] = [];
  private buf = "";
  private constructor(
    private readonly c: LabCluster,
    private readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        this.replies.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
  }

  static start(c: LabCluster): ApiTrigger {
    const child = c.lab.spawn(c.lab.client, [process.execPath, API_CLIENT, c.tokenFile], { stdio: ["pipe", "pipe", "ignore"] });
    child.stdin?.on("error", () => undefined);
    return new ApiTrigger(c, child);
  }

  /** POSTs `body` to `via`'s API; the reply (bounded: 12 s). */
  async post(via: string, path: string, body: unknown): Promise<ApiReply> {
    const before = this.replies.length;
    this.child.stdin?.write(`${JSON.stringify({ url: `${this.c.apiUrl(via)}${path}`, body })}\n`);
    const line = await pollUntil(() => this.replies[before], { timeoutMs: 12_000, intervalMs: 5 });
    if (line === undefined) throw new Error("the resident API client did not answer within 12 s");
    return JSON.parse(line) as ApiReply;
  }

  stop(): void {
    this.child.stdin?.end();
    killGroup(this.child.pid);
  }
}
