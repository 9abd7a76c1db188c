/**
 * The thin edge between a LiveKit room and `lib/`: maps room events to the participant
 * session, data messages to the dynamic-context receiver, and sends the agent's replies
 * (context acknowledgements, session status) back as data messages.
 */
import { DisconnectReason as RtcDisconnectReason, ParticipantKind, RoomEvent, type RemoteParticipant, type Room } from '@livekit/rtc-node';
import { RoomServiceClient } from 'livekit-server-sdk';
import { ATTR_AGENT_LEFT, ATTR_AGENT_NAME, CONTEXT_TOPIC, SESSION_TOPIC } from '../lib/attributes.js';
import type { ContextReceiver, ContextReplyTransport } from '../lib/context/receiver.js';
import { pii, type Logger } from '../lib/logger.js';
import type { DisconnectReason } from '../lib/session/record.js';
import { encodeSessionStatus, type SessionStatusMessage } from '../lib/session_messages.js';
import type { JobMetrics } from './metrics.js';

/** Maps LiveKit's disconnect reason to ours. */
export function mapDisconnectReason(reason: RtcDisconnectReason | undefined): DisconnectReason {
  switch (reason) {
    case RtcDisconnectReason.CLIENT_INITIATED:
    // The same identity connected anew (a reload, another tab in this room): the client chose it.
    case RtcDisconnectReason.DUPLICATE_IDENTITY:
      return 'client_initiated';
    case RtcDisconnectReason.ROOM_DELETED:
    case RtcDisconnectReason.ROOM_CLOSED:
    case RtcDisconnectReason.SERVER_SHUTDOWN:
      return 'room_closed';
    case RtcDisconnectReason.PARTICIPANT_REMOVED:
      return 'ended';
    case RtcDisconnectReason.UNKNOWN_REASON:
    case undefined:
      return 'unknown';
    default:
      // SIGNAL_CLOSE, CONNECTION_TIMEOUT, MIGRATION, JOIN_FAILURE, …
      return 'network';
  }
}

/** Participants who are people: a browser or app (standard), a phone caller (SIP). Agents, recorders and ingress streams are not. */
const PEOPLE: ReadonlySet<ParticipantKind> = new Set([ParticipantKind.STANDARD, ParticipantKind.SIP]);

/** What {@link endCallFor} needs: the room, and the server's address and credentials. */
export interface CallEnder {
  room: Room;
  livekit: { url: string; apiKey: string; apiSecret: string };
  logger: Logger;
}

/**
 * Ends the call of `identity` for them, and only them. Alone with the agent, the room is deleted
 * (they are disconnected with `ROOM_DELETED`, and the room does not linger); with other people
 * in it (a colleague, a supervisor listening in), only `identity` is removed
 * (`PARTICIPANT_REMOVED`) and the others stay. Returns what was done; failures are logged (the
 * job ends either way, and the room's departure timeout then closes an empty room).
 */
export async function endCallFor(e: CallEnder, identity: string): Promise<'room_deleted' | 'participant_removed' | 'failed'> {
  const roomName = e.room.name;
  if (roomName === undefined || roomName === '') return 'failed';
  const others = [...e.room.remoteParticipants.values()].filter((p) => p.identity !== identity && PEOPLE.has(p.kind));
  const client = new RoomServiceClient(e.livekit.url, e.livekit.apiKey, e.livekit.apiSecret);
  try {
    if (others.length === 0) {
      await client.deleteRoom(roomName);
      return 'room_deleted';
    }
    await client.removeParticipant(roomName, identity);
    return 'participant_removed';
  } catch (err) {
    // The server's message may name the room or the participant: it goes under the PII key.
    const status = (err as { status?: unknown }).status;
    e.logger.warn({ status: typeof status === 'number' ? status : null, ...pii({ identity, room: roomName, err: err instanceof Error ? err.message : String(err) }) }, 'could not end the call on the server');
    return 'failed';
  }
}

/**
 * Another agent of `agentName` already in `room` when this job joined it, if any: this job's
 * dispatch was a second one (a job slower to join than the dispatch grace, two requests for the
 * room): the agent that came first serves, and this job leaves without a word.
 */
export function agentAlreadyServing(room: Room, agentName: string): RemoteParticipant | undefined {
  return [...room.remoteParticipants.values()].find((p) => p.kind === ParticipantKind.AGENT && (p.attributes[ATTR_AGENT_NAME] ?? '') === agentName);
}

/** Longest wait for the server to take the agent's leaving mark, ms: the job leaves either way. */
export const LEAVING_MARK_MAX_MS = 2_000;

/**
 * Marks the agent as leaving `room` on purpose (`reason`: the call ended, was taken over, the
 * resume was refused) before the job leaves, so that the token service does not send a new
 * agent to replace it ({@link ATTR_AGENT_LEFT}). At most {@link LEAVING_MARK_MAX_MS}; a failure
 * is logged (the worst case is an agent sent in again, whose claim then decides what to say).
 */
export async function markLeavingOnPurpose(room: Room, reason: string, logger: Logger): Promise<void> {
  const local = room.localParticipant;
  if (local === undefined || !room.isConnected) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), LEAVING_MARK_MAX_MS)));
  try {
    const r = await Promise.race([local.setAttributes({ [ATTR_AGENT_LEFT]: reason }).then(() => 'set' as const), timedOut]);
    if (r === 'timeout') logger.warn({ reason, ms: LEAVING_MARK_MAX_MS }, 'the leaving mark was not confirmed in time');
  } catch (err) {
    logger.warn({ reason, err: err instanceof Error ? err.message : String(err) }, 'could not mark the agent as leaving on purpose');
  } finally {
    clearTimeout(timer);
  }
}

