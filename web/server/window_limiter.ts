/**
 * A fixed-window counter per key (the token service keys it by client address or identity),
 * bounded in size. The map is kept in the order the keys' windows started, so the entries whose
 * window has ended are always at its front: each new window drops a few of them (bounded work),
 * and a full table drops all of them, then the oldest live entry, never every count at once.
 */
export class WindowLimiter {
  private readonly counts = new Map<string, { windowStartMs: number; n: number }>();

  /**
   * @param perWindow events allowed per key in one window
   * @param windowMs length of a window, ms
   * @param maxKeys keys tracked at once. @default 10 000
   */
  constructor(
    private readonly perWindow: number,
    private readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Keys tracked now (ended windows not yet dropped included). */
  get size(): number {
    return this.counts.size;
  }

  /** Counts one event for `key` at `nowMs` (epoch ms); false once the key is over `perWindow` in this window. */
  allow(key: string, nowMs: number): boolean {
    const e = this.counts.get(key);
    if (e !== undefined && nowMs - e.windowStartMs < this.windowMs) {
      e.n += 1;
      return e.n <= this.perWindow;
    }
    // A new window: the key moves to the end of the map (window-start order).
    if (e !== undefined) this.counts.delete(key);
    this.dropEnded(nowMs, this.counts.size >= this.maxKeys ? Number.POSITIVE_INFINITY : 4);
    if (this.counts.size >= this.maxKeys) {
      const oldest = this.counts.keys().next();
      if (oldest.done !== true) this.counts.delete(oldest.value);
    }
    this.counts.set(key, { windowStartMs: nowMs, n: 1 });
    return true;
  }

  /**
   * Gives back the event that {@link allow} counted for `key` at `countedAtMs`, when the request
   * it allowed failed before doing anything (a store outage): a client that retries through an
   * outage does not use up its limit. Nothing happens when that event's window is over (the
   * count it was in is gone).
   */
  refund(key: string, countedAtMs: number): void {
    const e = this.counts.get(key);
    if (e !== undefined && e.n > 0 && countedAtMs >= e.windowStartMs && countedAtMs - e.windowStartMs < this.windowMs) e.n -= 1;
  }

  /** Drops up to `max` entries whose window has ended, from the front of the map. */
  private dropEnded(nowMs: number, max: number): void {
    let dropped = 0;
    for (const [key, e] of this.counts) {
      if (dropped >= max || nowMs - e.windowStartMs < this.windowMs) return;
      this.counts.delete(key);
      dropped += 1;
    }
  }
}
