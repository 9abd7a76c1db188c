import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { LogThrottle } from '../../lib/log_throttle.js';

describe('LogThrottle', () => {
  it('admits one line per key per window and reports how many were left out', () => {
    const clock = new ManualClock(0);
    const t = new LogThrottle(clock, 1_000);
    expect(t.admit('a')).toBe(0);
    expect(t.admit('a')).toBeNull();
    expect(t.admit('b')).toBe(0); // keys are independent
    clock.advance(999);
    expect(t.admit('a')).toBeNull();
    clock.advance(1);
    expect(t.admit('a')).toBe(2);
    expect(t.admit('a')).toBeNull();
  });

  it('remembers at most maxKeys keys (the oldest is forgotten and logged again)', () => {
    const clock = new ManualClock(0);
    const t = new LogThrottle(clock, 60_000, 2);
    expect(t.admit('a')).toBe(0);
    expect(t.admit('b')).toBe(0);
    expect(t.admit('c')).toBe(0); // forgets 'a'
    expect(t.admit('b')).toBeNull();
    expect(t.admit('a')).toBe(0);
  });
});
