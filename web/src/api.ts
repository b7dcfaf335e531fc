// The one way the UI talks to the server: JSON over fetch, same-origin cookies, the CSRF header on
// every state change, and error bodies turned into ApiError.

export interface ErrorDetail {
  path?: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  constructor(status: number, code: string, message: string, details: ErrorDetail[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
  /** The messages of the details that name a field, keyed by that field. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) {
      if (!d.path) continue;
      const key = d.path.replace(/^data\./, '');
      out[key] = out[key] ? `${out[key]}; ${d.message}` : d.message;
    }
    return out;
  }
}

let csrfToken: string | undefined;
let onUnauthenticated: (() => void) | undefined;

export function setCsrfToken(token: string | undefined) {
  csrfToken = token;
}

/** Called when the server says the session is gone (so the app can show the login page). */
export function setUnauthenticatedHandler(fn: (() => void) | undefined) {
  onUnauthenticated = fn;
}

async function toError(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const e = (body as { error?: { code?: string; message?: string; details?: ErrorDetail[] } })?.error;
  return new ApiError(
    res.status,
    e?.code ?? (res.status >= 500 ? 'internal' : 'error'),
    e?.message ?? res.statusText ?? `HTTP ${res.status}`,
    Array.isArray(e?.details) ? e.details : [],
  );
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', (e as Error).message || 'Network error');
  }
  if (!res.ok) {
    const err = await toError(res);
    if (err.code === 'unauthenticated' && !path.startsWith('/api/auth/') && path !== '/api/me')
      onUnauthenticated?.();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('json')) return (await res.text()) as T;
  return (await res.json()) as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  patch: <T>(path: string, body?: unknown) => request<T>('PATCH', path, body ?? {}),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, body ?? {}),
  del: <T = void>(path: string) => request<T>('DELETE', path),
};

/** Encodes one path segment (module names, ids). */
export const seg = (s: string) => encodeURIComponent(s);
