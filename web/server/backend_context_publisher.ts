/**
 * Backend adapter of the dynamic-context publisher over `livekit-server-sdk`
 * (`RoomServiceClient.sendData`). The packets reach the agent with no participant, which the
 * receiver accepts as the server API.
 *
 * A server-API sender cannot receive acks, so delivery is at least once by other means:
 * - each packet is sent in order (one at a time) and a failed HTTP call is retried with the
 *   same revision (`maxAttempts`, exponential backoff from `retryBaseMs`); the agent drops
 *   duplicates by revision;
 * - after each burst of changes a trailing `sync` carries the full content (`resyncDelayMs`),
 *   which the agent applies idempotently; call {@link BackendContextPublisher.resync} when the
 *   agent (re)joins the room (e.g. from a `participant_joined` webhook), since packets sent to a
 *   room without the agent reach nobody. The agent keeps what reaches it before its participant
 *   arrives; but livekit-server drops packets to a participant whose data channel is not up yet
 *   (measured: a sync sent as the agent became active was lost), so resync once more a few
 *   seconds later.
 *
 * A `sync` replaces the whole dynamic context: a backend publisher should be the only
 * publisher of a session's context, or the browser's next `sync` and the backend's overwrite
 * each other (last writer wins).
 */
import { DataPacket_Kind, type RoomServiceClient } from 'livekit-server-sdk';
import { CONTEXT_TOPIC } from '../../lib/attributes.js';
import type { Logger } from '../../lib/logger.js';
import { silentLogger } from '../../lib/logger.js';
import { ContextPublisher, type ContextPublisherOptions } from '../../lib/context/publisher.js';
import { systemTimers, type Timers } from '../../lib/context/timers.js';

/** Options of {@link BackendContextPublisher}. */
export interface BackendContextPublisherOptions
  extends Omit<ContextPublisherOptions, 'transport' | 'canReceiveAcks' | 'adoptAgentContext' | 'helloRetryMs'> {
  /** The room service client (only `sendData` is used). */
  roomService: Pick<RoomServiceClient, 'sendData'>;
  /** Room of the session. */
  roomName: string;
  /** Deliver only to these identities (the agent). @default everyone in the room */
  destinationIdentities?: string[];
  /** Attempts per packet before it is given up (the trailing sync repairs it). @default 3 */
  maxAttempts?: number;
  /** Backoff before the 2nd attempt; doubles each time. @default 250 */
  retryBaseMs?: number;
}

/** Publishes a tracker's operations to a room's agent through the server API. */
export class BackendContextPublisher {
  /** The tracker API: `setState`, `setStates`, `removeState`, `addEvent`, `reset`, `apply`, `resync`. */
  readonly context: ContextPublisher;
  private chain: Promise<void> = Promise.resolve();
  private readonly timers: Timers;
  private readonly log: Logger;

  constructor(private readonly opts: BackendContextPublisherOptions) {
    this.timers = opts.timers ?? systemTimers;
    this.log = opts.logger ?? silentLogger;
    this.context = new ContextPublisher({
      ...opts,
      canReceiveAcks: false,
      transport: { send: (payload) => this.enqueue(payload) },
    });
  }

  /** Starts publishing (ops before this queue and go out as one `sync` or `reset`). */
  start(): void {
    this.context.connected();
  }

  /** Sends the full content again (call when the agent joins the room). */
  resync(): void {
    this.context.resync();
  }

  /** Resolves when every packet so far was sent or given up. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Stops timers; packets already queued still go out. */
  close(): void {
    this.context.close();
  }

  private enqueue(payload: Uint8Array): Promise<void> {
    this.chain = this.chain.then(() => this.sendWithRetry(payload));
    return this.chain;
  }

  private async sendWithRetry(payload: Uint8Array): Promise<void> {
    const attempts = Math.max(1, this.opts.maxAttempts ?? 3);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        await this.opts.roomService.sendData(this.opts.roomName, payload, DataPacket_Kind.RELIABLE, {
          topic: CONTEXT_TOPIC,
          ...(this.opts.destinationIdentities ? { destinationIdentities: this.opts.destinationIdentities } : {}),
        });
        return;
      } catch (err) {
        if (attempt === attempts) {
          this.log.warn({ attempts, error: err instanceof Error ? err.name : 'unknown' }, 'dynamic context send given up');
          return;
        }
        const delayMs = (this.opts.retryBaseMs ?? 250) * 2 ** (attempt - 1);
        await new Promise<void>((resolve) => this.timers.setTimeout(resolve, delayMs));
      }
    }
  }
}
