/**
 * Pure validation of the token service's request bodies. Structural problems (not JSON, not
 * an object, a field missing, of the wrong type or too long, an unknown field) are `400`
 * with a reason; whether an identity and secret are *valid* is decided later against the
 * device store (`403 invalid_credentials`), so a forged identity of any shape gets the same
 * answer as a wrong secret.
 */
import { parseLanguageTag } from '../../lib/session/language.js';
import type { ResumePolicyName } from './tokens.js';

export type { ResumePolicyName } from './tokens.js';

/** The resume policies a page may ask for (the service decides whether to honour one). */
export const RESUME_POLICY_NAMES = ['AlwaysFresh', 'ResumeIfPossible', 'AlwaysResume'] as const satisfies readonly ResumePolicyName[];

/** Longest identity or device secret accepted, characters (ours are 20 and 43). */
export const MAX_CREDENTIAL_LENGTH = 128;
/** Room names the service hands out and accepts back: URL-safe, at most 64 characters. */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Why a request body was refused (HTTP 400). */
export type BadRequestReason =
  | 'malformed_json'
  | 'body_not_object'
  | 'unknown_field'
  | 'identity_missing'
  | 'identity_invalid'
  | 'secret_missing'
  | 'secret_invalid'
  | 'room_invalid'
  | 'policy_unknown'
  | 'language_invalid'
  | 'language_chosen_invalid';

/** A validation outcome: the value, or the reason it was refused. */
export type Validated<T> = { ok: true; value: T } | { ok: false; reason: BadRequestReason; detail: string };

/** Credentials a device presents: the identity the service issued it and its secret. */
export interface DeviceCredentials {
  identity: string;
  deviceSecret: string;
}

/** Body of `POST /api/token`. */
export interface TokenRequest extends DeviceCredentials {
  /** Reuse this room (one this identity was issued); absent = a new room. */
  room?: string;
  /** Ask for this resume policy (demo selector); the service decides. */
  policy?: ResumePolicyName;
  /** The participant's language (the page's `navigator.language`, or their pick): a BCP 47 tag, canonicalised. */
  language?: string;
  /** True when the participant chose `language` (the page's language menu), not their browser. Only with a language. */
  languageChosen?: boolean;
}

function bad<T>(reason: BadRequestReason, detail: string): Validated<T> {
  return { ok: false, reason, detail };
}

/** Parses a request body as JSON. */
export function parseJsonBody(text: string): Validated<unknown> {
  if (text.trim() === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return bad('malformed_json', 'the body is not valid JSON');
  }
}

function asObject(body: unknown, allowed: readonly string[]): Validated<Record<string, unknown>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('body_not_object', 'the body must be a JSON object');
  const obj = body as Record<string, unknown>;
  const extra = Object.keys(obj).find((k) => !allowed.includes(k));
  if (extra !== undefined) return bad('unknown_field', `unknown field (allowed: ${allowed.join(', ')})`);
  return { ok: true, value: obj };
}

function credential(v: unknown, missing: BadRequestReason, invalid: BadRequestReason, name: string): Validated<string> {
  if (v === undefined || v === null || v === '') return bad(missing, `${name} is required`);
  if (typeof v !== 'string' || v.length > MAX_CREDENTIAL_LENGTH) {
    return bad(invalid, `${name} must be a string of at most ${MAX_CREDENTIAL_LENGTH} characters`);
  }
  return { ok: true, value: v };
}

function credentials(obj: Record<string, unknown>): Validated<DeviceCredentials> {
  const identity = credential(obj.identity, 'identity_missing', 'identity_invalid', 'identity');
  if (!identity.ok) return identity;
  const deviceSecret = credential(obj.deviceSecret, 'secret_missing', 'secret_invalid', 'deviceSecret');
  if (!deviceSecret.ok) return deviceSecret;
  return { ok: true, value: { identity: identity.value, deviceSecret: deviceSecret.value } };
}

