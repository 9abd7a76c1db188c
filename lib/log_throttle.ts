import type { Clock } from './clock.js';

/**
 * At most one log line per key per window: a flood of the same warning (a client sending bad
 * messages in a loop) writes one line, and the next line after the window says how many were
 * left out. Counting what happened is the metrics' job; this only bounds the log volume.
 */
export class LogThrottle {
  private readonly seen = new Map<string, { loggedAtMs: number; suppressed: number }>();

  /**
   * @param windowMs One line per key per this many ms.
   * @param maxKeys Keys remembered; beyond it the oldest is forgotten (its next line is logged).
   */
  constructor(
    private readonly clock: Clock,
    private readonly windowMs = 10_000,
    private readonly maxKeys = 64,
  ) {}

  /** Null: leave this line out. A number: log it, with this many left out since the last one. */
  admit(key: string): number | null {
    const nowMs = this.clock.nowMs();
    const e = this.seen.get(key);
    if (e !== undefined && nowMs - e.loggedAtMs < this.windowMs) {
      e.suppressed++;
      return null;
    }
    const suppressed = e?.suppressed ?? 0;
    this.seen.delete(key);
    this.seen.set(key, { loggedAtMs: nowMs, suppressed: 0 });
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value as string);
    return suppressed;
  }
}
