/**
 * A source of "now" in epoch milliseconds. `lib/session` and `lib/context` never call
 * `Date.now()` themselves: they take a `Clock` (or a `now`) so tests can drive time.
 */
export interface Clock {
  /** Current time, epoch milliseconds. */
  nowMs(): number;
}

/** The wall clock. */
export const systemClock: Clock = { nowMs: () => Date.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private currentMs = 0) {}
  nowMs(): number {
    return this.currentMs;
  }
  /** Moves time forward by `deltaMs` (must be ≥ 0). */
  advance(deltaMs: number): void {
    if (!(deltaMs >= 0)) throw new RangeError('ManualClock.advance: deltaMs must be >= 0');
    this.currentMs += deltaMs;
  }
  /** Sets the absolute time (epoch ms). */
  set(nowMs: number): void {
    this.currentMs = nowMs;
  }
}
