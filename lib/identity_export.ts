/**
 * "Download my data": everything the agent keeps about one identity, as the participant gets it
 * (the token service's `POST /api/export`) or as an operator answering a request for it gets it
 * (`npm run sessions -- export`): the rooms the token service issued to it and, under every
 * agent, the conversation it holds (its turns, summary, language, dynamic context), the profile
 * that outlives it, and the archived conversations still within their retention. The export's
 * own times (`exportedAt`, `archivedAt`) are ISO 8601; the conversations and profiles are as
 * stored, their times (`createdAt`, `lastSeenAt`, a turn's `createdAtMs`, …) epoch milliseconds.
 * The lease (which job held the conversation) is left out: it is the service's
 * bookkeeping, not the participant's data.
 */
import type { SessionRecord } from './session/record.js';
import type { SessionSnapshot } from './store/session_store.js';

/** Version of the export's layout. */
export const EXPORT_VERSION = 1;

/** A conversation as exported: the record without its lease. */
export type ExportedConversation = Omit<SessionRecord, 'owner'>;

/** One agent's part of an export. */
export interface ExportedAgent {
  agentName: string;
  /** The conversation in progress or suspended; null when none (ended, expired) or when it could not be read. */
  current: ExportedConversation | null;
  /** Why `current` is null although one is stored: it could not be read (tampered, or sealed with a key the service lacks). */
  currentUnreadable?: string;
  /** What the agent remembers across conversations (visits, last topic, language). */
  profile: SessionSnapshot['profile'];
  /** Why `profile` is null although one is stored: it could not be read (tampered, or sealed with a key the service lacks). */
  profileUnreadable?: string;
  /** Earlier conversations, newest first. */
  archived: { sessionId: string; archivedAt: string; conversation: ExportedConversation | null; unreadable?: string }[];
}

/** The whole export. */
export interface IdentityExport {
  v: typeof EXPORT_VERSION;
  identity: string;
  exportedAt: string;
  /** False when the service has no shared store: conversations then live only in the agent's memory while it runs. */
  sharedStore: boolean;
  /** The rooms the service issued to this identity that it may still rejoin. */
  rooms: string[];
  agents: ExportedAgent[];
}

function conversation(record: SessionRecord | null): ExportedConversation | null {
  if (record === null) return null;
  const { owner: _lease, ...rest } = record;
  return rest;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The export of `identity` from the snapshots the session store gave (`exportIdentity`) and its issued rooms. */
export function identityExport(identity: string, snapshots: readonly SessionSnapshot[], rooms: readonly string[], nowMs: number, sharedStore: boolean): IdentityExport {
  const agents = [...snapshots]
    .sort((a, b) => (a.key.agentName < b.key.agentName ? -1 : a.key.agentName > b.key.agentName ? 1 : 0))
    .map(
      (s): ExportedAgent => ({
        agentName: s.key.agentName,
        current: conversation(s.record),
        ...(s.recordProblem === undefined ? {} : { currentUnreadable: s.recordProblem }),
        profile: s.profile,
        ...(s.profileProblem === undefined ? {} : { profileUnreadable: s.profileProblem }),
        archived: s.archive.map((a) => ({ sessionId: a.sessionId, archivedAt: iso(a.archivedAtMs), conversation: conversation(a.record), ...(a.problem === undefined ? {} : { unreadable: a.problem }) })),
      }),
    );
  return { v: EXPORT_VERSION, identity, exportedAt: iso(nowMs), sharedStore, rooms: [...rooms], agents };
}
