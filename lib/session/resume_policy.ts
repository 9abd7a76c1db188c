import { greetingLanguageOf, type GreetingLanguage } from './language.js';
import type { ResumePolicy } from './policy.js';
import type { DisconnectReason, Profile, RecordProblem, SessionRecord } from './record.js';

/**
 * The resume decision (DESIGN §3): one pure function of what the store returned, the policy,
 * the disconnect reason and the time. It returns `fresh | resume | reject` with its reason.
 */

/** Why a decision came out the way it did. */
export type ResumeWhy =
  /** No record and no profile: never seen. */
  | 'new_identity'
  /** A rejoin within the room's rejoin window. */
  | 'within_rejoin_ttl'
  /** A resume of a suspended conversation from the shared store. */
  | 'within_session_ttl'
  /** The conversation is past `sessionTtlMs` (or gone while the profile remains). */
  | 'expired'
  /** The policy is `AlwaysFresh`. */
  | 'policy_fresh'
  /** The shared store did not answer in time. */
  | 'store_unavailable'
  /** The stored record failed validation or has an unknown version. */
  | 'record_invalid'
  /** The stored record failed its integrity check. */
  | 'record_tampered'
  /** The previous conversation was ended on purpose and its grace window is over. */
  | 'session_ended';

/** The outcome of {@link decideResume}. */
export type ResumeDecision =
  | { kind: 'fresh'; why: Extract<ResumeWhy, 'new_identity' | 'expired' | 'policy_fresh' | 'store_unavailable' | 'record_invalid' | 'record_tampered' | 'session_ended'> }
  | { kind: 'resume'; why: Extract<ResumeWhy, 'within_rejoin_ttl' | 'within_session_ttl'>; gapMs: number }
  | { kind: 'reject'; why: Extract<ResumeWhy, 'expired' | 'store_unavailable' | 'record_invalid' | 'record_tampered'> };

/** A record the store found but refused. */
export interface RejectedRecord {
  rejected: RecordProblem;
}

/** Inputs of {@link decideResume}. */
export interface ResumeInput {
  /** The stored record, none, or one the store refused. Ignored when `storeAvailable` is false. */
  record: SessionRecord | RejectedRecord | null;
  /** The identity's profile, if known. */
  profile: Profile | null;
  /** The windows and the resume policy in force for this participant. */
  policy: { resumePolicy: ResumePolicy; rejoinTtlMs: number; sessionTtlMs: number };
  /** Why the previous connection ended; null means "take it from the record". */
  reason: DisconnectReason | null;
  /** Now, epoch ms. */
  nowMs: number;
  /** False when the shared store did not answer within the greeting bound. */
  storeAvailable: boolean;
}

/** Reasons after which the room (and its job) is gone, so no in-room rejoin is possible. */
const ROOM_GONE: ReadonlySet<DisconnectReason> = new Set<DisconnectReason>(['room_closed', 'agent_shutdown', 'idle']);

function isRejected(r: SessionRecord | RejectedRecord | null): r is RejectedRecord {
  return r !== null && 'rejected' in r;
}

/**
 * How long ago the participant left (or was last seen, for a record still marked connected:
 * a crashed owner or another tab), in ms; never negative.
 */
export function gapSinceLastSeenMs(record: SessionRecord, nowMs: number): number {
  return Math.max(0, nowMs - (record.disconnectedAt ?? record.lastSeenAt));
}

/**
 * Decides whether to resume. Table (policy × record):
 *
 * | record                  | AlwaysFresh          | ResumeIfPossible            | AlwaysResume                |
 * |-------------------------|----------------------|-----------------------------|-----------------------------|
 * | store unavailable       | fresh policy_fresh   | fresh store_unavailable     | reject store_unavailable    |
 * | none, no profile        | fresh policy_fresh   | fresh new_identity          | fresh new_identity          |
 * | none, profile           | fresh policy_fresh   | fresh expired               | reject expired              |
 * | invalid / tampered      | fresh policy_fresh   | fresh record_*              | reject record_*             |
 * | gap ≤ rejoinTtlMs       | fresh policy_fresh   | resume within_rejoin_ttl    | resume within_rejoin_ttl    |
 * | gap ≤ sessionTtlMs      | fresh policy_fresh   | resume within_session_ttl   | resume within_session_ttl   |
 * | gap > sessionTtlMs      | fresh policy_fresh   | fresh expired               | reject expired              |
 *
 * Reason: after `room_closed` / `agent_shutdown` / `idle` the room is gone, so a resume is always
 * `within_session_ttl`. After `ended` (closed on purpose) only the rejoin window is a grace
 * period; later the answer is `fresh session_ended` under every policy (a deliberate close is
 * not a failure, so `AlwaysResume` does not reject it).
 */