/** Validates the body of `POST /api/forget` (and any request that only presents credentials). */
export function parseCredentials(body: unknown): Validated<DeviceCredentials> {
  const obj = asObject(body, ['identity', 'deviceSecret']);
  return obj.ok ? credentials(obj.value) : obj;
}

/** Body of `POST /api/agent`: ask for the agent in a room issued to this identity. */
export interface AgentRequest extends DeviceCredentials {
  room: string;
}

/** Validates the body of `POST /api/agent`. */
export function parseAgentRequest(body: unknown): Validated<AgentRequest> {
  const obj = asObject(body, ['identity', 'deviceSecret', 'room']);
  if (!obj.ok) return obj;
  const creds = credentials(obj.value);
  if (!creds.ok) return creds;
  const room = obj.value.room;
  if (typeof room !== 'string' || !ROOM_NAME_PATTERN.test(room)) return bad('room_invalid', 'room must be 1-64 characters of A-Z a-z 0-9 _ -');
  return { ok: true, value: { ...creds.value, room } };
}

/** Validates the body of `POST /api/token`. */
export function parseTokenRequest(body: unknown): Validated<TokenRequest> {
  const obj = asObject(body, ['identity', 'deviceSecret', 'room', 'policy', 'language', 'languageChosen']);
  if (!obj.ok) return obj;
  const creds = credentials(obj.value);
  if (!creds.ok) return creds;
  const out: TokenRequest = { ...creds.value };
  const room = obj.value.room;
  if (room !== undefined && room !== null && room !== '') {
    if (typeof room !== 'string' || !ROOM_NAME_PATTERN.test(room)) {
      return bad('room_invalid', 'room must be 1-64 characters of A-Z a-z 0-9 _ -');
    }
    out.room = room;
  }
  const policy = obj.value.policy;
  if (policy !== undefined && policy !== null && policy !== '') {
    if (typeof policy !== 'string' || !(RESUME_POLICY_NAMES as readonly string[]).includes(policy)) {
      return bad('policy_unknown', `policy must be one of ${RESUME_POLICY_NAMES.join(', ')}`);
    }
    out.policy = policy as ResumePolicyName;
  }
  const language = obj.value.language;
  if (language !== undefined && language !== null && language !== '') {
    const tag = typeof language === 'string' ? parseLanguageTag(language) : null;
    if (tag === null) return bad('language_invalid', 'language must be a BCP 47 language tag such as en-US (at most 35 characters)');
    out.language = tag;
  }
  const chosen = obj.value.languageChosen;
  if (chosen !== undefined && chosen !== null && chosen !== false) {
    if (chosen !== true) return bad('language_chosen_invalid', 'languageChosen must be true or false');
    if (out.language === undefined) return bad('language_chosen_invalid', 'languageChosen needs a language');
    out.languageChosen = true;
  }
  return { ok: true, value: out };
}

/** Validates the body of `POST /api/identity` (empty, or an empty object). */
export function parseIdentityRequest(body: unknown): Validated<Record<string, never>> {
  const obj = asObject(body, []);
  return obj.ok ? { ok: true, value: {} } : obj;
}

/** Outcome of {@link decidePolicy}. */
export type PolicyDecision =
  | { ok: true; policy: ResumePolicyName | undefined; why: 'requested' | 'service_default' | 'worker_default' }
  | { ok: false; reason: 'policy_not_allowed' };

/**
 * Which resume policy goes into the token: the requested one when the service allows pages to
 * ask for it; otherwise refused. With no request, the service default (or none: the worker's).
 */
export function decidePolicy(
  requested: ResumePolicyName | undefined,
  allowed: readonly ResumePolicyName[],
  serviceDefault: ResumePolicyName | undefined,
): PolicyDecision {
  if (requested === undefined) {
    return serviceDefault === undefined ? { ok: true, policy: undefined, why: 'worker_default' } : { ok: true, policy: serviceDefault, why: 'service_default' };
  }
  return allowed.includes(requested) ? { ok: true, policy: requested, why: 'requested' } : { ok: false, reason: 'policy_not_allowed' };
}
