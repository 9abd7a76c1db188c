import type { ResumeDecision } from './resume_policy.js';
import { greetingLanguageOf, type GreetingLanguage } from './language.js';
import type { DisconnectReason, Profile, SessionRecord } from './record.js';

/**
 * Greetings (DESIGN §3): a pure choice from the resume decision and a pure rendering. One
 * greeting per arrival is the job's part: it chooses once, when the participant links or rejoins.
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

/** Leaves that ended the call on purpose: whoever calls again is a new arrival, greeted however soon. */
const CALL_ENDED: ReadonlySet<DisconnectReason> = new Set<DisconnectReason>(['client_initiated', 'ended', 'idle']);

/**
 * Whether the short-drop rule (no greeting for a return within `minRegreetGapMs`) applies to a
 * return after a leave recorded as `reason`; where it does not, the return is a new arrival,
 * greeted once however soon it comes. `withinJob`: the participant came back to the job that
 * is still serving the conversation (a rejoin), not to a new job (an arrival).
 *
 * | reason                                    | arrival (new job) | rejoin (same job) |
 * |-------------------------------------------|-------------------|-------------------|
 * | `network`                                 | applies           | applies           |
 * | `client_initiated`, `ended`, `idle`       | —                 | —                 |
 * | anything else, or none recorded           | applies           | —                 |
 *
 * At an arrival, "anything else" is a drop the participant did not choose (a worker that went
 * away, a room closed under them). Within a job it is a new connection of the same identity
 * (a page reload, a reopened tab) that replaced the old one before its leave was known. An
 * arrival that takes the conversation from a job still holding it (another tab, or a worker
 * that died with its lease running) is greeted once however soon (`agent/participant_session.ts`).
 */
