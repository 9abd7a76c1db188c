import { z } from 'zod';
import { contextSnapshotSchema, emptyContextSnapshot } from '../context/snapshot.js';

/**
 * The persisted session record and the identity profile (`v: 1`, parsed with zod on read).
 * A record is keyed by `(agentName, identity)`; the profile outlives it (`profileTtlMs`).
 */

/** Schema version of everything in this module. An unknown version reads as `record_invalid` (set aside, never trusted). */
export const RECORD_VERSION = 1;

/** The six Convai session states (seed 000), in their seed order. */
export const SESSION_STATES = ['Disconnected', 'Connecting', 'Connected', 'Reconnecting', 'Disconnecting', 'Error'] as const;

/** One of {@link SESSION_STATES}. */
export type SessionStateName = (typeof SESSION_STATES)[number];

/**
 * Why the participant's previous connection ended, as far as the agent knows.
 * - `client_initiated`: the client left (tab closed, page refresh: LiveKit `CLIENT_INITIATED`).
 * - `network`: signal closed, connection timeout, migration failure: a drop the client did not ask for.
 * - `room_closed`: the room was deleted or its departure timeout ran out.
 * - `agent_shutdown`: the worker or job shut down (deploy, crash recovery).
 * - `taken_over`: the same identity arrived elsewhere and took the session over.
 * - `ended`: the conversation was closed on purpose (resolve, kiosk logout).
 * - `idle`: the agent ended the call after a silence (`lib/session/idle.ts`); the room is gone.
 * - `unknown`: no reason was recorded, or one this version does not know (a newer worker's).
 */
export const DISCONNECT_REASONS = [
  'client_initiated',
  'network',
  'room_closed',
  'agent_shutdown',
  'taken_over',
  'ended',
  'idle',
  'unknown',
] as const;

/** One of {@link DISCONNECT_REASONS}. */
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/** One conversation turn. */
export const turnSchema = z.object({
  /** Stable id (the chat item id); appending the same id twice is a no-op. */
  id: z.string().min(1).max(256),
  role: z.enum(['user', 'assistant']),
  text: z.string(),
  /** When the turn was said, epoch ms. */
  createdAtMs: z.number().int().nonnegative(),
});

/** See {@link turnSchema}. */
export type Turn = z.infer<typeof turnSchema>;

/** Bounded history: the last N turns plus a summary slot for the older ones. */
export const historySchema = z.object({
  /** The most recent turns, oldest first; at most `maxTurns` of them. */
  turns: z.array(turnSchema),
  /** A plain-text digest of turns that fell out of {@link turns}; empty when none did. */
  summary: z.string(),
  /** How many turns the summary stands for. */
  summarizedTurnCount: z.number().int().nonnegative(),
});

/** See {@link historySchema}. */
export type History = z.infer<typeof historySchema>;

/** The owner lease as the record last saw it (the store's lease key is authoritative). */
export const ownerSchema = z.object({
  /** Unique id of the owning job (worker id + job id + random). */
  ownerId: z.string(),
  /** Fencing token the owner got from its claim. */
  fence: z.number().int().nonnegative(),
  /** When the lease lapses unless renewed, epoch ms. */
  leaseExpiresAtMs: z.number().int().nonnegative(),
});

/** See {@link ownerSchema}. */
export type OwnerLease = z.infer<typeof ownerSchema>;

/** The session record, version 1. */
export const sessionRecordSchema = z.object({
  v: z.literal(RECORD_VERSION),
  sessionId: z.string().min(1),
  identity: z.string(),
  agentName: z.string(),
  state: z.enum(SESSION_STATES),
  /** When this conversation started, epoch ms. */
  createdAt: z.number().int().nonnegative(),
  /** Last activity (arrival, turn, save), epoch ms. */
  lastSeenAt: z.number().int().nonnegative(),
  /** When the participant last left, epoch ms; null while connected. */
  disconnectedAt: z.number().int().nonnegative().nullable(),
  /**
   * A reason this version does not know reads as `unknown`, so a record a newer worker wrote with
   * a new reason stays readable during a rolling upgrade instead of being set aside as invalid.
   */
  disconnectReason: z.union([z.enum(DISCONNECT_REASONS), z.string().max(64).transform((): DisconnectReason => 'unknown')]).nullable(),
  /** Rejoins and resumes of this conversation. */
  reconnectCount: z.number().int().nonnegative(),
  /** Greeted arrivals of this identity to this agent, this one included. */
  visitCount: z.number().int().nonnegative(),
  /** First time this identity was seen by this agent, epoch ms (copied from the profile). */
  firstSeenAt: z.number().int().nonnegative(),
  participantName: z.string().nullable(),
  language: z.string().nullable(),
  /** True when `language` was learned from the participant's own words (speech, or typed text); it then outranks a token's (see `arrivalLanguage`). */
  languageHeard: z.boolean().optional(),
  /** True when the participant chose `language` (the web client's menu); it then outranks a browser's (see `arrivalLanguage`). */
  languageChosen: z.boolean().optional(),
  history: historySchema,
  context: contextSnapshotSchema,
  lastTopic: z.string().optional(),
  owner: ownerSchema.nullable(),
  /** Compare-and-set version; the store's counter is authoritative and overwrites it on read. */
  version: z.number().int().nonnegative(),
});

