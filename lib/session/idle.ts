import { greetingLanguageOf, type GreetingLanguage } from './language.js';

/**
 * The idle rule of a call, as a pure `idleStep(state, event, nowMs) -> { state, effects }`: a
 * participant who stays silent gets one check-in ("Are you still there?"), and if nothing comes
 * back, a goodbye and the end of the call, so a tab left open does not hold a job, a room and
 * a lease forever. The conversation is suspended, not ended: a call within the session TTL
 * resumes it (the `idle` disconnect reason).
 *
 * ```
 * listening --silence ≥ checkInAfterMs--> checked_in (say the check-in)
 * checked_in --silence ≥ hangUpAfterMs after the check-in--> hung_up (say goodbye, end the call)
 * listening / checked_in --participant speaks or types--> listening (the clock starts again)
 * any --participant left (rejoin window)--> paused --back--> listening
 * ```
 *
 * Silence is counted only while the agent is neither thinking nor speaking: a long answer is
 * not idleness, and the clock starts when the agent goes quiet. Data messages (dynamic context)
 * are not activity: an app may send them on its own while nobody is there.
 */

/** When the idle rule acts; 0 turns a step off. */
export interface IdleLimits {
  /** Silence before the check-in, ms; 0 = no check-in (the hang-up then counts from the silence's start). */
  checkInAfterMs: number;
  /** Silence after the check-in (or, without one, in all) before the call ends, ms; 0 = never end it. */
  hangUpAfterMs: number;
}

/** Two minutes of silence, then thirty seconds after the check-in. */
export const DEFAULT_IDLE_LIMITS: Readonly<IdleLimits> = Object.freeze({ checkInAfterMs: 120_000, hangUpAfterMs: 30_000 });

/** Where the call is in the idle rule. */
export type IdlePhase = 'listening' | 'checked_in' | 'paused' | 'hung_up';

/** The idle state: the phase and what the clock needs. */
export interface IdleState {
  phase: IdlePhase;
  /** The agent is thinking or speaking: no silence is counted. */
  agentBusy: boolean;
  /** When the current silence began, epoch ms. */
  quietSinceMs: number;
  limits: IdleLimits;
}

/** What the job reports. */
export type IdleEvent =
  /** The participant spoke (speech started, or a transcript) or typed a message. */
  | { type: 'user_active' }
  /** The agent started thinking or speaking. */
  | { type: 'agent_busy' }
  /** The agent is listening again. */
  | { type: 'agent_quiet' }
  /** The participant left the room (the rejoin window decides what happens next). */
  | { type: 'participant_away' }
  /** The participant is back in the room. */
  | { type: 'participant_back' }
  /** A timer the job set from `schedule` fired. */
  | { type: 'tick' };

/** Work for the job. */
export type IdleEffect =
  /** Say the check-in ({@link idleCheckInText}). */
  | { type: 'check_in' }
  /** Say goodbye ({@link idleGoodbyeText}) and end the call, suspending the conversation (`idle`). */
  | { type: 'hang_up' }
  /** Call back with a `tick` at `atMs` (epoch ms), replacing any earlier timer; null = no timer. */
  | { type: 'schedule'; atMs: number | null };

/** The result of {@link idleStep}. */
export interface IdleStep {
  state: IdleState;
  effects: IdleEffect[];
}

/** The state of a call that just started (the agent is about to greet). */
export function initialIdle(limits: IdleLimits, nowMs: number): IdleState {
  return { phase: 'listening', agentBusy: false, quietSinceMs: nowMs, limits };
}

/** When the next step is due, epoch ms, or null when no clock runs. */
export function idleDeadline(s: IdleState): number | null {
  if (s.agentBusy) return null;
  const { checkInAfterMs, hangUpAfterMs } = s.limits;
  if (s.phase === 'listening') {
    if (checkInAfterMs > 0) return s.quietSinceMs + checkInAfterMs;
    return hangUpAfterMs > 0 ? s.quietSinceMs + hangUpAfterMs : null;
  }
  if (s.phase === 'checked_in') return hangUpAfterMs > 0 ? s.quietSinceMs + hangUpAfterMs : null;
  return null;
}

