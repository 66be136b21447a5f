import { UnderstudyError } from "../errors/catalogue.js";

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
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new UnderstudyError("US_E_API_UNREACHABLE", { url: this.baseUrl, cause: e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e) });
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* plain text (metrics) */
    }
    return { status: res.status, body: parsed as T };
  }
}
