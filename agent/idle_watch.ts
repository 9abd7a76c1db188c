/**
 * Runs the idle rule of one call (`lib/session/idle.ts`) on real timers: the job reports what
 * happens (the participant speaking or typing, the agent busy or quiet, the participant leaving
 * and coming back), and the watch calls back when it is time to check in or to hang up.
 */
import type { Clock } from '../lib/clock.js';
import { idleDeadline, idleStep, initialIdle, type IdleEvent, type IdleLimits, type IdleState } from '../lib/session/idle.js';

/** What the watch calls. */
export interface IdleActions {
  /** Say the check-in. */
  checkIn(): void;
  /** Say goodbye and end the call. Called at most once. */
  hangUp(): void;
}

/** See the module comment. */
export class IdleWatch {
  private state: IdleState;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    limits: IdleLimits,
    private readonly clock: Clock,
    private readonly actions: IdleActions,
  ) {
    this.state = initialIdle(limits, clock.nowMs());
    this.schedule(idleDeadline(this.state));
  }

  /** Reports an event; runs what the rule says. */
  report(event: IdleEvent): void {
    const r = idleStep(this.state, event, this.clock.nowMs());
    this.state = r.state;
    for (const e of r.effects) {
      if (e.type === 'schedule') this.schedule(e.atMs);
      else if (e.type === 'check_in') this.actions.checkIn();
      else this.actions.hangUp();
    }
  }

  /** Stops the timer; nothing is called any more. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.state = { ...this.state, phase: 'hung_up' };
  }

  private schedule(atMs: number | null): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (atMs === null) return;
    this.timer = setTimeout(() => this.report({ type: 'tick' }), Math.max(0, atMs - this.clock.nowMs()));
    this.timer.unref();
  }
}
