/**
 * A fixed-window counter per key (the token service keys it by client address), bounded in
 * size: past `maxKeys` keys every count is dropped, so a flood of addresses costs memory only up
 * to that bound.
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

  /** Counts one event for `key` at `nowMs` (epoch ms); false once the key is over `perWindow` in this window. */
  allow(key: string, nowMs: number): boolean {
    const e = this.counts.get(key);
    if (e === undefined || nowMs - e.windowStartMs >= this.windowMs) {
      if (this.counts.size >= this.maxKeys) this.counts.clear();
      this.counts.set(key, { windowStartMs: nowMs, n: 1 });
      return true;
    }
    e.n += 1;
    return e.n <= this.perWindow;
  }
}