function step(state: IdleState, effects: IdleEffect[] = []): IdleStep {
  return { state, effects: [...effects, { type: 'schedule', atMs: idleDeadline(state) }] };
}

/** The next idle state and what to do. Pure; see the module comment. */
export function idleStep(s: IdleState, event: IdleEvent, nowMs: number): IdleStep {
  if (s.phase === 'hung_up') return { state: s, effects: [{ type: 'schedule', atMs: null }] };
  switch (event.type) {
    case 'user_active':
      if (s.phase === 'paused') return step(s);
      return step({ ...s, phase: 'listening', quietSinceMs: nowMs });
    case 'agent_busy':
      return step({ ...s, agentBusy: true });
    case 'agent_quiet':
      // The silence starts now, in either phase: after the check-in it is the time to answer it.
      return step({ ...s, agentBusy: false, quietSinceMs: nowMs });
    case 'participant_away':
      return step({ ...s, phase: 'paused' });
    case 'participant_back':
      return step({ ...s, phase: 'listening', quietSinceMs: nowMs });
    case 'tick': {
      const due = idleDeadline(s);
      if (due === null || nowMs < due) return step(s);
      if (s.phase === 'listening' && s.limits.checkInAfterMs > 0) {
        return step({ ...s, phase: 'checked_in', quietSinceMs: nowMs }, [{ type: 'check_in' }]);
      }
      return { state: { ...s, phase: 'hung_up' }, effects: [{ type: 'hang_up' }, { type: 'schedule', atMs: null }] };
    }
  }
}

/** What the agent says, by language (see `language.ts`). */
const IDLE_TEXTS: Record<GreetingLanguage, { checkIn: string; goodbyeSaved: string; goodbye: string }> = {
  en: {
    checkIn: "Are you still there? I'm here whenever you want to continue.",
    goodbyeSaved: "It's been quiet for a while, so I'll end the call here. Our conversation is saved: call again soon and we'll pick up where we left off.",
    goodbye: "It's been quiet for a while, so I'll end the call here. Goodbye!",
  },
  es: {
    checkIn: '¿Sigues ahí? Estoy aquí cuando quieras continuar.',
    goodbyeSaved: 'Hace un rato que no hablamos, así que voy a terminar la llamada. Nuestra conversación queda guardada: vuelve a llamar pronto y seguiremos donde lo dejamos.',
    goodbye: 'Hace un rato que no hablamos, así que voy a terminar la llamada. ¡Hasta pronto!',
  },
  fr: {
    checkIn: 'Vous êtes toujours là ? Je suis là quand vous voulez continuer.',
    goodbyeSaved: "Cela fait un moment que c'est calme, je vais donc mettre fin à l'appel. Notre conversation est enregistrée : rappelez bientôt et nous reprendrons là où nous nous sommes arrêtés.",
    goodbye: "Cela fait un moment que c'est calme, je vais donc mettre fin à l'appel. Au revoir !",
  },
  de: {
    checkIn: 'Sind Sie noch da? Ich bin da, wann immer Sie weitermachen möchten.',
    goodbyeSaved: 'Es ist schon eine Weile still, deshalb beende ich das Gespräch jetzt. Unser Gespräch ist gespeichert: Rufen Sie bald wieder an, dann machen wir dort weiter, wo wir aufgehört haben.',
    goodbye: 'Es ist schon eine Weile still, deshalb beende ich das Gespräch jetzt. Auf Wiederhören!',
  },
};

/** The check-in, in the conversation's `language` (a BCP 47 tag; English, Spanish, French or German, else English). */
export function idleCheckInText(language: string | null): string {
  return IDLE_TEXTS[greetingLanguageOf(language)].checkIn;
}

/**
 * The goodbye before an idle hang-up, in the conversation's `language`. `resumable`: a later call
 * picks the conversation up (false under `AlwaysFresh`, which keeps nothing for next time).
 */
export function idleGoodbyeText(language: string | null, resumable: boolean): string {
  const t = IDLE_TEXTS[greetingLanguageOf(language)];
  return resumable ? t.goodbyeSaved : t.goodbye;
}
