import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../lib/clock.js';
import { ReconnectPolicies, RESUME_POLICIES } from '../../../lib/session/policy.js';
import type { ResumePolicy } from '../../../lib/session/policy.js';
import { DISCONNECT_REASONS } from '../../../lib/session/record.js';
import type { DisconnectReason } from '../../../lib/session/record.js';
import { decideResume, rejectMessage } from '../../../lib/session/resume_policy.js';
import type { ResumeDecision, ResumeInput } from '../../../lib/session/resume_policy.js';
import { leftRecord, profileOf } from './fixtures.js';

const REJOIN_MS = 60_000;
const SESSION_MS = 1_800_000;
const policy = (resumePolicy: ResumePolicy) => ({ ...ReconnectPolicies.Default, resumePolicy, rejoinTtlMs: REJOIN_MS, sessionTtlMs: SESSION_MS });

const STATES = ['store_unavailable', 'none', 'expired_with_profile', 'expired_record', 'within_rejoin', 'within_session', 'invalid', 'tampered'] as const;
type RecordState = (typeof STATES)[number];
type ReasonClass = 'normal' | 'room_gone' | 'ended';

function reasonClass(r: DisconnectReason): ReasonClass {
  return r === 'room_closed' || r === 'agent_shutdown' || r === 'idle' ? 'room_gone' : r === 'ended' ? 'ended' : 'normal';
}

function input(state: RecordState, p: ResumePolicy, reason: DisconnectReason, clock: ManualClock): ResumeInput {
  const now = clock.nowMs();
  const gaps: Partial<Record<RecordState, number>> = { expired_record: SESSION_MS + 1, within_rejoin: 10_000, within_session: 600_000 };
  const gap = gaps[state];
  const record = gap === undefined ? null : leftRecord(now - gap, reason);
  const base = { policy: policy(p), reason, nowMs: now, storeAvailable: true };
  switch (state) {
    case 'store_unavailable':
      return { ...base, record: leftRecord(now - 10_000, reason), profile: null, storeAvailable: false };
    case 'none':
      return { ...base, record: null, profile: null };
    case 'expired_with_profile':
      return { ...base, record: null, profile: profileOf(leftRecord(now - SESSION_MS * 2, reason)) };
    case 'invalid':
      return { ...base, record: { rejected: 'record_invalid' }, profile: null };
    case 'tampered':
      return { ...base, record: { rejected: 'record_tampered' }, profile: null };
    default:
      if (record === null) throw new Error('record');
      return { ...base, record, profile: profileOf(record) };
  }
}

const fresh = (why: string) => ({ kind: 'fresh', why });
const resume = (why: string) => ({ kind: 'resume', why });
const reject = (why: string) => ({ kind: 'reject', why });

/** Expected decisions under ResumeIfPossible / AlwaysResume, by record state and reason class. */
const EXPECTED: Record<'ResumeIfPossible' | 'AlwaysResume', Record<RecordState, Record<ReasonClass, { kind: string; why: string }>>> = {
  ResumeIfPossible: {
    store_unavailable: { normal: fresh('store_unavailable'), room_gone: fresh('store_unavailable'), ended: fresh('store_unavailable') },
    none: { normal: fresh('new_identity'), room_gone: fresh('new_identity'), ended: fresh('new_identity') },
    expired_with_profile: { normal: fresh('expired'), room_gone: fresh('expired'), ended: fresh('expired') },
    expired_record: { normal: fresh('expired'), room_gone: fresh('expired'), ended: fresh('session_ended') },
    within_rejoin: { normal: resume('within_rejoin_ttl'), room_gone: resume('within_session_ttl'), ended: resume('within_rejoin_ttl') },
    within_session: { normal: resume('within_session_ttl'), room_gone: resume('within_session_ttl'), ended: fresh('session_ended') },
    invalid: { normal: fresh('record_invalid'), room_gone: fresh('record_invalid'), ended: fresh('record_invalid') },
    tampered: { normal: fresh('record_tampered'), room_gone: fresh('record_tampered'), ended: fresh('record_tampered') },
  },
  AlwaysResume: {
    store_unavailable: { normal: reject('store_unavailable'), room_gone: reject('store_unavailable'), ended: reject('store_unavailable') },
    none: { normal: fresh('new_identity'), room_gone: fresh('new_identity'), ended: fresh('new_identity') },
    expired_with_profile: { normal: reject('expired'), room_gone: reject('expired'), ended: reject('expired') },
    expired_record: { normal: reject('expired'), room_gone: reject('expired'), ended: fresh('session_ended') },
    within_rejoin: { normal: resume('within_rejoin_ttl'), room_gone: resume('within_session_ttl'), ended: resume('within_rejoin_ttl') },
    within_session: { normal: resume('within_session_ttl'), room_gone: resume('within_session_ttl'), ended: fresh('session_ended') },
    invalid: { normal: reject('record_invalid'), room_gone: reject('record_invalid'), ended: reject('record_invalid') },
    tampered: { normal: reject('record_tampered'), room_gone: reject('record_tampered'), ended: reject('record_tampered') },
  },
};

