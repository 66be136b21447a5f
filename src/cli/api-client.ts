import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { request } from "./http.js";

export interface ApiAnswer<T = unknown> {
  readonly status: number;
  readonly body: T;
}

/** A thin client of one node's REST API, for the CLI. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | null,
    private readonly timeoutMs = 5000,
  ) {}

  /** The same credentials against another node's API. */
  withBaseUrl(baseUrl: string): ApiClient {
    return new ApiClient(baseUrl, this.token, this.timeoutMs);
  }

  /** The same API and credentials with another timeout (a deadline shared by several requests). */
  withTimeout(timeoutMs: number): ApiClient {
    return new ApiClient(this.baseUrl, this.token, timeoutMs);
  }

  async get<T>(path: string): Promise<ApiAnswer<T>> {
    return this.call<T>("GET", path);
  }

  async send<T>(method: "POST" | "DELETE", path: string, body?: unknown): Promise<ApiAnswer<T>> {
    return this.call<T>(method, path, body);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: { status: number; text: string };
    try {
      res = await request(method, new URL(path, this.baseUrl), { headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), timeoutMs: this.timeoutMs });
    } catch (e) {
      throw new UnderstudyError("US_E_API_UNREACHABLE", { url: this.baseUrl, cause: describeError(e) });
    }
    const text = res.text;
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* plain text (metrics) */
    }
    return { status: res.status, body: parsed as T };
  }
}