/** Sends data messages to one participant, reliably; failures are logged, never thrown. */
export class RoomMessenger implements ContextReplyTransport {
  constructor(
    private readonly room: Room,
    private readonly logger: Logger,
  ) {}

  private async send(identity: string, payload: Uint8Array, topic: string): Promise<void> {
    const local = this.room.localParticipant;
    if (!local || !this.room.isConnected) return;
    try {
      await local.publishData(payload, { reliable: true, destination_identities: [identity], topic });
    } catch (err) {
      this.logger.warn({ topic, error: err instanceof Error ? err.message : 'unknown' }, 'data message not sent');
    }
  }

  /** Context acknowledgements / rejections / welcomes (receiver transport). */
  reply(identity: string, payload: Uint8Array): Promise<void> {
    return this.send(identity, payload, CONTEXT_TOPIC);
  }

  /** A session status message. */
  status(identity: string, msg: SessionStatusMessage): Promise<void> {
    return this.send(identity, encodeSessionStatus(msg), SESSION_TOPIC);
  }
}

/** Callbacks of {@link bridgeRoom}. */
export interface RoomBridgeHandlers {
  /** The tracked identity left the room. */
  onLeft(reason: DisconnectReason): void;
  /** The tracked identity joined again (same room, same job). */
  onRejoined(participant: RemoteParticipant): void;
}

/** Most dynamic-context packets kept for a conversation not linked yet ({@link holdEarlyContext}). */
export const MAX_EARLY_CONTEXT_PACKETS = 64;

/** A dynamic-context packet as the room delivered it (no participant: the server API). */
export type ContextPacketHandler = (payload: Uint8Array, participant?: RemoteParticipant) => void;

/** Dynamic-context packets kept until a conversation's receiver exists ({@link holdEarlyContext}). */
export interface EarlyContext {
  /** Hands the kept packets to `deliver`, in order, and stops keeping. */
  release(deliver: ContextPacketHandler): void;
}

/**
 * Keeps the dynamic-context packets that arrive before the conversation's receiver exists: a
 * backend that resyncs when the agent joins (its webhook) sends before the participant does, and
 * those packets would reach nobody. {@link bridgeRoom} releases them to the receiver as it wires
 * it; past `max` the oldest are dropped (a later `sync` carries the whole context).
 */
export function holdEarlyContext(room: Room, logger: Logger, max = MAX_EARLY_CONTEXT_PACKETS): EarlyContext {
  const held: { payload: Uint8Array; participant: RemoteParticipant | undefined }[] = [];
  let dropped = 0;
  const onData = (payload: Uint8Array, participant?: RemoteParticipant, _kind?: unknown, topic?: string) => {
    if (topic !== CONTEXT_TOPIC) return;
    logger.debug({ fromServer: participant === undefined }, 'dynamic context packet kept until the conversation starts');
    held.push({ payload, participant });
    if (held.length > max) {
      held.shift();
      dropped++;
    }
  };
  room.on(RoomEvent.DataReceived, onData);
  return {
    release(deliver) {
      room.off(RoomEvent.DataReceived, onData);
      if (dropped > 0) logger.warn({ dropped }, 'dynamic context packets from before the conversation dropped: too many');
      for (const p of held.splice(0)) deliver(p.payload, p.participant);
    },
  };
}

/** Hands one dynamic-context packet to `receiver` (it authorises the sender) and counts it. */
function contextPacketHandler(receiver: ContextReceiver, metrics: JobMetrics, logger: Logger): ContextPacketHandler {
  return (payload, participant) => {
    const sender = participant ? { identity: participant.identity, attributes: participant.attributes } : undefined;
    const result = receiver.handle(payload, sender);
    metrics.inc('pva_context_messages_total', { result: result.ok ? (result.queued ? 'queued' : 'applied') : result.reason });
    // The receiver already warns, throttled (one line per reason per 10 s); duplicates
    // (`stale_revision`) are routine resends. Here only a debug line per message.
    if (!result.ok) logger.debug({ reason: result.reason, fromServer: sender === undefined }, 'dynamic context message not applied');
  };
}

/**
 * Wires room events for the participant `identity`: leave / rejoin, and dynamic-context data
 * messages (from anyone: the receiver authorises), the ones `early` kept handed over first, in the
 * same tick, so none is lost or handled twice. Returns the unsubscribe function.
 */
export function bridgeRoom(
  room: Room,
  identity: string,
  receiver: ContextReceiver,
  metrics: JobMetrics,
  logger: Logger,
  handlers: RoomBridgeHandlers,
  early?: EarlyContext,
): () => void {
  const onConnected = (p: RemoteParticipant) => {
    if (p.identity === identity) handlers.onRejoined(p);
  };
  const onDisconnected = (p: RemoteParticipant) => {
    if (p.identity === identity) handlers.onLeft(mapDisconnectReason(p.disconnectReason));
  };
  const handle = contextPacketHandler(receiver, metrics, logger);
  const onData = (payload: Uint8Array, participant?: RemoteParticipant, _kind?: unknown, topic?: string) => {
    if (topic === CONTEXT_TOPIC) handle(payload, participant);
  };
  room.on(RoomEvent.ParticipantConnected, onConnected);
  room.on(RoomEvent.ParticipantDisconnected, onDisconnected);
  room.on(RoomEvent.DataReceived, onData);
  early?.release(handle);
  return () => {
    room.off(RoomEvent.ParticipantConnected, onConnected);
    room.off(RoomEvent.ParticipantDisconnected, onDisconnected);
    room.off(RoomEvent.DataReceived, onData);
  };
}
