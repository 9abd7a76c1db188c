import type { Clock } from '../clock.js';
import { RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND } from './limits.js';

/** Options of {@link TokenBucketRateLimiter}. */
export interface RateLimitOptions {
  /** Messages a sender may send at once. @default RATE_LIMIT_BURST */
  burst?: number;
  /** Sustained messages per second. @default RATE_LIMIT_PER_SECOND */
  perSecond?: number;
  /** Most senders with a bucket; the least recently used is forgotten (its bucket is full again). @default 256 */
  maxSenders?: number;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/** A token bucket per sender key, on an injected clock. */
export class TokenBucketRateLimiter {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly maxSenders: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly clock: Clock,
    opts: RateLimitOptions = {},
  ) {
    this.burst = opts.burst ?? RATE_LIMIT_BURST;
    this.perMs = (opts.perSecond ?? RATE_LIMIT_PER_SECOND) / 1000;
    this.maxSenders = opts.maxSenders ?? 256;
  }

  /** Takes one token for `key`; false when the sender is over its rate (nothing taken). */
  tryTake(key: string): boolean {
    const nowMs = this.clock.nowMs();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.burst, updatedAtMs: nowMs };
      if (this.buckets.size >= this.maxSenders) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
    } else {
      this.buckets.delete(key); // re-insert: most recently used last
      const elapsedMs = Math.max(0, nowMs - b.updatedAtMs);
      b.tokens = Math.min(this.burst, b.tokens + elapsedMs * this.perMs);
      b.updatedAtMs = nowMs;
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
