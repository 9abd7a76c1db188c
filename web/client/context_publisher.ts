/**
 * Browser adapter of the dynamic-context publisher for a `livekit-client` `Room`: publishes
 * ops reliably on {@link CONTEXT_TOPIC} to the agent, reads acks / rejects / welcomes from
 * `DataReceived`, and treats "connected with an agent in the room" as the link being up
 * (hello → welcome → active). While reconnecting or with no agent present ops queue, and
 * after the link returns the unacknowledged revisions are resent (see `lib/context/publisher.ts`).
 *
 * ```ts
 * const ctx = new RoomContextPublisher(room);
 * ctx.context.setState('Station', 'Bay 3');
 * ```
 */
import { ConnectionState, RoomEvent, type Participant, type RemoteParticipant, type Room } from 'livekit-client';
import { CONTEXT_TOPIC } from '../../lib/attributes.js';
import { ContextPublisher, type ContextPublisherOptions } from '../../lib/context/publisher.js';

/** Options of {@link RoomContextPublisher}. */
export interface RoomContextPublisherOptions extends Omit<ContextPublisherOptions, 'transport' | 'canReceiveAcks'> {
  /** Identity of the agent to talk to. @default every agent participant in the room */
  agentIdentity?: string;
}

/** Publishes a tracker's operations to the agent over a `livekit-client` room. */
export class RoomContextPublisher {
  /** The tracker API: `setState`, `setStates`, `removeState`, `addEvent`, `reset`, `apply`, `tryGetStateValue`. */
  readonly context: ContextPublisher;
  private readonly off: Array<() => void> = [];
  private linked = false;

  constructor(
    private readonly room: Room,
    private readonly opts: RoomContextPublisherOptions = {},
  ) {
    this.context = new ContextPublisher({
      ...opts,
      canReceiveAcks: true,
      transport: {
        send: async (payload) => {
          const agents = this.agentIdentities();
          if (agents.length === 0 || this.room.state !== ConnectionState.Connected) return; // stays unacked
          await this.room.localParticipant.publishData(payload as Uint8Array<ArrayBuffer>, {
            reliable: true,
            topic: CONTEXT_TOPIC,
            destinationIdentities: agents,
          });
        },
      },
    });
    this.on(RoomEvent.DataReceived, (payload: Uint8Array, participant?: RemoteParticipant, _kind?: unknown, topic?: string) => {
      if (topic === CONTEXT_TOPIC && participant !== undefined && this.isAgent(participant)) this.context.handleReply(payload);
    });
    this.on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) => {
      if (this.isAgent(p)) this.relink(true); // a (new) agent: say hello again
    });
    this.on(RoomEvent.ParticipantDisconnected, () => this.relink(false));
    this.on(RoomEvent.ConnectionStateChanged, () => this.relink(false));
    this.relink(false);
  }

  /** Stops listening and stops the publisher's timers. */
  dispose(): void {
    for (const off of this.off.splice(0)) off();
    this.context.close();
  }

  private relink(force: boolean): void {
    const up = this.room.state === ConnectionState.Connected && this.agentIdentities().length > 0;
    if (up && (!this.linked || force)) {
      this.linked = true;
      this.context.disconnected();
      this.context.connected();
    } else if (!up && this.linked) {
      this.linked = false;
      this.context.disconnected();
    }
  }

  private agentIdentities(): string[] {
    const out: string[] = [];
    for (const p of this.room.remoteParticipants.values()) if (this.isAgent(p)) out.push(p.identity);
    return out;
  }

  private isAgent(p: Participant): boolean {
    return this.opts.agentIdentity !== undefined ? p.identity === this.opts.agentIdentity : p.isAgent;
  }

  private on(event: RoomEvent, fn: (...args: never[]) => void): void {
    const handler = fn as (...args: unknown[]) => void;
    this.room.on(event as never, handler as never);
    this.off.push(() => this.room.off(event as never, handler as never));
  }
}
