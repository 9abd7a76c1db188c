/**
 * The room bridge (`agent/room_bridge.ts`) hands context data messages to the receiver and
 * leaves the warnings to it: routine duplicates write no warning, and a sender looping on bad
 * messages writes one per reason per 10 s (the receiver's throttle), not one per packet.
 */
import { EventEmitter } from 'node:events';
import type { Room } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { bridgeRoom } from '../../../agent/room_bridge.js';
import { JobMetrics } from '../../../agent/metrics.js';
import { CONTEXT_TOPIC } from '../../../lib/attributes.js';
import { ManualClock } from '../../../lib/clock.js';
import { encodeContextMessage } from '../../../lib/context/messages.js';
import { ContextReceiver } from '../../../lib/context/receiver.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import { ManualTimers } from '../../../lib/context/timers.js';
import { RecordingLogger } from '../../../lib/logger.js';

describe('bridgeRoom: dynamic-context rejections', () => {
  it('writes no warning per duplicate and one per reason for a flood of refused messages', async () => {
    const clock = new ManualClock(0);
    const log = new RecordingLogger();
    const receiver = new ContextReceiver({
      participantIdentity: 'user-1',
      sink: new MemoryContextSink(),
      clock,
      timers: new ManualTimers(clock),
      logger: log,
      rateLimit: false,
    });
    await receiver.markReady();
    const room = new EventEmitter();
    const { RoomEvent } = await import('@livekit/rtc-node');
    const off = bridgeRoom(room as unknown as Room, 'user-1', receiver, new JobMetrics(undefined), log, {
      onLeft: () => {},
      onRejoined: () => {},
    });
    const user = { identity: 'user-1', attributes: {} };
    const mallory = { identity: 'mallory', attributes: {} };
    const packet = encodeContextMessage({ v: 1, kind: 'op', src: 'tab-1', rev: 1, op: { type: 'addEvent', text: 'once' } });
    for (let i = 0; i < 50; i++) room.emit(RoomEvent.DataReceived, packet, user, undefined, CONTEXT_TOPIC); // 1 applied, 49 duplicates
    for (let i = 0; i < 50; i++) room.emit(RoomEvent.DataReceived, packet, mallory, undefined, CONTEXT_TOPIC);
    expect(receiver.canonicalText()).toBe('once');
    const warnings = log.lines.filter((l) => l.level === 'warn');
    expect(warnings).toEqual([expect.objectContaining({ msg: 'dynamic context message rejected', fields: expect.objectContaining({ reason: 'unauthorized' }) })]);
    off();
  });
});
