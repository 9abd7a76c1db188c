/**
 * The dynamic-context publisher (lib/context/publisher.ts) on an `@livekit/rtc-node` room, for
 * tests that play a client: ops go to the agent on the context topic, replies come back.
 */
import { RoomEvent, type RemoteParticipant, type Room } from '@livekit/rtc-node';
import { CONTEXT_TOPIC } from '../../lib/attributes.js';
import { ContextPublisher } from '../../lib/context/publisher.js';

const isAgent = (p: RemoteParticipant) => p.identity.startsWith('agent-');

/** A publisher linked to the agent in `room` (hello → welcome), resending after relinks. */
export class RtcContextPublisher {
  readonly context: ContextPublisher;
  /** Every reply payload from the agent, decoded as JSON (acks, rejects, welcomes). */
  readonly replies: unknown[] = [];

  constructor(private readonly room: Room) {
    this.context = new ContextPublisher({
      transport: {
        send: async (payload) => {
          const agents = [...room.remoteParticipants.values()].filter(isAgent).map((p) => p.identity);
          if (agents.length === 0) return; // stays unacknowledged; resent once linked
          await room.localParticipant!.publishData(payload, { reliable: true, topic: CONTEXT_TOPIC, destination_identities: agents });
        },
      },
    });
    room.on(RoomEvent.DataReceived, (payload, p, _kind, topic) => {
      if (topic !== CONTEXT_TOPIC || !p || !isAgent(p)) return;
      this.replies.push(JSON.parse(new TextDecoder().decode(payload)));
      this.context.handleReply(payload);
    });
    room.on(RoomEvent.ParticipantConnected, (p) => {
      if (!isAgent(p)) return;
      this.context.disconnected();
      this.context.connected();
    });
    if ([...room.remoteParticipants.values()].some(isAgent)) this.context.connected();
  }

  close(): void {
    this.context.close();
  }
}