function expected(p: ResumePolicy, state: RecordState, reason: DisconnectReason): { kind: string; why: string } {
  if (p === 'AlwaysFresh') return fresh('policy_fresh');
  return EXPECTED[p][state][reasonClass(reason)];
}

describe('decideResume: every cell of policy × record state × disconnect reason', () => {
  const clock = new ManualClock(1_700_000_000_000);
  const cells: [ResumePolicy, RecordState, DisconnectReason][] = [];
  for (const p of RESUME_POLICIES) for (const s of STATES) for (const r of DISCONNECT_REASONS) cells.push([p, s, r]);

  it('covers 3 policies × 8 record states × 8 reasons', () => {
    expect(cells).toHaveLength(3 * 8 * 8);
  });

  it.each(cells)('%s / %s / %s', (p, state, reason) => {
    const d = decideResume(input(state, p, reason, clock));
    expect({ kind: d.kind, why: d.why }).toEqual(expected(p, state, reason));
    if (d.kind === 'resume') expect(d.gapMs).toBeGreaterThanOrEqual(0);
    if (d.kind === 'reject') expect(rejectMessage(d).length).toBeGreaterThan(10);
  });
});

describe('decideResume: boundaries and reason source', () => {
  const now = 1_700_000_000_000;
  const at = (gapMs: number, reason: DisconnectReason = 'network'): ResumeDecision => {
    const record = leftRecord(now - gapMs, reason);
    return decideResume({ record, profile: profileOf(record), policy: policy('ResumeIfPossible'), reason: null, nowMs: now, storeAvailable: true });
  };

  it('is inclusive at both windows and expired one ms later', () => {
    expect(at(REJOIN_MS).why).toBe('within_rejoin_ttl');
    expect(at(REJOIN_MS + 1).why).toBe('within_session_ttl');
    expect(at(SESSION_MS).why).toBe('within_session_ttl');
    expect(at(SESSION_MS + 1)).toEqual({ kind: 'fresh', why: 'expired' });
  });

  it('takes the reason from the record when none is given', () => {
    expect(at(1_000, 'room_closed').why).toBe('within_session_ttl');
    // The agent hung up on a silence and deleted the room: a return is a new call, resumed.
    expect(at(1_000, 'idle').why).toBe('within_session_ttl');
    expect(at(1_000, 'client_initiated').why).toBe('within_rejoin_ttl');
  });

  it('measures a record still marked connected (crashed owner) from lastSeenAt', () => {
    const record = { ...leftRecord(now - 5_000, 'network'), state: 'Connected' as const, disconnectedAt: null, disconnectReason: null, lastSeenAt: now - 5_000 };
    const d = decideResume({ record, profile: null, policy: policy('ResumeIfPossible'), reason: null, nowMs: now, storeAvailable: true });
    expect(d).toEqual({ kind: 'resume', why: 'within_rejoin_ttl', gapMs: 5_000 });
  });

  it('property: ResumeIfPossible resumes every valid record within sessionTtlMs unless ended', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SESSION_MS }), fc.constantFrom(...DISCONNECT_REASONS.filter((r) => r !== 'ended')), (gap, reason) => {
        const record = leftRecord(now - gap, reason);
        const d = decideResume({ record, profile: null, policy: policy('ResumeIfPossible'), reason, nowMs: now, storeAvailable: true });
        return d.kind === 'resume' && d.gapMs === gap;
      }),
    );
  });
});
