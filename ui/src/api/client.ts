import type { ApiErrorBody } from "./types";

/** An answer of the API other than 2xx, in its one error shape. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export async function errorFrom(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as ApiErrorBody;
    if (body?.error?.message) {
      return new ApiError(response.status, body.error.code, body.error.message, body.error.field ?? null);
    }
  } catch {
    // not our JSON shape (e.g. a proxy's page): fall through to the status line
  }
  return new ApiError(response.status, "error", `${response.status} ${response.statusText}`.trim(), null);
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * Calls the API with the caller's bearer token (always in the Authorization header, never in
 * a URL); a 401 reports the token as no longer valid so that the login screen comes back.
 */
export class ApiClient {
  readonly token: string;
  private readonly onUnauthorized: () => void;

  constructor(token: string, onUnauthorized: () => void) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  get headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
  }

  async send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    const response = await this.send("GET", withQuery(path, query), undefined, signal);
    return (await response.json()) as T;
  }

  async getText(path: string, signal?: AbortSignal): Promise<string> {
    const response = await this.send("GET", path, undefined, signal);
    return response.text();
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    const response = await this.send("POST", path, body);
    return (await response.json()) as T;
  }

  async delete(path: string, query?: Query): Promise<void> {
    await this.send("DELETE", withQuery(path, query));
  }
}

/** Calls that need no token: GET /config and the standalone login. */
export async function fetchPublic<T>(path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? { Accept: "application/json" }
      : { Accept: "application/json", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as T;
}
