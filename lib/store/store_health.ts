import type { Logger } from '../logger.js';

/**
 * The health of a {@link TieredSessionStore}'s shared tier as its listeners see it: a degraded
 * spell starts with one `degraded` event and ends with one `recovered` event. A listener that
 * subscribes during a spell is told at once, with the event that started it, so a job whose
 * store degraded before the job began (during pre-warm) still reports it.
 */

/** Health changes of a tiered store. */
export type StoreHealthEvent =
  | { type: 'degraded'; reason: string; atMs: number }
  | { type: 'recovered'; replayedKeys: number; atMs: number };

/** See the module comment. */
export class StoreHealth {
  private readonly listeners = new Set<(ev: StoreHealthEvent) => void>();
  /** The event that started the current degraded spell; null while healthy. */
  private spell: StoreHealthEvent | null = null;

  constructor(private readonly log: Logger) {}

  /** True during a degraded spell. */
  get isDegraded(): boolean {
    return this.spell !== null;
  }

  /** Subscribes `listener` (told at once during a spell); returns the unsubscribe function. */
  subscribe(listener: (ev: StoreHealthEvent) => void): () => void {
    this.listeners.add(listener);
    if (this.spell !== null) this.tell(listener, this.spell);
    return () => this.listeners.delete(listener);
  }

  /** Starts a degraded spell (nothing happens during one); returns true when it started one. */
  degraded(reason: string, atMs: number): boolean {
    if (this.spell !== null) return false;
    this.spell = { type: 'degraded', reason, atMs };
    this.emit(this.spell);
    return true;
  }

  /** Ends the degraded spell. */
  recovered(replayedKeys: number, atMs: number): void {
    this.spell = null;
    this.emit({ type: 'recovered', replayedKeys, atMs });
  }

  private emit(ev: StoreHealthEvent): void {
    for (const l of this.listeners) this.tell(l, ev);
  }

  private tell(listener: (ev: StoreHealthEvent) => void, ev: StoreHealthEvent): void {
    try {
      listener(ev);
    } catch (err) {
      this.log.warn({ err: String(err) }, 'store health listener threw');
    }
  }
}
