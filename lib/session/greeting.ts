import type { ResumeDecision } from './resume_policy.js';
import type { Profile, SessionRecord } from './record.js';

/**
 * Greetings (DESIGN §3): a pure choice from the resume decision, a pure rendering, and a small
 * per-job de-duplicator so exactly one greeting is given per arrival.
 */

/**
 * A drop shorter than this gets no greeting at all (the participant barely left).
 * @default 5_000
 */
export const DEFAULT_MIN_REGREET_GAP_MS = 5_000;

/** What to say to an arriving participant. */
export type GreetingChoice =
  | { kind: 'first_time' }
  | { kind: 'returning'; agoMs: number; visitCount: number; lastTopic: string | null }
  | { kind: 'welcome_back_brief'; agoMs: number }
  | { kind: 'known_fresh'; agoMs: number; visitCount: number }
  | { kind: 'none'; why: 'short_drop' | 'rejected' };

/** Options of {@link chooseGreeting}. */
export interface GreetingOptions {
  /** @default DEFAULT_MIN_REGREET_GAP_MS (5 000 ms) */
  minRegreetGapMs?: number;
}

/**
 * Chooses the greeting for one arrival:
 * - `reject` → none (the participant gets the reject message instead);
 * - `resume` with a gap under `minRegreetGapMs` → none (short drop);
 * - `resume within_rejoin_ttl` → welcome_back_brief;
 * - `resume within_session_ttl` → returning (ago, visit count, last topic);
 * - `fresh` with a known profile (not `policy_fresh`, which must not reveal memory) → known_fresh;
 * - otherwise first_time (also when the store was unavailable).
 */
export function chooseGreeting(
  decision: ResumeDecision,
  record: SessionRecord | null,
  profile: Profile | null,
  nowMs: number,
  opts: GreetingOptions = {},
): GreetingChoice {
  const minGapMs = opts.minRegreetGapMs ?? DEFAULT_MIN_REGREET_GAP_MS;
  switch (decision.kind) {
    case 'reject':
      return { kind: 'none', why: 'rejected' };
    case 'resume': {
      if (decision.gapMs < minGapMs) return { kind: 'none', why: 'short_drop' };
      if (decision.why === 'within_rejoin_ttl') return { kind: 'welcome_back_brief', agoMs: decision.gapMs };
      return {
        kind: 'returning',
        agoMs: decision.gapMs,
        visitCount: (record?.visitCount ?? profile?.visitCount ?? 0) + 1,
        lastTopic: record?.lastTopic ?? profile?.lastTopic ?? null,
      };
    }
    case 'fresh': {
      if (decision.why === 'policy_fresh' || decision.why === 'store_unavailable' || profile === null) return { kind: 'first_time' };
      return { kind: 'known_fresh', agoMs: Math.max(0, nowMs - profile.lastSeenAt), visitCount: profile.visitCount + 1 };
    }
  }
}

/** Rough human wording of a duration ("a few seconds", "3 minutes", "2 days"). */
export function describeAgo(agoMs: number): string {
  const s = Math.round(agoMs / 1000);
  if (s < 45) return 'a few seconds';
  const m = Math.round(s / 60);
  if (m < 60) return m <= 1 ? 'a minute' : `${m} minutes`;
  const h = Math.round(m / 60);
  if (h < 24) return h <= 1 ? 'an hour' : `${h} hours`;
  const d = Math.round(h / 24);
  return d <= 1 ? 'a day' : `${d} days`;
}

function ordinal(n: number): string {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  return `${n}${({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th'}`;
}

/**
 * The text of a greeting, or null for `none`. Pure; `name` is the participant's display name.
 */
export function renderGreeting(choice: GreetingChoice, name: string | null = null): string | null {
  const who = name !== null && name.trim() !== '' ? `, ${name.trim()}` : '';
  switch (choice.kind) {
    case 'none':
      return null;
    case 'first_time':
      return `Hello${who}! I'm glad you're here. How can I help you today?`;
    case 'welcome_back_brief':
      return `Welcome back${who}. Let's pick up where we left off.`;
    case 'returning': {
      const topic = choice.lastTopic !== null ? ` Last time we talked about "${choice.lastTopic}".` : '';
      return `Welcome back${who}! It's been ${describeAgo(choice.agoMs)}, and this is your ${ordinal(choice.visitCount)} visit.${topic} Shall we continue?`;
    }
    case 'known_fresh':
      return `Nice to see you again${who}! It's been ${describeAgo(choice.agoMs)}. What would you like to talk about today?`;
  }
}

/** Options of {@link ArrivalGreeter}. */
export interface ArrivalGreeterOptions {
  /** @default DEFAULT_MIN_REGREET_GAP_MS (5 000 ms) */
  minRegreetGapMs?: number;
  /**
   * Arrivals remembered (oldest forgotten first).
   * @default 1024
   */
  maxRemembered?: number;
}

/**
 * Per-job de-duplicator: {@link shouldGreet} returns true once per arrival id, and false for a
 * second arrival of the same identity within `minRegreetGapMs` of its last greeting.
 */
export class ArrivalGreeter {
  private readonly arrivals = new Map<string, number>();
  private readonly lastGreetedAtMs = new Map<string, number>();
  private readonly minGapMs: number;
  private readonly maxRemembered: number;

  constructor(opts: ArrivalGreeterOptions = {}) {
    this.minGapMs = opts.minRegreetGapMs ?? DEFAULT_MIN_REGREET_GAP_MS;
    this.maxRemembered = Math.max(1, opts.maxRemembered ?? 1024);
  }

  /**
   * Claims the greeting of one arrival. `arrivalId` identifies the arrival (participant sid or
   * join counter); `identity` the person. Returns true exactly once per arrival.
   */
  shouldGreet(identity: string, arrivalId: string, nowMs: number): boolean {
    const arrivalKey = `${identity}\u0000${arrivalId}`;
    if (this.arrivals.has(arrivalKey)) return false;
    this.remember(this.arrivals, arrivalKey, nowMs);
    const last = this.lastGreetedAtMs.get(identity);
    if (last !== undefined && nowMs - last < this.minGapMs) return false;
    this.remember(this.lastGreetedAtMs, identity, nowMs);
    return true;
  }

  private remember(map: Map<string, number>, key: string, nowMs: number): void {
    map.delete(key);
    map.set(key, nowMs);
    while (map.size > this.maxRemembered) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
    }
  }
}
