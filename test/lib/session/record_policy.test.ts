import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../lib/errors.js';
import { DEFAULT_PROFILE_TTL_MS, ReconnectPolicies, loadPolicyFromEnv } from '../../../lib/session/policy.js';
import { newSessionRecord, parseProfile, parseSessionRecord, profileFromRecord, resumedRecord, suspendedRecord } from '../../../lib/session/record.js';
import { decodeStoredRecord, encodeStoredRecord } from '../../../lib/store/record_wire.js';

describe('session record', () => {
  it('round-trips through JSON and zod', () => {
    const r = { ...newSessionRecord({ agentName: 'a', identity: '🦊', sessionId: 's', nowMs: 5, profile: null }), lastTopic: 'x' };
    expect(parseSessionRecord(JSON.parse(JSON.stringify(r)))).toEqual({ ok: true, value: r });
    const p = profileFromRecord(r);
    expect(parseProfile(JSON.parse(JSON.stringify(p)))).toEqual({ ok: true, value: p });
  });

  it('keeps a language heard spoken as heard through the store, the profile and the next conversation; a token\'s language is not', () => {
    const heard = { ...newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's', nowMs: 5, profile: null }), language: 'es', languageHeard: true };
    expect(parseSessionRecord(JSON.parse(JSON.stringify(heard)))).toEqual({ ok: true, value: heard });
    const p = profileFromRecord(heard);
    expect(parseProfile(JSON.parse(JSON.stringify(p)))).toEqual({ ok: true, value: { ...p, language: 'es', languageHeard: true } });
    expect(newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's2', nowMs: 9, profile: p })).toMatchObject({ language: 'es', languageHeard: true });
    // A conversation given a language by its token starts from that, not from the heard one.
    expect(newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's3', nowMs: 9, profile: p, language: 'de' }).languageHeard).toBeUndefined();
    expect(parseSessionRecord({ ...heard, languageHeard: 'yes' })).toEqual({ ok: false, why: 'record_invalid' });
  });

  it('reads an unknown version or a malformed record as record_invalid, not a crash', () => {
    const r = newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's', nowMs: 5, profile: null });
    expect(parseSessionRecord({ ...r, v: 2 })).toEqual({ ok: false, why: 'record_invalid' });
    expect(parseSessionRecord({ ...r, history: null })).toEqual({ ok: false, why: 'record_invalid' });
    expect(parseSessionRecord('nope')).toEqual({ ok: false, why: 'record_invalid' });
  });

  it('reads a disconnect reason it does not know (a newer worker\'s) as unknown instead of refusing the record; a reason that is not a string is still invalid', () => {
    const r = suspendedRecord(newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's', nowMs: 5, profile: null }), 50, 'idle');
    expect(parseSessionRecord(JSON.parse(JSON.stringify(r)))).toEqual({ ok: true, value: r });
    expect(parseSessionRecord({ ...r, disconnectReason: 'moderator_removed' })).toEqual({ ok: true, value: { ...r, disconnectReason: 'unknown' } });
    // The stored form takes the same path.
    const payload = encodeStoredRecord(r);
    expect(decodeStoredRecord(payload)).toEqual({ ok: true, value: r });
    expect(decodeStoredRecord(payload.replace('"disconnectReason":"idle"', '"disconnectReason":"moderator_removed"'))).toEqual({ ok: true, value: { ...r, disconnectReason: 'unknown' } });
    expect(parseSessionRecord({ ...r, disconnectReason: 7 })).toEqual({ ok: false, why: 'record_invalid' });
    expect(parseSessionRecord({ ...r, disconnectReason: 'x'.repeat(65) })).toEqual({ ok: false, why: 'record_invalid' });
  });

  it('carries visit count and first-seen time from the profile; a shared-store resume counts a visit', () => {
    const first = newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's1', nowMs: 100, profile: null });
    const second = newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's2', nowMs: 900, profile: profileFromRecord(first) });
    expect(second).toMatchObject({ visitCount: 2, firstSeenAt: 100, createdAt: 900 });
    expect(resumedRecord(second, 1000, true)).toMatchObject({ visitCount: 3, reconnectCount: 1, state: 'Connecting' });
    expect(resumedRecord(second, 1000, false)).toMatchObject({ visitCount: 2, reconnectCount: 1 });
  });
});

describe('policy', () => {
  it('has the seed presets', () => {
    expect(ReconnectPolicies.Default).toEqual({
      rejoinTtlMs: 60_000,
      resumePolicy: 'ResumeIfPossible',
      maxReconnectAttempts: 3,
      startWaitTimeoutMs: 5_000,
      autoMicStartDelayMs: 500,
      spawnAgentOnRejoin: true,
      sessionTtlMs: 1_800_000,
      profileTtlMs: DEFAULT_PROFILE_TTL_MS,
    });
    expect(ReconnectPolicies.AlwaysCreateNew.resumePolicy).toBe('AlwaysFresh');
    expect(DEFAULT_PROFILE_TTL_MS).toBe(2_592_000_000);
  });

  it('loads from the environment', () => {
    expect(loadPolicyFromEnv({})).toEqual(ReconnectPolicies.Default);
    expect(loadPolicyFromEnv({ RESUME_POLICY: 'AlwaysResume', REJOIN_TTL_MS: '30000', SESSION_TTL_MS: '', MAX_RECONNECT_ATTEMPTS: '5' })).toMatchObject({
      resumePolicy: 'AlwaysResume',
      rejoinTtlMs: 30_000,
      sessionTtlMs: 1_800_000,
      maxReconnectAttempts: 5,
    });
  });

  it.each([
    [{ RESUME_POLICY: 'Sometimes' }, /RESUME_POLICY/],
    [{ REJOIN_TTL_MS: '60s' }, /REJOIN_TTL_MS/],
    [{ SESSION_TTL_MS: '-1' }, /SESSION_TTL_MS/],
    [{ PROFILE_TTL_MS: '1.5' }, /PROFILE_TTL_MS/],
    [{ MAX_RECONNECT_ATTEMPTS: 'many' }, /MAX_RECONNECT_ATTEMPTS/],
    [{ REJOIN_TTL_MS: '4000000' }, /SESSION_TTL_MS .* must be >= REJOIN_TTL_MS/],
    [{ PROFILE_TTL_MS: '1000' }, /PROFILE_TTL_MS/],
    // Too large says so (not "must be an integer >= 1"); a rejoin window is a timer.
    [{ SESSION_TTL_MS: '99999999999999999999' }, /SESSION_TTL_MS must be at most 9007199254740991, got 99999999999999999999/],
    [{ REJOIN_TTL_MS: '99999999999999999999' }, /REJOIN_TTL_MS must be at most 2147483647 \(about 24\.8 days/],
  ])('rejects %o with a ConfigError naming the variable', (env, pattern) => {
    expect(() => loadPolicyFromEnv(env)).toThrow(ConfigError);
    expect(() => loadPolicyFromEnv(env)).toThrow(pattern);
  });
});
