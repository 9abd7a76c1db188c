import { describe, expect, it } from 'vitest';
import { chooseGreeting, describeAgo, renderGreeting, shortDropRuleApplies } from '../../../lib/session/greeting.js';
import type { GreetingChoice } from '../../../lib/session/greeting.js';
import { ReconnectPolicies } from '../../../lib/session/policy.js';
import { decideResume } from '../../../lib/session/resume_policy.js';
import { DISCONNECT_REASONS, type DisconnectReason } from '../../../lib/session/record.js';
import { leftRecord, profileOf } from './fixtures.js';

const NOW = 1_700_000_000_000;

function greet(gapMs: number | null, opts: { profile?: boolean; reason?: DisconnectReason; policy?: 'AlwaysFresh' | 'ResumeIfPossible' | 'AlwaysResume'; storeAvailable?: boolean } = {}): GreetingChoice {
  const record = gapMs === null ? null : leftRecord(NOW - gapMs, opts.reason ?? 'network');
  const profile = record !== null ? profileOf(record) : opts.profile === true ? profileOf(leftRecord(NOW - 86_400_000 * 3, 'ended')) : null;
  const decision = decideResume({
    record,
    profile,
    policy: { ...ReconnectPolicies.Default, resumePolicy: opts.policy ?? 'ResumeIfPossible' },
    reason: null,
    nowMs: NOW,
    storeAvailable: opts.storeAvailable ?? true,
  });
  return chooseGreeting(decision, record, profile, NOW);
}

describe('chooseGreeting', () => {
  it('greets a new identity as first_time', () => {
    expect(greet(null)).toEqual({ kind: 'first_time' });
  });

  it('gives no greeting for a drop shorter than minRegreetGapMs', () => {
    expect(greet(2_000)).toEqual({ kind: 'none', why: 'short_drop' });
    expect(greet(4_999)).toEqual({ kind: 'none', why: 'short_drop' });
  });

  it('welcomes back briefly after a rejoin within the room', () => {
    expect(greet(20_000)).toEqual({ kind: 'welcome_back_brief', agoMs: 20_000 });
  });

  it('greets a resume from the shared store as returning, with ago, visit count and last topic', () => {
    expect(greet(600_000)).toEqual({ kind: 'returning', agoMs: 600_000, visitCount: 3, lastTopic: 'the router' });
    expect(greet(20_000, { reason: 'room_closed' }).kind).toBe('returning');
  });

  it('greets a known identity whose conversation expired as known_fresh', () => {
    expect(greet(null, { profile: true })).toMatchObject({ kind: 'known_fresh', visitCount: 3 });
  });

  it('never reveals memory under AlwaysFresh, and falls back to first_time when the store is down', () => {
    expect(greet(600_000, { policy: 'AlwaysFresh' })).toEqual({ kind: 'first_time' });
    expect(greet(600_000, { storeAvailable: false })).toEqual({ kind: 'first_time' });
  });

  it('says nothing when the resume was rejected (the error message is sent instead)', () => {
    expect(greet(null, { profile: true, policy: 'AlwaysResume' })).toEqual({ kind: 'none', why: 'rejected' });
  });
});

describe('shortDropRuleApplies', () => {
  // Every recorded reason, at an arrival and at a rejoin: a quick return after a drop the
  // participant did not choose goes unannounced; after a call they ended, it is greeted.
  const expected: Record<DisconnectReason | 'none', [arrival: boolean, rejoin: boolean]> = {
    network: [true, true],
    client_initiated: [false, false],
    ended: [false, false],
    idle: [false, false],
    room_closed: [true, false],
    agent_shutdown: [true, false],
    taken_over: [true, false],
    unknown: [true, false],
    none: [true, false],
  };

  it('has a row for every disconnect reason', () => {
    expect(Object.keys(expected).sort()).toEqual([...DISCONNECT_REASONS, 'none'].sort());
  });

  for (const [reason, [arrival, rejoin]] of Object.entries(expected)) {
    it(`${reason}: arrival ${arrival ? 'applies' : 'greets'}, rejoin ${rejoin ? 'applies' : 'greets'}`, () => {
      const r = reason === 'none' ? null : (reason as DisconnectReason);
      expect(shortDropRuleApplies(r, false)).toBe(arrival);
      expect(shortDropRuleApplies(r, true)).toBe(rejoin);
    });
  }
});

describe('renderGreeting', () => {
  it('renders each kind, none as null', () => {
    expect(renderGreeting({ kind: 'first_time' }, 'Alice')).toBe("Hello, Alice! I'm glad you're here. How can I help you today?");
    expect(renderGreeting({ kind: 'welcome_back_brief', agoMs: 20_000 })).toBe("Welcome back. Let's pick up where we left off.");
    expect(renderGreeting({ kind: 'returning', agoMs: 600_000, visitCount: 3, lastTopic: 'the router' }, 'Alice')).toBe(
      'Welcome back, Alice! It\'s been 10 minutes, and this is your 3rd visit. Last time we talked about "the router". Shall we continue?',
    );
    expect(renderGreeting({ kind: 'known_fresh', agoMs: 3 * 86_400_000, visitCount: 4 })).toContain('3 days');
    expect(renderGreeting({ kind: 'none', why: 'short_drop' })).toBeNull();
    expect(describeAgo(90 * 60_000)).toBe('2 hours');
  });

  it('says how long ago from the time itself, each unit rounded once', () => {
    const min = 60_000;
    const hour = 60 * min;
    const cases: [number, string][] = [
      [44_000, 'a few seconds'],
      [45_000, 'a minute'],
      [59 * min + 29_000, '59 minutes'],
      [89 * min + 40_000, 'an hour'],
      [90 * min, '2 hours'],
      [23 * hour + 29 * min + 40_000, '23 hours'],
      [23 * hour + 30 * min, 'a day'],
      [35 * hour + 29 * min + 40_000, 'a day'],
      [36 * hour, '2 days'],
    ];
    expect(cases.map(([ms]) => describeAgo(ms))).toEqual(cases.map(([, text]) => text));
    // Spanish: the verb agrees with the time.
    expect(renderGreeting({ kind: 'known_fresh', agoMs: hour, visitCount: 2 }, null, 'es')).toContain('Ha pasado una hora.');
    expect(renderGreeting({ kind: 'known_fresh', agoMs: 10_000, visitCount: 2 }, null, 'es')).toContain('Han pasado unos segundos.');
    expect(renderGreeting({ kind: 'returning', agoMs: 2 * hour, visitCount: 2, lastTopic: null }, null, 'es')).toContain('Han pasado 2 horas y');
  });
});
