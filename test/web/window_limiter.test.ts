/**
 * The token service's fixed-window limiter: per-key counts, refunds of requests that did
 * nothing, and its size bound (ended windows go first, then the oldest live key; a full table
 * never forgets every count at once).
 */
import { describe, expect, it } from 'vitest';
import { WindowLimiter } from '../../web/server/window_limiter.js';

const MIN = 60_000;

describe('WindowLimiter', () => {
  it('allows perWindow events per key in a window, keys apart, and opens again when the window ends', () => {
    const l = new WindowLimiter(2, MIN);
    expect([l.allow('a', 0), l.allow('a', 10), l.allow('a', 20)]).toEqual([true, true, false]);
    expect(l.allow('b', 30)).toBe(true);
    expect(l.allow('a', MIN - 1)).toBe(false);
    expect(l.allow('a', MIN)).toBe(true);
  });

  it('a refund gives back one event of the window it was counted in, and nothing of a later window', () => {
    const l = new WindowLimiter(2, MIN);
    expect(l.allow('a', 0)).toBe(true);
    expect(l.allow('a', 5)).toBe(true);
    l.refund('a', 5);
    expect(l.allow('a', 6)).toBe(true);
    expect(l.allow('a', 7)).toBe(false);
    // Counted in the window that started at 0; the key's window now starts at MIN.
    expect(l.allow('a', MIN)).toBe(true);
    expect(l.allow('a', MIN + 1)).toBe(true);
    l.refund('a', 7);
    expect(l.allow('a', MIN + 2)).toBe(false);
    // An unknown key, or more refunds than events, change nothing.
    l.refund('nobody', MIN);
    const m = new WindowLimiter(1, MIN);
    m.refund('b', 0);
    m.refund('b', 0);
    expect([m.allow('b', 0), m.allow('b', 1)]).toEqual([true, false]);
  });

  it('a full table drops the keys whose window ended, and keeps the counts of live ones', () => {
    const l = new WindowLimiter(1, MIN, 3);
    l.allow('old1', 0);
    l.allow('old2', 0);
    expect(l.allow('a', MIN)).toBe(true);
    expect(l.allow('a', MIN)).toBe(false);
    expect(l.allow('new', MIN + 1)).toBe(true); // full: old1 and old2 go
    expect(l.size).toBe(2);
    expect(l.allow('a', MIN + 2)).toBe(false);
  });

  it('a table full of live keys drops only the oldest one, and never holds more than maxKeys', () => {
    const l = new WindowLimiter(1, MIN, 3);
    for (const [i, k] of ['a', 'b', 'c'].entries()) expect(l.allow(k, i)).toBe(true);
    expect(l.allow('d', 3)).toBe(true);
    expect(l.size).toBe(3);
    expect([l.allow('b', 4), l.allow('c', 4), l.allow('d', 4)]).toEqual([false, false, false]);
    expect(l.allow('a', 5)).toBe(true); // forgotten: counted anew (and b, now the oldest, goes)
    expect(l.size).toBe(3);
  });

  it('keys whose window ended are dropped as new windows start, without a full table', () => {
    const l = new WindowLimiter(5, MIN, 1_000);
    for (let i = 0; i < 100; i++) l.allow(`k${i}`, 0);
    expect(l.size).toBe(100);
    for (let i = 0; i < 25; i++) l.allow(`n${i}`, MIN + i);
    expect(l.size).toBe(25);
  });
});
