// The one HTTP client: same-origin `fetch` with the HttpOnly session cookie (never a token in
// script-readable storage), JSON in and out, and errors as `ApiError` in the server's
// `{"error": {code, message, details}}` shape.

export interface Problem {
  field: string;
  code: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details: unknown = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Builds an `ApiError` from a response body, whatever it holds. */
export function toApiError(status: number, body: unknown): ApiError {
  if (body && typeof body === 'object' && 'error' in body) {
    const e = (body as { error: unknown }).error;
    if (e && typeof e === 'object') {
      const o = e as Record<string, unknown>;
      return new ApiError(
        status,
        typeof o.code === 'string' ? o.code : 'error',
        typeof o.message === 'string' ? o.message : `request failed (${status})`,
        o.details ?? null,
      );
    }
  }
  return new ApiError(status, 'error', `request failed (${status})`);
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

export async function api<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  return request<T>(method, path, body === undefined ? undefined : { text: JSON.stringify(body), contentType: 'application/json' }, query);
}

/** Sends `body.text` as it is, with its content type (a JSONL or CSV upload). */
export function upload<T>(path: string, text: string, contentType: string, query?: Query): Promise<T> {
  return request<T>('POST', path, { text, contentType }, query);
}

async function request<T>(method: string, path: string, body: { text: string; contentType: string } | undefined, query?: Query): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.body = body.text;
    init.headers = { ...init.headers, 'content-type': body.contentType };
  }
  const res = await fetch(withQuery(path, query), init);
  const text = await res.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!res.ok) {
    const err = toApiError(res.status, parsed);
    if (res.status === 401 && !path.startsWith('/api/auth/login')) {
      window.dispatchEvent(new CustomEvent('formaops:unauthorized'));
    }
    throw err;
  }
  return parsed as T;
}

export const get = <T>(path: string, query?: Query) => api<T>('GET', path, undefined, query);
export const post = <T>(path: string, body?: unknown, query?: Query) => api<T>('POST', path, body ?? {}, query);
export const put = <T>(path: string, body: unknown) => api<T>('PUT', path, body);
export const del = <T>(path: string) => api<T>('DELETE', path);
