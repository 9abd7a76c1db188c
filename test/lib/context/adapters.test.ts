/**
 * The two publisher adapters against their SDK surfaces (a fake `livekit-client` Room, a fake
 * `RoomServiceClient`), wired to a real receiver.
 */
import { EventEmitter } from 'node:events';
import { ConnectionState, RoomEvent, type Room } from 'livekit-client';
import { DataPacket_Kind, type RoomServiceClient } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { ATTR_CONTEXT_PUBLISHER, CONTEXT_TOPIC } from '../../../lib/attributes.js';
import { ManualClock } from '../../../lib/clock.js';
import { ContextReceiver } from '../../../lib/context/receiver.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import { ManualTimers } from '../../../lib/context/timers.js';
import { RoomContextPublisher } from '../../../web/client/context_publisher.js';
import { BackendContextPublisher } from '../../../web/server/backend_context_publisher.js';

const tick = () => new Promise((r) => setImmediate(r));

class FakeRoom extends EventEmitter {
  state = ConnectionState.Connected;
  remoteParticipants = new Map<string, { identity: string; isAgent: boolean }>();
  published: Array<{ payload: Uint8Array; options: unknown }> = [];
  onPublish: (payload: Uint8Array) => void = () => {};
  localParticipant = {
    publishData: async (payload: Uint8Array, options: unknown) => {
      this.published.push({ payload, options });
      this.onPublish(payload);
    },
  };
}

function agentSide() {
  const clock = new ManualClock(0);
  const timers = new ManualTimers(clock);
  const sink = new MemoryContextSink();
  const replies: Uint8Array[] = [];
  const receiver = new ContextReceiver({
    participantIdentity: 'user-1',
    sink,
    clock,
    timers,
    transport: { reply: (_to, p) => void replies.push(p) },
  });
  return { receiver, sink, replies, timers };
}

describe('RoomContextPublisher (livekit-client)', () => {
  it('says hello when an agent is present, publishes reliably on the topic, and reads acks', async () => {
    const room = new FakeRoom();
    const agent = agentSide();
    await agent.receiver.markReady();
    room.onPublish = (p) => agent.receiver.handle(p, { identity: 'user-1' });
    const pub = new RoomContextPublisher(room as unknown as Room, { src: 'tab-1' });
    pub.context.setState('Station', 'Bay 3'); // no agent yet: queued
    expect(room.published).toEqual([]);

    room.remoteParticipants.set('agent-1', { identity: 'agent-1', isAgent: true });
    room.emit(RoomEvent.ParticipantConnected, room.remoteParticipants.get('agent-1'));
    await tick();
    expect(room.published[0]!.options).toEqual({ reliable: true, topic: CONTEXT_TOPIC, destinationIdentities: ['agent-1'] });
    // deliver the agent's replies (welcome) as DataReceived from the agent
    const deliver = () => {
      for (const p of agent.replies.splice(0)) room.emit(RoomEvent.DataReceived, p, room.remoteParticipants.get('agent-1'), undefined, CONTEXT_TOPIC);
    };
    deliver();
    await tick();
    deliver();
    expect(pub.context.isActive).toBe(true);
    expect(agent.receiver.canonicalText()).toBe('Station is Bay 3');
    expect(pub.context.unackedRevisions()).toEqual([]);

    // Replies from a non-agent participant are ignored: a forged ack does not clear an
    // unacknowledged revision, a forged revision_gap does not make it resync.
    room.onPublish = () => {}; // this op stays unacknowledged
    pub.context.setState('Mood', 'calm');
    await tick();
    const [rev] = pub.context.unackedRevisions();
    expect(rev).toBeDefined();
    const publishedBefore = room.published.length;
    const user2 = { identity: 'user-2', isAgent: false };
    const forged = [
      { v: 1, kind: 'ack', src: 'tab-1', rev },
      { v: 1, kind: 'reject', src: 'tab-1', rev, reason: 'revision_gap', expectedRev: 1 },
    ];
    for (const m of forged) room.emit(RoomEvent.DataReceived, new TextEncoder().encode(JSON.stringify(m)), user2, undefined, CONTEXT_TOPIC);
    await tick();
    expect(pub.context.unackedRevisions()).toEqual([rev]);
    expect(room.published.length).toBe(publishedBefore);
    room.onPublish = (p) => agent.receiver.handle(p, { identity: 'user-1' });

    // Reconnecting: ops queue; back: hello → welcome → one sync.
    room.state = ConnectionState.Reconnecting;
    room.emit(RoomEvent.ConnectionStateChanged, room.state);
    pub.context.setState('Station', 'Bay 7');
    expect(pub.context.isActive).toBe(false);
    room.state = ConnectionState.Connected;
    room.emit(RoomEvent.ConnectionStateChanged, room.state);
    await tick();
    deliver();
    await tick();
    deliver();
    expect(agent.receiver.canonicalText()).toBe('Station is Bay 7\nMood is calm');
    pub.dispose();
  });
});

describe('BackendContextPublisher (livekit-server-sdk)', () => {
  it('sends in order on the topic with RELIABLE, retries failures, and the agent converges via the trailing sync', async () => {
    const agent = agentSide();
    await agent.receiver.markReady();
    const calls: Array<{ room: string; kind: DataPacket_Kind; options: unknown }> = [];
    let failNext = 1;
    let agentInRoom = false;
    const roomService: Pick<RoomServiceClient, 'sendData'> = {
      sendData: async (room: string, data: Uint8Array, kind: DataPacket_Kind, options: unknown) => {
        calls.push({ room, kind, options });
        if (failNext-- > 0) throw new Error('HTTP 503');
        if (agentInRoom) agent.receiver.handle(data, undefined); // server API: no participant
      },
    } as Pick<RoomServiceClient, 'sendData'>;
    const backend = new BackendContextPublisher({
      roomService,
      roomName: 'room-a',
      destinationIdentities: ['agent-1'],
      retryBaseMs: 1,
      resyncDelayMs: 1000,
      timers: agent.timers,
    });
    backend.context.setState('Shift', 'Night');
    backend.start();
    backend.context.addEvent('Badge scanned'); // the agent is not in the room yet: lost
    for (let i = 0; i < 5; i++) {
      agent.timers.advance(10);
      await tick();
    }
    await backend.idle();
    expect(calls[0]).toEqual({
      room: 'room-a',
      kind: DataPacket_Kind.RELIABLE,
      options: { topic: CONTEXT_TOPIC, destinationIdentities: ['agent-1'] },
    });
    expect(calls.length).toBe(3); // sync (failed once, retried), addEvent
    expect(agent.receiver.canonicalText()).toBe('');

    agentInRoom = true;
    agent.timers.advance(1000); // trailing sync
    await backend.idle();
    expect(agent.receiver.canonicalText()).toBe('Shift is Night\nBadge scanned');
    backend.resync(); // idempotent repeat
    await backend.idle();
    expect(agent.receiver.canonicalText()).toBe('Shift is Night\nBadge scanned');
    backend.close();
  });

  it('a participant marked as context publisher is accepted too', () => {
    const agent = agentSide();
    const r = agent.receiver.handle(
      new TextEncoder().encode(JSON.stringify({ v: 1, kind: 'op', src: 'b', rev: 1, op: { type: 'addEvent', text: 'x' } })),
      { identity: 'backend-bot', attributes: { [ATTR_CONTEXT_PUBLISHER]: '1' } },
    );
    expect(r.ok).toBe(true);
  });
});
