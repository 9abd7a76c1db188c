/**
 * The page's calls to the token service (same origin). Refusals become {@link ApiError} with
 * the service's `reason`; network failures are retryable, 4xx answers are not.
 */

/** `POST /api/identity` answer. */
export interface IssuedIdentity {
  identity: string;
  deviceSecret: string;
}

/** `POST /api/token` answer. */
export interface IssuedToken {
  url: string;
  token: string;
  room: string;
  reused: boolean;
  policy: string | null;
  rejoinTtlMs: number;
}

/** `GET /api/config` answer. */
export interface ServiceConfig {
  rejoinTtlMs: number;
  policies: string[];
  defaultPolicy: string | null;
}

/** A refused or failed call. */
export class ApiError extends Error {
  constructor(
    /** HTTP status, 0 when the service could not be reached. */
    readonly status: number,
    /** The service's machine-readable reason (`invalid_credentials`, `room_not_issued`, …). */
    readonly reason: string,
    message: string,
    /** How long the service asked to wait before trying again (`Retry-After`, a 429 or 503), ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
  /** Whether trying again may help (network trouble, 5xx, 429). */
  get retryable(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 429;
  }
}

/** A `Retry-After` header in seconds (the service's form), as ms; undefined when absent or not a number of seconds. */
export function retryAfterMs(header: string | null): number | undefined {
  if (header === null || !/^\d{1,6}$/.test(header.trim())) return undefined;
  return Number(header.trim()) * 1000;
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      cache: 'no-store',
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    throw new ApiError(0, 'network', err instanceof Error ? err.message : 'network error');
  }
  let json: unknown = null;
  try {
    json = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const j = (json ?? {}) as { reason?: unknown; message?: unknown };
    throw new ApiError(res.status, typeof j.reason === 'string' ? j.reason : `http_${res.status}`, typeof j.message === 'string' ? j.message : res.statusText, retryAfterMs(res.headers.get('retry-after')));
  }
  return json as T;
}

/** Asks the service for a new identity and device secret. */
export function createIdentity(signal?: AbortSignal): Promise<IssuedIdentity> {
  return call('POST', '/api/identity', {}, signal);
}

/**
 * Asks for a token; `room` = reuse that room, `policy` = demo request, `language` = the page's
 * language (BCP 47), `languageChosen` = the participant picked it (the language menu), not the browser.
 */
export function requestToken(
  req: { identity: string; deviceSecret: string; room?: string; policy?: string; language?: string; languageChosen?: boolean },
  signal?: AbortSignal,
): Promise<IssuedToken> {
  return call('POST', '/api/token', req, signal);
}

/**
 * Asks the service to send the agent into `room` (issued to this identity) when it has not
 * arrived: `dispatched`, `present`, `pending` (one is on its way) or `no_room`.
 */
export function requestAgent(req: { identity: string; deviceSecret: string; room: string }): Promise<{ agent: 'dispatched' | 'present' | 'pending' | 'no_room' }> {
  return call('POST', '/api/agent', req);
}

/** Erases the identity's sessions and its device credential. */
export function forgetIdentity(req: { identity: string; deviceSecret: string }): Promise<{ forgotten: boolean; sessionKeysErased: number; roomsClosed: number }> {
  return call('POST', '/api/forget', req);
}

/** Everything the service keeps about the identity (its conversations, profile and archive), as JSON. */
export function exportIdentity(req: { identity: string; deviceSecret: string }): Promise<{ identity: string; agents: unknown[] }> {
  return call('POST', '/api/export', req);
}

/** The service's public settings. */
export function fetchConfig(): Promise<ServiceConfig> {
  return call('GET', '/api/config');
}

/**
 * The browser's language as a tag the service accepts (`navigator.language`, e.g. `es-MX`), or
 * undefined when it has none or an unusual one (the token is then asked for without it: a
 * language is never a reason to fail a connect).
 */
export function pageLanguage(language: string | undefined): string | undefined {
  const tag = language?.trim() ?? '';
  return tag.length <= 35 && /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/.test(tag) ? tag : undefined;
}
