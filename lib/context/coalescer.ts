/**
 * Coalesces bursts of context updates before they reach a {@link ContextSink}: a burst is
 * written {@link COALESCE_DEBOUNCE_MS} after its last update, and at the latest
 * {@link COALESCE_MAX_DELAY_MS} after its first. Coalescing never changes the model's view
 * ({@link viewOf}): everything before the last Replace/Reset is superseded by it, and the
 * Appends after it are joined into one.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { COALESCE_DEBOUNCE_MS, COALESCE_MAX_DELAY_MS } from './limits.js';
import type { ContextSink } from './sink.js';
import type { TimerHandle, Timers } from './timers.js';
import type { ContextUpdate } from './tracker.js';

/**
 * Reduces a run of updates to at most two with the same resulting view: the last Replace or
 * Reset (if any), then one Append joining every Append after it.
 */
export function coalesceUpdates(updates: readonly ContextUpdate[]): ContextUpdate[] {
  let last = -1;
  for (let i = updates.length - 1; i >= 0; i--) {
    if (updates[i]!.mode !== 'append') {
      last = i;
      break;
    }
  }
  const out: ContextUpdate[] = last >= 0 ? [updates[last]!] : [];
  const appends: string[] = [];
  for (let i = last + 1; i < updates.length; i++) if (updates[i]!.text !== '') appends.push(updates[i]!.text);
  if (appends.length > 0) out.push({ mode: 'append', text: appends.join('\n') });
  return out;
}

/** Options of {@link CoalescingWriter}. */
export interface CoalescingWriterOptions {
  sink: ContextSink;
  clock: Clock;
  timers: Timers;
  /** Quiet time after the last update before writing. @default COALESCE_DEBOUNCE_MS */
  debounceMs?: number;
  /** Longest an update waits during a continuous burst. @default COALESCE_MAX_DELAY_MS */
  maxDelayMs?: number;
  logger?: Logger;
}

/** Buffers updates and writes them to the sink coalesced, serially, never throwing. */
export class CoalescingWriter {
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly log: Logger;
  private buffer: ContextUpdate[] = [];
  private firstAtMs = 0;
  private timer: TimerHandle | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: CoalescingWriterOptions) {
    this.debounceMs = opts.debounceMs ?? COALESCE_DEBOUNCE_MS;
    this.maxDelayMs = opts.maxDelayMs ?? COALESCE_MAX_DELAY_MS;
    this.log = opts.logger ?? silentLogger;
  }

  /** Number of buffered updates not yet written. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Buffers updates and (re)arms the debounce, bounded by the ceiling. */
  push(updates: readonly ContextUpdate[]): void {
    if (updates.length === 0 || this.closed) return;
    const nowMs = this.opts.clock.nowMs();
    if (this.buffer.length === 0) this.firstAtMs = nowMs;
    this.buffer.push(...updates);
    if (this.timer !== undefined) this.opts.timers.clearTimeout(this.timer);
    const delayMs = Math.max(0, Math.min(this.debounceMs, this.firstAtMs + this.maxDelayMs - nowMs));
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  /** Writes whatever is buffered now; resolves when every write so far is done. */
  flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.opts.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = coalesceUpdates(this.buffer);
    this.buffer = [];
    for (const u of batch) this.chain = this.chain.then(() => this.write(u));
    return this.chain;
  }

  /** Flushes and stops accepting updates. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private async write(u: ContextUpdate): Promise<void> {
    try {
      if (u.mode === 'replace') await this.opts.sink.replace(u.text);
      else if (u.mode === 'append') await this.opts.sink.append(u.text);
      else await this.opts.sink.reset();
    } catch (err) {
      this.log.warn({ mode: u.mode, error: err instanceof Error ? err.name : 'unknown' }, 'dynamic context sink write failed');
    }
  }
}
