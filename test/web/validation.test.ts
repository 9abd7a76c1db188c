import { describe, expect, it } from 'vitest';
import { hashSecret, newDeviceSecret, newIdentity, newRoomName, secretMatches } from '../../web/server/credentials.js';
import {
  decidePolicy,
  parseAgentRequest,
  parseCredentials,
  parseIdentityRequest,
  parseJsonBody,
  parseTokenRequest,
  ROOM_NAME_PATTERN,
} from '../../web/server/validation.js';
import { pageLanguage, retryAfterMs } from '../../web/client/api.js';

describe('request validation', () => {
  it('accepts a well-formed token request', () => {
    const r = parseTokenRequest({ identity: 'web-a', deviceSecret: 's', room: 'web-room-x_1', policy: 'AlwaysResume' });
    expect(r).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's', room: 'web-room-x_1', policy: 'AlwaysResume' } });
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', room: '', policy: null })).toEqual({
      ok: true,
      value: { identity: 'web-a', deviceSecret: 's' },
    });
  });

  it.each([
    [[1, 2], 'body_not_object'],
    [null, 'body_not_object'],
    ['x', 'body_not_object'],
    [{ deviceSecret: 's' }, 'identity_missing'],
    [{ identity: 7, deviceSecret: 's' }, 'identity_invalid'],
    [{ identity: 'x'.repeat(129), deviceSecret: 's' }, 'identity_invalid'],
    [{ identity: 'a' }, 'secret_missing'],
    [{ identity: 'a', deviceSecret: ['s'] }, 'secret_invalid'],
    [{ identity: 'a', deviceSecret: 's', room: '../x' }, 'room_invalid'],
    [{ identity: 'a', deviceSecret: 's', room: 'x'.repeat(65) }, 'room_invalid'],
    [{ identity: 'a', deviceSecret: 's', policy: 'Sometimes' }, 'policy_unknown'],
    [{ identity: 'a', deviceSecret: 's', attributes: { 'pva.context_publisher': '1' } }, 'unknown_field'],
  ])('refuses %j with %s', (body, reason) => {
    const r = parseTokenRequest(body);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.detail.length).toBeGreaterThan(0);
    }
  });

  it('a forged identity of any shape is structurally fine (refused later as invalid_credentials, 403)', () => {
    expect(parseCredentials({ identity: 'alice', deviceSecret: 'guess' }).ok).toBe(true);
  });

  it('parses JSON bodies; an empty body is an empty object', () => {
    expect(parseJsonBody('')).toEqual({ ok: true, value: {} });
    expect(parseJsonBody('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJsonBody('{a:1}')).toMatchObject({ ok: false, reason: 'malformed_json' });
    expect(parseIdentityRequest({})).toEqual({ ok: true, value: {} });
    expect(parseIdentityRequest({ identity: 'mine' })).toMatchObject({ ok: false, reason: 'unknown_field' });
  });

  it('decides the resume policy: only what the service allows', () => {
    const all = ['AlwaysFresh', 'ResumeIfPossible', 'AlwaysResume'] as const;
    expect(decidePolicy('AlwaysFresh', all, undefined)).toEqual({ ok: true, policy: 'AlwaysFresh', why: 'requested' });
    expect(decidePolicy('AlwaysResume', ['ResumeIfPossible'], undefined)).toEqual({ ok: false, reason: 'policy_not_allowed' });
    expect(decidePolicy(undefined, [], 'AlwaysFresh')).toEqual({ ok: true, policy: 'AlwaysFresh', why: 'service_default' });
    expect(decidePolicy(undefined, all, undefined)).toEqual({ ok: true, policy: undefined, why: 'worker_default' });
  });
});

describe('agent request validation', () => {
  it('accepts credentials and a room', () => {
    expect(parseAgentRequest({ identity: 'web-a', deviceSecret: 's', room: 'web-room-x_1' })).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's', room: 'web-room-x_1' } });
  });

  it.each([
    [{ identity: 'a', deviceSecret: 's' }, 'room_invalid'],
    [{ identity: 'a', deviceSecret: 's', room: '' }, 'room_invalid'],
    [{ identity: 'a', deviceSecret: 's', room: '../x' }, 'room_invalid'],
    [{ identity: 'a', deviceSecret: 's', room: 7 }, 'room_invalid'],
    [{ deviceSecret: 's', room: 'r' }, 'identity_missing'],
    [{ identity: 'a', room: 'r' }, 'secret_missing'],
    [{ identity: 'a', deviceSecret: 's', room: 'r', agentName: 'other' }, 'unknown_field'],
  ])('refuses %j with %s', (body, reason) => {
    const r = parseAgentRequest(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });
});

describe('the page\'s language', () => {
  it('the page sends navigator.language only when it is a plain tag (a connect never fails over it), and the service canonicalises it', () => {
    expect(['es-MX', 'fr', 'zh-Hant-TW', undefined, '', 'en-US-u-ca-buddhist-x-a', 'español', `e${'n'.repeat(40)}`].map(pageLanguage)).toEqual(['es-MX', 'fr', 'zh-Hant-TW', undefined, undefined, undefined, undefined, undefined]);
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: 'zh-hant-tw' })).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's', language: 'zh-Hant-TW' } });
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: '' })).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's' } });
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: ['es'] })).toMatchObject({ ok: false, reason: 'language_invalid' });
  });

  it('a language the participant picked from the menu is marked chosen; the mark needs a language and is a boolean', () => {
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: 'es', languageChosen: true })).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's', language: 'es', languageChosen: true } });
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: 'es', languageChosen: false })).toEqual({ ok: true, value: { identity: 'web-a', deviceSecret: 's', language: 'es' } });
    expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', languageChosen: true })).toEqual({ ok: false, reason: 'language_chosen_invalid', detail: 'languageChosen needs a language' });
    for (const languageChosen of ['true', 1, 'yes', {}]) {
      expect(parseTokenRequest({ identity: 'web-a', deviceSecret: 's', language: 'es', languageChosen })).toEqual({ ok: false, reason: 'language_chosen_invalid', detail: 'languageChosen must be true or false' });
    }
  });
});

describe('credentials', () => {
  it('issues unguessable identities, secrets and room names', () => {
    const ids = new Set(Array.from({ length: 200 }, () => newIdentity()));
    expect(ids.size).toBe(200);
    for (const id of ids) expect(id).toMatch(/^web-[A-Za-z0-9_-]{16}$/);
    expect(newDeviceSecret()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newRoomName()).toMatch(ROOM_NAME_PATTERN);
  });

  it('stores only a hash and compares it in constant time', () => {
    const s = newDeviceSecret();
    const h = hashSecret(s);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(h).not.toContain(s);
    expect(secretMatches(s, h)).toBe(true);
    expect(secretMatches(`${s}x`, h)).toBe(false);
    expect(secretMatches(s, '')).toBe(false);
    expect(secretMatches(s, 'zz')).toBe(false);
  });
});

describe('retryAfterMs (the web client reading Retry-After)', () => {
  it('reads whole seconds, as the service sends them, and nothing else', () => {
    expect(['60', ' 5 ', '0'].map(retryAfterMs)).toEqual([60_000, 5_000, 0]);
    expect([null, '', 'soon', '1.5', '-3', 'Wed, 21 Oct 2026 07:28:00 GMT', '9999999'].map(retryAfterMs)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined, undefined]);
  });
});
