/**
 * A simulated link between one publisher and one receiver: packets queue per direction, are
 * lost while the link is down, and can be delivered twice.
 */
import { ManualClock } from '../../../lib/clock.js';
import { decodeAgentMessage, type AgentMessage } from '../../../lib/context/messages.js';
import { ContextPublisher, type ContextPublisherOptions } from '../../../lib/context/publisher.js';
import { ContextReceiver, type ContextReceiverOptions, type ContextSender, type HandleResult } from '../../../lib/context/receiver.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import { ManualTimers } from '../../../lib/context/timers.js';

export const USER: ContextSender = { identity: 'user-1', attributes: {} };

export interface HarnessOptions {
  receiver?: Partial<ContextReceiverOptions>;
  publisher?: Partial<ContextPublisherOptions>;
  ready?: boolean;
}

export class Harness {
  readonly clock = new ManualClock(1_000_000);
  readonly timers = new ManualTimers(this.clock);
  readonly sink = new MemoryContextSink();
  readonly receiver: ContextReceiver;
  readonly publisher: ContextPublisher;
  toAgent: Uint8Array[] = [];
  toClient: Uint8Array[] = [];
  readonly replies: AgentMessage[] = [];
  readonly results: HandleResult[] = [];
  up = false;

  constructor(opts: HarnessOptions = {}) {
    this.receiver = new ContextReceiver({
      participantIdentity: USER.identity,
      sink: this.sink,
      clock: this.clock,
      timers: this.timers,
      rateLimit: false,
      transport: {
        reply: (_identity, payload) => {
          if (this.up) this.toClient.push(payload);
        },
      },
      ...opts.receiver,
    });
    this.publisher = new ContextPublisher({
      src: 'tab-1',
      timers: this.timers,
      transport: {
        send: (payload) => {
          if (this.up) this.toAgent.push(payload);
        },
      },
      ...opts.publisher,
    });
  }

  connect(): void {
    this.up = true;
    this.publisher.connected();
  }

  disconnect(): void {
    this.up = false;
    this.toAgent = [];
    this.toClient = [];
    this.publisher.disconnected();
  }

  /** Delivers one queued packet to the agent (twice when `duplicate`). */
  deliverToAgent(duplicate = false): boolean {
    const p = this.toAgent.shift();
    if (p === undefined) return false;
    this.results.push(this.receiver.handle(p, USER));
    if (duplicate) this.results.push(this.receiver.handle(p, USER));
    return true;
  }

  /** Delivers one queued reply to the client (twice when `duplicate`). */
  deliverToClient(duplicate = false): boolean {
    const p = this.toClient.shift();
    if (p === undefined) return false;
    const d = decodeAgentMessage(p);
    if (d.ok) this.replies.push(d.message);
    this.publisher.handleReply(p);
    if (duplicate) this.publisher.handleReply(p);
    return true;
  }

  /** Delivers everything until both queues are empty. */
  settle(): void {
    for (let i = 0; i < 100_000; i++) {
      if (!this.deliverToAgent() && !this.deliverToClient()) return;
    }
    throw new Error('link did not settle');
  }
}
