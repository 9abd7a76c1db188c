import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../lib/clock.js';
import { ArrivalGreeter, chooseGreeting, describeAgo, renderGreeting } from '../../../lib/session/greeting.js';
import type { GreetingChoice } from '../../../lib/session/greeting.js';
import { ReconnectPolicies } from '../../../lib/session/policy.js';
import { decideResume } from '../../../lib/session/resume_policy.js';
import type { DisconnectReason } from '../../../lib/session/record.js';
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
});

describe('ArrivalGreeter', () => {
  it('greets exactly once per arrival, even when asked twice', () => {
    const clock = new ManualClock(NOW);
    const g = new ArrivalGreeter();
    expect(g.shouldGreet('alice', 'PA_1', clock.nowMs())).toBe(true);
    expect(g.shouldGreet('alice', 'PA_1', clock.nowMs())).toBe(false);
    clock.advance(60_000);
    expect(g.shouldGreet('alice', 'PA_1', clock.nowMs())).toBe(false);
  });

  it('does not greet a new arrival of the same identity within minRegreetGapMs, but does later', () => {
    const clock = new ManualClock(NOW);
    const g = new ArrivalGreeter({ minRegreetGapMs: 5_000 });
    expect(g.shouldGreet('alice', 'PA_1', clock.nowMs())).toBe(true);
    clock.advance(3_000);
    expect(g.shouldGreet('alice', 'PA_2', clock.nowMs())).toBe(false);
    expect(g.shouldGreet('bob', 'PA_3', clock.nowMs())).toBe(true);
    clock.advance(10_000);
    expect(g.shouldGreet('alice', 'PA_4', clock.nowMs())).toBe(true);
  });

  it('stays bounded', () => {
    const g = new ArrivalGreeter({ maxRemembered: 10, minRegreetGapMs: 0 });
    for (let i = 0; i < 1000; i++) g.shouldGreet(`u${i}`, 'a', i);
    expect(g.shouldGreet('u999', 'a', 2000)).toBe(false);
  });
});
