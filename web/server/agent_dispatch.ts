/**
 * Seed 000 `SpawnAgentOnRejoin`: when a participant rejoins a room that still exists but has
 * no agent in it (its job ended or its worker crashed), dispatch the agent again; and when a
 * participant's agent never arrived (no worker was registered when the room was created), the
 * web client asks for it (`POST /api/agent`). Self-hosted
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
 * How long a dispatch counts as on its way, ms: a job's agent usually joins 1-3 s after the
 * dispatch. Within it no second agent is sent. livekit-server's dispatch list cannot say more:
 * it shows a dispatch's job only late (often after its agent has joined, sometimes not until
 * it has left), and a job whose worker was SIGKILLed still shows as running.
 */
export const DISPATCH_ARRIVAL_GRACE_MS = 10_000;

/**
 * Dispatches `agentName` (`''`: the workers registered with no name, as automatic dispatch does)
 * into `room` unless an agent participant is already there or one is on its way, with the
 * dispatch hint of the participant when given (`lib/dispatch_hint.ts`). Returns `'dispatched'`,
 * `'present'` (an agent is in the room), `'pending'` (a dispatch of `agentName` made within
 * {@link DISPATCH_ARRIVAL_GRACE_MS}: sending another would put two agents in the room) or
 * `'no_room'` (the room is gone: the join will create it and the token's own dispatch applies).
 *
 * An older dispatch with no agent in the room is replaced: no worker took it (none was
 * registered when the room was created: livekit-server drops it and never retries), or its
 * agent left (a crashed worker), or its job is slower than the grace (then two agents start,
 * and the later one's claim takes the session over).
 */
export async function ensureAgentDispatched(
  server: DispatchServer,
  room: string,
  agentName: string,
  hint?: Omit<DispatchHint, 'v'>,
): Promise<'dispatched' | 'present' | 'pending' | 'no_room'> {
  const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
  const existing = await rooms.listRooms([room]);
  if (existing.length === 0) return 'no_room';
  const participants = await rooms.listParticipants(room);
  if (participants.some((p) => (p.kind as number) === PARTICIPANT_KIND_AGENT)) return 'present';
  const dispatches = new AgentDispatchClient(server.url, server.apiKey, server.apiSecret);
  const onItsWay = (await dispatches.listDispatch(room)).some(
    (d) => d.agentName === agentName && Date.now() - Number((d.state?.createdAt ?? 0n) / 1_000_000n) < DISPATCH_ARRIVAL_GRACE_MS,
  );
  if (onItsWay) return 'pending';
  await dispatches.createDispatch(room, agentName, hint ? { metadata: encodeDispatchHint(hint) } : {});
  return 'dispatched';
}
