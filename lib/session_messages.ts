/**
 * Agent → client messages on {@link SESSION_TOPIC}: what the agent decided about this
 * participant's session (state, greeting kind, resume decision, errors). Clients show them;
 * tests assert on them. JSON, validated with zod, always `v: 1`.
 */
import { z } from 'zod';

import { parseLanguageTag } from './session/language.js';
import { SESSION_STATES } from './session/record.js';

export { SESSION_STATES, type SessionStateName } from './session/record.js';

/** Greeting kinds the agent may choose for one arrival. */
export const GREETING_KINDS = ['first_time', 'returning', 'welcome_back_brief', 'known_fresh', 'none'] as const;

/** One status message from the agent about the receiving participant's session. */
export const sessionStatusMessageSchema = z.object({
  v: z.literal(1),
  type: z.literal('session_status'),
  /** The session id (stable across resumes). */
  sessionId: z.string(),
  state: z.enum(SESSION_STATES),
  /** `fresh` | `resume` | `reject` and why (e.g. `within_session_ttl`). */
  decision: z.object({ kind: z.enum(['fresh', 'resume', 'reject']), why: z.string() }).optional(),
  greeting: z.enum(GREETING_KINDS).optional(),
  /** Number of earlier turns restored into the model's context. */
  restoredTurns: z.number().int().nonnegative().optional(),
  /** A user-facing error (no personal data), e.g. when `AlwaysResume` cannot resume. */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /**
   * The agent ended the call, and why (`idle`: after a silence it checked in on; more reasons may
   * come, so a client treats any value as "ended"), with what it said. The room is deleted next:
   * a client does not rejoin it, and a new call resumes the conversation (within the session TTL).
   */
  ended: z.object({ reason: z.string().max(64), message: z.string() }).optional(),
  /** The store is unreachable and the agent works from memory. */
  degraded: z.boolean().optional(),
  /**
   * The conversation's language (a canonical BCP 47 tag) when one is known: the token's, the one
   * remembered from an earlier visit, or the one the participant was heard speaking. Absent: none
   * known (the agent greets and speaks English).
   */
  language: z
    .string()
    .refine((v) => parseLanguageTag(v) === v, { message: 'must be a canonical BCP 47 language tag' })
    .optional(),
  /** True when `language` was learned from the participant's own words (speech, or typed text), not given by a token. */
  languageHeard: z.boolean().optional(),
  /** True when the participant chose `language` themselves (the web client's menu). */
  languageChosen: z.boolean().optional(),
});
/** See {@link sessionStatusMessageSchema}. */
export type SessionStatusMessage = z.infer<typeof sessionStatusMessageSchema>;

/** Encodes a status message (UTF-8 JSON). */
export function encodeSessionStatus(msg: SessionStatusMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(msg));
}

/** Decodes a status message; `undefined` when it is not one. */
export function decodeSessionStatus(payload: Uint8Array): SessionStatusMessage | undefined {
  try {
    const r = sessionStatusMessageSchema.safeParse(JSON.parse(new TextDecoder().decode(payload)));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