export function decideResume(input: ResumeInput): ResumeDecision {
  const { policy, record } = input;
  if (policy.resumePolicy === 'AlwaysFresh') return { kind: 'fresh', why: 'policy_fresh' };
  const strict = policy.resumePolicy === 'AlwaysResume';
  if (!input.storeAvailable) return strict ? { kind: 'reject', why: 'store_unavailable' } : { kind: 'fresh', why: 'store_unavailable' };
  if (isRejected(record)) return strict ? { kind: 'reject', why: record.rejected } : { kind: 'fresh', why: record.rejected };
  if (record === null) {
    if (input.profile === null) return { kind: 'fresh', why: 'new_identity' };
    return strict ? { kind: 'reject', why: 'expired' } : { kind: 'fresh', why: 'expired' };
  }
  const reason = input.reason ?? record.disconnectReason ?? 'unknown';
  const gapMs = gapSinceLastSeenMs(record, input.nowMs);
  const inRejoin = gapMs <= policy.rejoinTtlMs;
  if (reason === 'ended' && !inRejoin) return { kind: 'fresh', why: 'session_ended' };
  if (inRejoin && !ROOM_GONE.has(reason)) return { kind: 'resume', why: 'within_rejoin_ttl', gapMs };
  if (gapMs <= policy.sessionTtlMs) return { kind: 'resume', why: 'within_session_ttl', gapMs };
  return strict ? { kind: 'reject', why: 'expired' } : { kind: 'fresh', why: 'expired' };
}

/** The reject messages, by language (see `language.ts`). */
const REJECT_TEXTS: Record<GreetingLanguage, { expired: string; storeUnavailable: string; unrestorable: string }> = {
  en: {
    expired: 'Your previous conversation has expired and cannot be resumed. Please start a new session.',
    storeUnavailable: 'Your previous conversation cannot be loaded right now. Please try again in a moment.',
    unrestorable: 'Your previous conversation could not be restored. Please start a new session.',
  },
  es: {
    expired: 'Tu conversación anterior ha caducado y no se puede reanudar. Por favor, inicia una nueva sesión.',
    storeUnavailable: 'Ahora mismo no se puede cargar tu conversación anterior. Por favor, inténtalo de nuevo en un momento.',
    unrestorable: 'No se ha podido restaurar tu conversación anterior. Por favor, inicia una nueva sesión.',
  },
  fr: {
    expired: 'Votre conversation précédente a expiré et ne peut pas être reprise. Veuillez démarrer une nouvelle session.',
    storeUnavailable: 'Votre conversation précédente ne peut pas être chargée pour le moment. Veuillez réessayer dans un instant.',
    unrestorable: "Votre conversation précédente n'a pas pu être restaurée. Veuillez démarrer une nouvelle session.",
  },
  de: {
    expired: 'Ihr vorheriges Gespräch ist abgelaufen und kann nicht fortgesetzt werden. Bitte starten Sie eine neue Sitzung.',
    storeUnavailable: 'Ihr vorheriges Gespräch kann gerade nicht geladen werden. Bitte versuchen Sie es gleich noch einmal.',
    unrestorable: 'Ihr vorheriges Gespräch konnte nicht wiederhergestellt werden. Bitte starten Sie eine neue Sitzung.',
  },
};

/**
 * The message a participant gets when an `AlwaysResume` session cannot be resumed, in their
 * `language` (a BCP 47 tag; English, Spanish, French or German, else English).
 */
export function rejectMessage(decision: Extract<ResumeDecision, { kind: 'reject' }>, language: string | null = null): string {
  const t = REJECT_TEXTS[greetingLanguageOf(language)];
  switch (decision.why) {
    case 'expired':
      return t.expired;
    case 'store_unavailable':
      return t.storeUnavailable;
    case 'record_invalid':
    case 'record_tampered':
      return t.unrestorable;
  }
}
