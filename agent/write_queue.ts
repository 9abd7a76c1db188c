/**
 * The ordered store-write queue of one participant session: every write runs after the ones
 * queued before it, so turns, context and state land in the order they happened. A lost lease
 * (a newer owner) is reported once to the session; other failures are counted and logged, and
 * the queue goes on.
 */
import type { Clock } from '../lib/clock.js';
import { ConflictError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { JobMetrics } from './metrics.js';

/** Dependencies of {@link StoreWriteQueue}. */
export interface StoreWriteQueueOptions {
  clock: Clock;
  logger: Logger;
  metrics: JobMetrics;
  /** True once the session may write nothing more (taken over, forgotten): queued writes are skipped. */
  isStopped: () => boolean;
  /** A write found its lease held by a newer claim. */
  onLeaseLost: () => void;
}

/** A hold on a {@link StoreWriteQueue} (see {@link StoreWriteQueue.hold}). */
export interface WriteHold {
  /** Lets the held writes run now. */
  release(): void;
  /** Starts the hold's bound if it has none yet: the writes run after `ms` at the latest. */
  bound(ms: number): void;
}

/** See the module comment. */
export class StoreWriteQueue {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly o: StoreWriteQueueOptions) {}

  /** Queues `fn` (named `op` in metrics and logs); resolves when it has run, never rejects. */
  run(op: string, fn: () => Promise<void>): Promise<void> {
    const task = async () => {
      if (this.o.isStopped()) return;
      const t0 = this.o.clock.nowMs();
      try {
        await fn();
        this.o.metrics.observe('pva_store_latency_seconds', (this.o.clock.nowMs() - t0) / 1000, { op });
      } catch (err) {
        if (err instanceof ConflictError && err.code === 'lease_lost') {
          this.o.logger.warn({ op }, 'session lease lost to a newer owner');
          this.o.onLeaseLost();
          return;
        }
        this.o.metrics.inc('pva_store_errors_total', { op });
        this.o.logger.error({ op, error: err instanceof Error ? err.message : String(err) }, 'session store write failed');
      }
    };
    this.tail = this.tail.then(task);
    return this.tail;
  }

  /**
   * Holds every write queued from now on until {@link WriteHold.release} or the end of its
   * bound, whichever is first; they then run in their order. The bound starts now (`maxMs`) or,
   * with `null`, at {@link WriteHold.bound}. Nothing is dropped: {@link drain} waits for them too.
   */
  hold(maxMs: number | null): WriteHold {
    let release = () => {};
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const released = new Promise<void>((resolve) => {
      release = () => {
        done = true;
        clearTimeout(timer);
        resolve();
      };
    });
    const bound = (ms: number) => {
      if (done || timer !== undefined) return;
      timer = setTimeout(release, ms);
      timer.unref();
    };
    if (maxMs !== null) bound(maxMs);
    this.tail = this.tail.then(() => released);
    return { release, bound };
  }

  /** Resolves once every write queued so far has run. */
  drain(): Promise<void> {
    return this.tail;
  }
}
