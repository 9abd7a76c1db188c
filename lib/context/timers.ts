import type { ManualClock } from '../clock.js';

/** An opaque timer handle. */
export type TimerHandle = unknown;

/** Injected timers, so coalescing and retries run on fake time in tests. */
export interface Timers {
  /** Calls `fn` once after `delayMs`. */
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer (unknown or fired handles are ignored). */
  clearTimeout(handle: TimerHandle): void;
}

/** Real timers, `unref()`'d where the runtime supports it (Node) so they never keep a process alive. */
export const systemTimers: Timers = {
  setTimeout(fn, delayMs) {
    const h = globalThis.setTimeout(fn, delayMs) as unknown as { unref?: () => void };
    h.unref?.();
    return h;
  },
  clearTimeout(handle) {
    globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]);
  },
};

/** Timers driven by a {@link ManualClock}; `advance` runs what falls due, in order. For tests and benches. */
export class ManualTimers implements Timers {
  private nextId = 1;
  private readonly pending = new Map<number, { atMs: number; fn: () => void }>();

  constructor(private readonly clock: ManualClock) {}

  setTimeout(fn: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.pending.set(id, { atMs: this.clock.nowMs() + Math.max(0, delayMs), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete(handle as number);
  }

  /** Number of timers not yet fired. */
  get size(): number {
    return this.pending.size;
  }

  /** Moves the clock forward by `deltaMs`, firing due timers in time order. */
  advance(deltaMs: number): void {
    const endMs = this.clock.nowMs() + deltaMs;
    for (;;) {
      let best: [number, { atMs: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].atMs <= endMs && (best === undefined || e[1].atMs < best[1].atMs)) best = e;
      if (best === undefined) break;
      this.pending.delete(best[0]);
      if (best[1].atMs > this.clock.nowMs()) this.clock.set(best[1].atMs);
      best[1].fn();
    }
    if (endMs > this.clock.nowMs()) this.clock.set(endMs);
  }
}
