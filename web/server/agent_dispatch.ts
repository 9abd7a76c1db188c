/**
 * Seed 000 `SpawnAgentOnRejoin`: when a participant rejoins a room that still exists but has
 * no agent in it (its job ended or its worker crashed), dispatch the agent again. Self-hosted
 * LiveKit does not restart failed jobs (job restart policies are cloud only), and token
 * dispatch applies only when the join creates the room.
 */
import { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import { encodeDispatchHint, type DispatchHint } from '../../lib/dispatch_hint.js';

/** `ParticipantInfo.Kind.AGENT` in livekit_models.proto (the SDK does not re-export the enum). */
const PARTICIPANT_KIND_AGENT = 4;

/** Server connection for the dispatch. */
export interface DispatchServer {
  url: string;
  apiKey: string;
  apiSecret: string;
}

/**
 * Dispatches `agentName` into `room` unless an agent participant is already there, with the
 * dispatch hint of the rejoining participant when given (`lib/dispatch_hint.ts`). Returns
 * `'dispatched'`, `'present'` (nothing to do) or `'no_room'` (the room is gone: the join will
 * create it and the token's own dispatch applies).
 */
export async function ensureAgentDispatched(server: DispatchServer, room: string, agentName: string, hint?: Omit<DispatchHint, 'v'>): Promise<'dispatched' | 'present' | 'no_room'> {
  const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
  const existing = await rooms.listRooms([room]);
  if (existing.length === 0) return 'no_room';
  const participants = await rooms.listParticipants(room);
  if (participants.some((p) => (p.kind as number) === PARTICIPANT_KIND_AGENT)) return 'present';
  await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).createDispatch(room, agentName, hint ? { metadata: encodeDispatchHint(hint) } : {});
  return 'dispatched';
}