export function shortDropRuleApplies(reason: DisconnectReason | null, withinJob: boolean): boolean {
  if (reason === 'network') return true;
  if (withinJob) return false;
  return reason === null || !CALL_ENDED.has(reason);
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

/** Greeting texts of one language. `who` is `, <name>` or empty. */
interface GreetingTexts {
  firstTime(who: string): string;
  welcomeBackBrief(who: string): string;
  returning(who: string, ago: string, visitCount: number, lastTopic: string | null): string;
  knownFresh(who: string, ago: string): string;
  /** What the participant hears when another tab or device took the conversation over. */
  takenOver: string;
  /** How long ago, as it reads after "it's been" (or its translation). */
  ago(unit: 'seconds' | 'minute' | 'hour' | 'day', count: number): string;
}

function englishOrdinal(n: number): string {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  return `${n}${({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th'}`;
}

/** Spanish "it's been": the verb agrees with the time ("ha pasado un día", "han pasado 2 días"). */
function haPasado(ago: string): string {
  return /^un[ao]? /.test(ago) ? 'Ha pasado' : 'Han pasado';
}

/** The greetings, by language (see `language.ts`). */
const TEXTS: Record<GreetingLanguage, GreetingTexts> = {
  en: {
    firstTime: (who) => `Hello${who}! I'm glad you're here. How can I help you today?`,
    welcomeBackBrief: (who) => `Welcome back${who}. Let's pick up where we left off.`,
    returning: (who, ago, n, topic) => `Welcome back${who}! It's been ${ago}, and this is your ${englishOrdinal(n)} visit.${topic !== null ? ` Last time we talked about "${topic}".` : ''} Shall we continue?`,
    knownFresh: (who, ago) => `Nice to see you again${who}! It's been ${ago}. What would you like to talk about today?`,
    takenOver: 'This conversation has continued in another window, so I am leaving this one.',
    ago: (unit, n) => ({ seconds: 'a few seconds', minute: n === 1 ? 'a minute' : `${n} minutes`, hour: n === 1 ? 'an hour' : `${n} hours`, day: n === 1 ? 'a day' : `${n} days` })[unit],
  },
  es: {
    firstTime: (who) => `¡Hola${who}! Me alegra que estés aquí. ¿En qué puedo ayudarte hoy?`,
    welcomeBackBrief: (who) => `Hola de nuevo${who}. Sigamos donde lo dejamos.`,
    returning: (who, ago, n, topic) => `¡Hola de nuevo${who}! ${haPasado(ago)} ${ago} y esta es tu visita número ${n}.${topic !== null ? ` La última vez hablamos de «${topic}».` : ''} ¿Seguimos?`,
    knownFresh: (who, ago) => `¡Qué gusto verte otra vez${who}! ${haPasado(ago)} ${ago}. ¿De qué te gustaría hablar hoy?`,
    takenOver: 'Esta conversación ha continuado en otra ventana, así que dejo esta.',
    ago: (unit, n) => ({ seconds: 'unos segundos', minute: n === 1 ? 'un minuto' : `${n} minutos`, hour: n === 1 ? 'una hora' : `${n} horas`, day: n === 1 ? 'un día' : `${n} días` })[unit],
  },
  fr: {
    firstTime: (who) => `Bonjour${who} ! Je suis ravi que vous soyez là. Comment puis-je vous aider aujourd'hui ?`,
    welcomeBackBrief: (who) => `Rebonjour${who}. Reprenons là où nous nous étions arrêtés.`,
    returning: (who, ago, n, topic) => `Bon retour${who} ! Cela fait ${ago}, et c'est votre ${n === 1 ? '1re' : `${n}e`} visite.${topic !== null ? ` La dernière fois, nous avons parlé de « ${topic} ».` : ''} On continue ?`,
    knownFresh: (who, ago) => `Ravi de vous revoir${who} ! Cela fait ${ago}. De quoi aimeriez-vous parler aujourd'hui ?`,
    takenOver: 'Cette conversation continue dans une autre fenêtre, je quitte donc celle-ci.',
    ago: (unit, n) => ({ seconds: 'quelques secondes', minute: n === 1 ? 'une minute' : `${n} minutes`, hour: n === 1 ? 'une heure' : `${n} heures`, day: n === 1 ? 'un jour' : `${n} jours` })[unit],
  },
  de: {
    firstTime: (who) => `Hallo${who}! Schön, dass Sie da sind. Wie kann ich Ihnen heute helfen?`,
    welcomeBackBrief: (who) => `Willkommen zurück${who}. Machen wir dort weiter, wo wir aufgehört haben.`,
    returning: (who, ago, n, topic) => `Willkommen zurück${who}! Es ist ${ago} her, und das ist Ihr ${n}. Besuch.${topic !== null ? ` Beim letzten Mal ging es um „${topic}“.` : ''} Wollen wir weitermachen?`,
    knownFresh: (who, ago) => `Schön, Sie wiederzusehen${who}! Es ist ${ago} her. Worüber möchten Sie heute sprechen?`,
    takenOver: 'Dieses Gespräch geht in einem anderen Fenster weiter, daher verlasse ich dieses hier.',
    ago: (unit, n) => ({ seconds: 'ein paar Sekunden', minute: n === 1 ? 'eine Minute' : `${n} Minuten`, hour: n === 1 ? 'eine Stunde' : `${n} Stunden`, day: n === 1 ? 'einen Tag' : `${n} Tage` })[unit],
  },
};

/**
 * How long ago `agoMs` was, rounded to the largest unit ("2 hours", "a few seconds"), in
 * `language` (a BCP 47 tag; English when it has no greetings).
 */
export function describeAgo(agoMs: number, language: string | null = null): string {
  const t = TEXTS[greetingLanguageOf(language)];
  // Each unit is rounded from the time itself: rounding an already rounded figure made 89 min 40 s "2 hours".
  const s = Math.round(agoMs / 1000);
  if (s < 45) return t.ago('seconds', s);
  const m = Math.round(agoMs / 60_000);
  if (m < 60) return t.ago('minute', m);
  const h = Math.round(agoMs / 3_600_000);
  if (h < 24) return t.ago('hour', h);
  return t.ago('day', Math.round(agoMs / 86_400_000));
}

/** What the participant hears when another tab or device took the conversation over, in their `language`. */
export function takenOverMessage(language: string | null = null): string {
  return TEXTS[greetingLanguageOf(language)].takenOver;
}

/**
 * The text of a greeting (null for `none`), in the participant's `language` (a BCP 47 tag:
 * English, Spanish, French and German have greetings; any other language gets English).
 */
export function renderGreeting(choice: GreetingChoice, name: string | null = null, language: string | null = null): string | null {
  const who = name !== null && name.trim() !== '' ? `, ${name.trim()}` : '';
  const t = TEXTS[greetingLanguageOf(language)];
  switch (choice.kind) {
    case 'none':
      return null;
    case 'first_time':
      return t.firstTime(who);
    case 'welcome_back_brief':
      return t.welcomeBackBrief(who);
    case 'returning':
      return t.returning(who, describeAgo(choice.agoMs, language), choice.visitCount, choice.lastTopic);
    case 'known_fresh':
      return t.knownFresh(who, describeAgo(choice.agoMs, language));
  }
}