/** See {@link sessionRecordSchema}. */
export type SessionRecord = z.infer<typeof sessionRecordSchema>;

/** What is kept about an identity after its conversation expired (`profileTtlMs`). */
export const profileSchema = z.object({
  v: z.literal(RECORD_VERSION),
  identity: z.string(),
  agentName: z.string(),
  /** First arrival, epoch ms. */
  firstSeenAt: z.number().int().nonnegative(),
  /** Last activity, epoch ms. */
  lastSeenAt: z.number().int().nonnegative(),
  visitCount: z.number().int().nonnegative(),
  participantName: z.string().nullable(),
  language: z.string().nullable(),
  /** See the record's `languageHeard`. */
  languageHeard: z.boolean().optional(),
  /** See the record's `languageChosen`. */
  languageChosen: z.boolean().optional(),
  lastTopic: z.string().optional(),
  lastSessionId: z.string().nullable(),
});

/** See {@link profileSchema}. */
export type Profile = z.infer<typeof profileSchema>;

/** Why a stored payload was not accepted. */
export type RecordProblem = 'record_invalid' | 'record_tampered';

/** The outcome of parsing an untrusted value: a record, or why not. */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; why: RecordProblem };

/** Parses an untrusted value as a {@link SessionRecord}; an unknown `v` is `record_invalid`. */
export function parseSessionRecord(value: unknown): ParseResult<SessionRecord> {
  const r = sessionRecordSchema.safeParse(value);
  return r.success ? { ok: true, value: r.data } : { ok: false, why: 'record_invalid' };
}

/** Parses an untrusted value as a {@link Profile}. */
export function parseProfile(value: unknown): ParseResult<Profile> {
  const r = profileSchema.safeParse(value);
  return r.success ? { ok: true, value: r.data } : { ok: false, why: 'record_invalid' };
}

/** Inputs of {@link newSessionRecord}. */
export interface NewSessionInput {
  agentName: string;
  identity: string;
  sessionId: string;
  /** Arrival time, epoch ms. */
  nowMs: number;
  /** The identity's profile, when it is known: keeps `firstSeenAt` and the visit count. */
  profile: Profile | null;
  participantName?: string | null;
  language?: string | null;
}

/** A fresh conversation record in state `Connecting`, visit count carried from the profile. */
export function newSessionRecord(input: NewSessionInput): SessionRecord {
  const { profile } = input;
  const record: SessionRecord = {
    v: RECORD_VERSION,
    sessionId: input.sessionId,
    identity: input.identity,
    agentName: input.agentName,
    state: 'Connecting',
    createdAt: input.nowMs,
    lastSeenAt: input.nowMs,
    disconnectedAt: null,
    disconnectReason: null,
    reconnectCount: 0,
    visitCount: (profile?.visitCount ?? 0) + 1,
    firstSeenAt: profile?.firstSeenAt ?? input.nowMs,
    participantName: input.participantName ?? profile?.participantName ?? null,
    language: input.language ?? profile?.language ?? null,
    history: { turns: [], summary: '', summarizedTurnCount: 0 },
    context: emptyContextSnapshot(),
    owner: null,
    version: 0,
  };
  if (input.language == null && profile?.languageHeard === true) record.languageHeard = true;
  if (input.language == null && profile?.languageChosen === true) record.languageChosen = true;
  return record;
}

/**
 * The record of a resumed conversation: reconnect counted, back to `Connecting`. A return greeted
 * as one (`isNewVisit`: the `returning` greeting) also counts a visit; a rejoin within the room,
 * or a resume after a drop too short to greet, does not.
 */
export function resumedRecord(record: SessionRecord, nowMs: number, isNewVisit: boolean): SessionRecord {
  return {
    ...record,
    state: 'Connecting',
    lastSeenAt: Math.max(record.lastSeenAt, nowMs),
    disconnectedAt: null,
    disconnectReason: null,
    reconnectCount: record.reconnectCount + 1,
    visitCount: record.visitCount + (isNewVisit ? 1 : 0),
  };
}

/** The record after its participant left: `Disconnected`, with when and why. */
export function suspendedRecord(record: SessionRecord, nowMs: number, reason: DisconnectReason): SessionRecord {
  return {
    ...record,
    state: 'Disconnected',
    lastSeenAt: Math.max(record.lastSeenAt, nowMs),
    disconnectedAt: nowMs,
    disconnectReason: reason,
    owner: null,
  };
}

/** The profile a record implies (what survives the conversation). */
export function profileFromRecord(record: SessionRecord): Profile {
  const profile: Profile = {
    v: RECORD_VERSION,
    identity: record.identity,
    agentName: record.agentName,
    firstSeenAt: record.firstSeenAt,
    lastSeenAt: record.lastSeenAt,
    visitCount: record.visitCount,
    participantName: record.participantName,
    language: record.language,
    lastSessionId: record.sessionId,
  };
  if (record.languageHeard === true) profile.languageHeard = true;
  if (record.languageChosen === true) profile.languageChosen = true;
  if (record.lastTopic !== undefined) profile.lastTopic = record.lastTopic;
  return profile;
}
