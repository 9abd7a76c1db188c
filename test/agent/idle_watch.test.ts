import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleWatch } from '../../agent/idle_watch.js';
import type { Clock } from '../../lib/clock.js';

// The driver on (fake) real timers: what a caller hears and when. The rule itself is covered
// cell by cell in test/lib/session/idle.test.ts; this checks the timers the driver sets from it.

const T0 = 1_700_000_000_000;
const limits = { checkInAfterMs: 120_000, hangUpAfterMs: 30_000 };
/** Reads the faked `Date.now()`, as the job's `systemClock` reads the real one. */
const fakeWallClock: Clock = { nowMs: () => Date.now() };

function watch(l = limits) {
  const calls: string[] = [];
  const w = new IdleWatch(l, fakeWallClock, {
    checkIn: () => calls.push(`check_in@${Date.now() - T0}`),
    hangUp: () => calls.push(`hang_up@${Date.now() - T0}`),
  });
  return { w, calls };
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('IdleWatch', () => {
  it('checks in after two minutes of silence, then hangs up thirty seconds later, once', () => {
    const { w, calls } = watch();
    vi.advanceTimersByTime(119_999);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['check_in@120000']);
    vi.advanceTimersByTime(29_999);
    expect(calls).toEqual(['check_in@120000']);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['check_in@120000', 'hang_up@150000']);
    // Nothing more, whatever happens next.
    w.report({ type: 'user_active' });
    vi.advanceTimersByTime(600_000);
    expect(calls).toEqual(['check_in@120000', 'hang_up@150000']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('restarts the silence when the participant speaks, and after answering the check-in', () => {
    const { calls, w } = watch();
    vi.advanceTimersByTime(100_000);
    w.report({ type: 'user_active' });
    vi.advanceTimersByTime(119_999);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['check_in@220000']);
    vi.advanceTimersByTime(10_000);
    w.report({ type: 'user_active' }); // "yes, still here"
    vi.advanceTimersByTime(29_999); // past the hang-up the check-in had armed
    expect(calls).toEqual(['check_in@220000']);
    vi.advanceTimersByTime(120_000 - 29_999);
    expect(calls).toEqual(['check_in@220000', 'check_in@350000']);
  });

  it('counts no silence while the agent is busy; the silence starts when it goes quiet', () => {
    const { calls, w } = watch();
    vi.advanceTimersByTime(60_000);
    w.report({ type: 'agent_busy' });
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(600_000); // a very long answer
    expect(calls).toEqual([]);
    w.report({ type: 'agent_quiet' });
    vi.advanceTimersByTime(119_999);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['check_in@780000']);
  });

  it('pauses while the participant is away and starts afresh when they are back', () => {
    const { calls, w } = watch();
    vi.advanceTimersByTime(110_000);
    w.report({ type: 'participant_away' });
    vi.advanceTimersByTime(300_000);
    expect(calls).toEqual([]);
    w.report({ type: 'user_active' }); // a late transcript while away does not restart the clock
    expect(vi.getTimerCount()).toBe(0);
    w.report({ type: 'participant_back' });
    vi.advanceTimersByTime(119_999);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['check_in@530000']);
  });

  it('without a check-in, hangs up after the whole silence; with both limits 0, never acts', () => {
    const noCheckIn = watch({ checkInAfterMs: 0, hangUpAfterMs: 45_000 });
    const never = watch({ checkInAfterMs: 0, hangUpAfterMs: 0 });
    vi.advanceTimersByTime(44_999);
    expect(noCheckIn.calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(noCheckIn.calls).toEqual(['hang_up@45000']);
    vi.advanceTimersByTime(3_600_000);
    expect(never.calls).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() cancels the timer and ignores later reports', () => {
    const { calls, w } = watch();
    vi.advanceTimersByTime(119_000);
    w.stop();
    expect(vi.getTimerCount()).toBe(0);
    w.report({ type: 'agent_quiet' });
    w.report({ type: 'tick' });
    vi.advanceTimersByTime(600_000);
    expect(calls).toEqual([]);
  });

  it('keeps one timer at a time however many events arrive', () => {
    const { calls, w } = watch();
    for (let i = 0; i < 1000; i++) {
      w.report({ type: i % 2 ? 'agent_busy' : 'agent_quiet' });
      w.report({ type: 'user_active' });
      expect(vi.getTimerCount()).toBeLessThanOrEqual(1);
    }
    w.report({ type: 'agent_quiet' });
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(120_000);
    expect(calls).toEqual(['check_in@120000']);
  });
});
