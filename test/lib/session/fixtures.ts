import { newSessionRecord, suspendedRecord } from '../../../lib/session/record.js';
import type { DisconnectReason, Profile, SessionRecord } from '../../../lib/session/record.js';
import { profileFromRecord } from '../../../lib/session/record.js';

/** A suspended record of `identity` that left at `leftAtMs` for `reason`. */
export function leftRecord(leftAtMs: number, reason: DisconnectReason, identity = 'alice'): SessionRecord {
  const r = newSessionRecord({ agentName: 'agent', identity, sessionId: 's1', nowMs: leftAtMs - 60_000, profile: null, participantName: 'Alice' });
  return { ...suspendedRecord({ ...r, state: 'Connected' }, leftAtMs, reason), lastTopic: 'the router', visitCount: 2 };
}

/** The profile a record implies. */
export function profileOf(record: SessionRecord): Profile {
  return profileFromRecord(record);
}
