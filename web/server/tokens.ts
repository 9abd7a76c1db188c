/**
 * Mints participant tokens the way every part of the project must: identity, room, the room
 * configuration (departure timeout covering the rejoin TTL; agent dispatch, with the dispatch
 * hint of `lib/dispatch_hint.ts`, when an agent name is configured) and trusted attributes. Tokens never grant `canUpdateOwnMetadata`, so a
 * participant cannot rewrite the attributes it was given.
 */
import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { ATTR_CONTEXT_PUBLISHER, ATTR_LANGUAGE, ATTR_LANGUAGE_CHOSEN, ATTR_RESUME_POLICY } from '../../lib/attributes.js';
import { encodeDispatchHint } from '../../lib/dispatch_hint.js';

/** The resume policies a token may carry. */
export type ResumePolicyName = 'AlwaysFresh' | 'ResumeIfPossible' | 'AlwaysResume';

/** Options of {@link mintParticipantToken}. */
export interface MintTokenOptions {
  apiKey: string;
  apiSecret: string;
  identity: string;
  room: string;
  /** Display name. */
  name?: string;
  /** Dispatch this agent explicitly; `''`/undefined relies on automatic dispatch. */
  agentName?: string;
  /**
   * The agent's rejoin window, ms. The room's departure timeout is set to cover it (rounded up
   * to whole seconds), so a refresh returns to the same room and job. @default 60 000
   */
  rejoinTtlMs?: number;
  /** Per-participant resume-policy override (trusted attribute). */
  resumePolicy?: ResumePolicyName;
  /** The participant's language, a canonical BCP 47 tag (trusted attribute, see `lib/session/language.ts`). */
  language?: string;
  /** True when the participant chose `language` (trusted attribute `pva.language_chosen`). Only with a language. */
  languageChosen?: boolean;
  /** Marks a backend allowed to publish dynamic context for others. @default false */
  contextPublisher?: boolean;
  /** Token lifetime, seconds. @default 3600 */
  ttlS?: number;
}

/** Returns a signed JWT. */
export async function mintParticipantToken(o: MintTokenOptions): Promise<string> {
  const attributes: Record<string, string> = {};
  if (o.resumePolicy) attributes[ATTR_RESUME_POLICY] = o.resumePolicy;
  if (o.language) attributes[ATTR_LANGUAGE] = o.language;
  if (o.language && o.languageChosen) attributes[ATTR_LANGUAGE_CHOSEN] = 'true';
  if (o.contextPublisher) attributes[ATTR_CONTEXT_PUBLISHER] = '1';
  const at = new AccessToken(o.apiKey, o.apiSecret, {
    identity: o.identity,
    ttl: o.ttlS ?? 3600,
    ...(o.name ? { name: o.name } : {}),
    attributes,
  });
  at.addGrant({
    roomJoin: true,
    room: o.room,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
    canUpdateOwnMetadata: false,
  });
  at.roomConfig = new RoomConfiguration({
    departureTimeout: Math.ceil((o.rejoinTtlMs ?? 60_000) / 1000),
    // The dispatch names who is joining, so the job can fetch the session while it connects.
    ...(o.agentName
      ? { agents: [new RoomAgentDispatch({ agentName: o.agentName, metadata: encodeDispatchHint({ identity: o.identity, ...(o.name ? { name: o.name } : {}), ...(o.resumePolicy ? { resumePolicy: o.resumePolicy } : {}), ...(o.language ? { language: o.language, ...(o.languageChosen ? { languageChosen: true } : {}) } : {}) }) })] }
      : {}),
  });
  return at.toJwt();
}
