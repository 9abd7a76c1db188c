import { describe, expect, it } from 'vitest';
import { ATTR_CONTEXT_PUBLISHER } from '../../../lib/attributes.js';
import { ManualClock } from '../../../lib/clock.js';
import { RecordingLogger } from '../../../lib/logger.js';
import { MAX_PACKET_BYTES, RATE_LIMIT_BURST } from '../../../lib/context/limits.js';
import {
  decodeAgentMessage,
  encodeContextMessage,
  type AgentMessage,
  type ClientMessage,
  type ContextOp,
} from '../../../lib/context/messages.js';
import { ContextReceiver, type ContextReceiverOptions, type ContextSender } from '../../../lib/context/receiver.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import type { ContextSnapshot } from '../../../lib/context/snapshot.js';
import { ManualTimers } from '../../../lib/context/timers.js';

const USER: ContextSender = { identity: 'user-1', attributes: {} };

function setup(opts: Partial<ContextReceiverOptions> = {}) {
  const clock = new ManualClock(0);
  const timers = new ManualTimers(clock);
  const sink = new MemoryContextSink();
  const replies: Array<{ to: string; msg: AgentMessage }> = [];
  const log = new RecordingLogger();
  const receiver = new ContextReceiver({
    participantIdentity: USER.identity,
    sink,
    clock,
    timers,
    logger: log,
    transport: {
      reply: (to, payload) => {
        const d = decodeAgentMessage(payload);
        if (!d.ok) throw new Error('receiver sent an invalid reply');
        replies.push({ to, msg: d.message });
      },
    },
    ...opts,
  });
  return { clock, timers, sink, replies, receiver, log };
}

const op = (rev: number, o: ContextOp, src = 'tab-1'): Uint8Array =>
  encodeContextMessage({ v: 1, kind: 'op', src, rev, op: o } satisfies ClientMessage);

describe('ContextReceiver: who may publish', () => {
  it('accepts the session participant and acknowledges the revision', async () => {
    const { receiver, replies, timers, sink } = setup();
    await receiver.markReady();
    expect(receiver.handle(op(1, { type: 'setState', name: 'Station', value: 'Bay 3' }), USER)).toMatchObject({ ok: true, rev: 1 });
    expect(replies).toEqual([{ to: 'user-1', msg: { v: 1, kind: 'ack', src: 'tab-1', rev: 1 } }]);
    timers.advance(500);
    await receiver.flush();
    expect(sink.view()).toBe('Station is Bay 3');
  });

  it('accepts a participant marked as context publisher by its token attributes', async () => {
    const { receiver } = setup();
    const backend = { identity: 'backend', attributes: { [ATTR_CONTEXT_PUBLISHER]: '1' } };
    expect(receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), backend).ok).toBe(true);
  });

  it('accepts the server API (no participant) without replying', () => {
    const { receiver, replies } = setup();
    expect(receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), undefined).ok).toBe(true);
    expect(replies).toEqual([]);
  });

  it('rejects anyone else with a reason, changes nothing and logs without payload or bare identity', () => {
    const { receiver, replies, log } = setup();
    const other = { identity: 'mallory', attributes: { [ATTR_CONTEXT_PUBLISHER]: '0' } };
    expect(receiver.handle(op(1, { type: 'setState', name: 'A', value: 'secret' }), other)).toEqual({ ok: false, reason: 'unauthorized' });
    expect(receiver.snapshot()).toEqual({ states: [], events: [], revisions: {} });
    expect(replies).toEqual([{ to: 'mallory', msg: { v: 1, kind: 'reject', reason: 'unauthorized' } }]);
    const line = log.lines.find((l) => l.level === 'warn')!;
    expect(line.msg).toBe('dynamic context message rejected');
    expect(JSON.stringify(line.fields)).not.toContain('secret');
    expect(line.fields).toMatchObject({ pii: { identity: 'mallory' } });
  });

  it('a sender looping on rejected messages writes one warning per reason per 10 s, then says how many were left out', () => {
    const { receiver, replies, log, clock } = setup();
    const other = { identity: 'mallory', attributes: {} };
    for (let i = 1; i <= 100; i++) receiver.handle(op(i, { type: 'setState', name: 'A', value: 'x' }), other);
    const warnings = () => log.lines.filter((l) => l.msg === 'dynamic context message rejected');
    expect(warnings()).toHaveLength(1);
    expect(replies).toHaveLength(100); // every sender still gets its reject
    clock.advance(10_000);
    receiver.handle(op(101, { type: 'setState', name: 'A', value: 'x' }), other);
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]!.fields).toMatchObject({ reason: 'unauthorized', suppressedSinceLast: 99 });
  });
});

describe('ContextReceiver: revisions', () => {
  it('ignores duplicates and stale revisions, re-acknowledging the last one applied', async () => {
    const { receiver, replies } = setup();
    await receiver.markReady();
    receiver.handle(op(1, { type: 'addEvent', text: 'once' }), USER);
    expect(receiver.handle(op(1, { type: 'addEvent', text: 'once' }), USER)).toEqual({ ok: false, reason: 'stale_revision' });
    expect(receiver.canonicalText()).toBe('once');
    expect(replies.at(-1)?.msg).toEqual({ v: 1, kind: 'ack', src: 'tab-1', rev: 1 });
  });

  it('rejects a gap in a participant stream with the expected revision', () => {
    const { receiver, replies } = setup();
    receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), USER);
    expect(receiver.handle(op(3, { type: 'setState', name: 'B', value: '2' }), USER)).toEqual({ ok: false, reason: 'revision_gap' });
    expect(replies.at(-1)?.msg).toMatchObject({ kind: 'reject', reason: 'revision_gap', rev: 3, expectedRev: 2 });
    expect(receiver.canonicalText()).toBe('A is 1');
  });

  it('accepts an authoritative sync or reset after a gap', () => {
    const { receiver } = setup();
    expect(receiver.handle(op(7, { type: 'sync', states: [{ name: 'A', value: '1' }], events: ['e'] }), USER).ok).toBe(true);
    expect(receiver.canonicalText()).toBe('A is 1\ne');
    expect(receiver.handle(op(9, { type: 'reset' }), USER).ok).toBe(true);
    expect(receiver.canonicalText()).toBe('');
  });

  it('keeps separate revision streams per src', () => {
    const { receiver } = setup();
    receiver.handle(op(1, { type: 'addEvent', text: 'a' }, 'tab-1'), USER);
    expect(receiver.handle(op(1, { type: 'addEvent', text: 'b' }, 'tab-2'), USER).ok).toBe(true);
    expect(Object.keys(receiver.snapshot().revisions)).toEqual(['p:user-1/tab-1', 'p:user-1/tab-2']);
  });

  it('a refused op consumes its revision and replies with the reason', () => {
    const { receiver, replies } = setup();
    expect(receiver.handle(op(1, { type: 'setState', name: '', value: 'x' }), USER)).toEqual({ ok: false, reason: 'empty_name' });
    expect(replies.at(-1)?.msg).toMatchObject({ kind: 'reject', reason: 'empty_name', rev: 1, src: 'tab-1' });
    expect(receiver.handle(op(2, { type: 'setState', name: 'A', value: '1' }), USER).ok).toBe(true);
  });
});

describe('ContextReceiver: readiness and the seed flush', () => {
  it('queues ops until ready, then writes ONE Replace of the canonical context', async () => {
    const { receiver, sink } = setup();
    receiver.handle(op(1, { type: 'setState', name: 'Station', value: 'Bay 3' }), USER);
    receiver.handle(op(2, { type: 'setState', name: 'Station', value: 'Bay 7' }), USER);
    receiver.handle(op(3, { type: 'addEvent', text: 'Operator bypassed interlock' }), USER);
    expect(sink.writes).toBe(0);
    await receiver.markReady();
    expect(sink.writes).toBe(1);
    expect(sink.dynamic).toBe('Station is Bay 7\nOperator bypassed interlock');
  });

  it('a pending reset wins at ready: ONE Reset', async () => {
    const { receiver, sink } = setup();
    receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), USER);
    receiver.handle(op(2, { type: 'reset' }), USER);
    await receiver.markReady();
    expect(sink.writes).toBe(1);
    expect(sink.view()).toBe('');
  });

  it('a reset then changes acknowledged while not ready: the model, the welcome and the persisted snapshot all end with those changes', async () => {
    const snapshots: ContextSnapshot[] = [];
    const { receiver, sink, replies } = setup({ onChange: (s) => snapshots.push(s) });
    await receiver.markReady();
    receiver.handle(op(1, { type: 'setState', name: 'Old', value: '0' }), USER);
    await receiver.flush();
    receiver.markNotReady();
    expect(receiver.handle(op(2, { type: 'reset' }), USER)).toMatchObject({ ok: true, queued: true });
    expect(receiver.handle(op(3, { type: 'setState', name: 'A', value: '1' }), USER)).toMatchObject({ ok: true, queued: true });
    expect(replies.slice(-2).map((r) => r.msg)).toEqual([
      { v: 1, kind: 'ack', src: 'tab-1', rev: 2 },
      { v: 1, kind: 'ack', src: 'tab-1', rev: 3 },
    ]);
    receiver.handle(encodeContextMessage({ v: 1, kind: 'hello', src: 'tab-1' }), USER);
    await receiver.markReady();
    expect(sink.view()).toBe('A is 1');
    expect(replies.at(-1)?.msg).toEqual({
      v: 1,
      kind: 'welcome',
      src: 'tab-1',
      lastRev: 3,
      context: { states: [{ name: 'A', value: '1' }], events: [] },
    });
    expect(snapshots.at(-1)).toEqual(receiver.snapshot());
    expect(receiver.snapshot().states).toEqual([{ name: 'A', value: '1' }]);
  });

  it('drops apply before ready with a reason, consuming the revision', () => {
    const { receiver } = setup();
    expect(receiver.handle(op(1, { type: 'apply', mode: 'append', text: 'raw' }), USER)).toEqual({ ok: false, reason: 'apply_inactive' });
    expect(receiver.handle(op(2, { type: 'setState', name: 'A', value: '1' }), USER).ok).toBe(true);
  });

  it('answers hello with welcome (last revision and context), delayed until ready', async () => {
    const { receiver, replies } = setup();
    receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), USER);
    receiver.handle(encodeContextMessage({ v: 1, kind: 'hello', src: 'tab-1' }), USER);
    expect(replies.filter((r) => r.msg.kind === 'welcome')).toEqual([]);
    await receiver.markReady();
    expect(replies.at(-1)?.msg).toEqual({
      v: 1,
      kind: 'welcome',
      src: 'tab-1',
      lastRev: 1,
      context: { states: [{ name: 'A', value: '1' }], events: [] },
    });
  });

  it('rejects hello from the server API (nowhere to answer)', () => {
    expect(setup().receiver.handle(encodeContextMessage({ v: 1, kind: 'hello', src: 's' }), undefined)).toEqual({
      ok: false,
      reason: 'hello_without_participant',
    });
  });
});

describe('ContextReceiver: coalescing into the sink', () => {
  it('writes a burst once, 500 ms after its last update, with the same view as writing each update', async () => {
    const { receiver, sink, timers } = setup();
    const direct = new MemoryContextSink();
    await receiver.markReady();
    for (let i = 1; i <= 50; i++) {
      receiver.handle(op(i, i % 5 === 0 ? { type: 'addEvent', text: `e${i}` } : { type: 'setState', name: `k${i % 3}`, value: `${i}` }), USER);
      timers.advance(10);
    }
    expect(sink.writes).toBe(0);
    timers.advance(499);
    expect(sink.writes).toBe(0);
    timers.advance(1);
    await receiver.flush();
    expect(sink.writes).toBeLessThanOrEqual(2);
    // The same stream applied one update at a time:
    const { ContextTracker } = await import('../../../lib/context/tracker.js');
    const t = new ContextTracker({ active: true });
    for (let i = 1; i <= 50; i++) {
      const r = i % 5 === 0 ? t.addEvent(`e${i}`) : t.setState(`k${i % 3}`, `${i}`);
      if (r.ok) for (const u of r.updates) u.mode === 'replace' ? direct.replace(u.text) : u.mode === 'append' ? direct.append(u.text) : direct.reset();
    }
    expect(sink.view()).toBe(direct.view());
  });

  it('writes at the 3 s ceiling during a continuous burst', async () => {
    const { receiver, sink, timers } = setup();
    await receiver.markReady();
    for (let i = 1; i <= 8; i++) {
      receiver.handle(op(i, { type: 'addEvent', text: `e${i}` }), USER);
      timers.advance(400);
    }
    await receiver.flush();
    expect(sink.writes).toBe(1); // forced at 3000 ms although updates kept coming every 400 ms
    expect(sink.view()).toBe('e1\ne2\ne3\ne4\ne5\ne6\ne7\ne8');
  });

  it('a sink that throws is logged, never thrown out of handle', async () => {
    const { receiver, log, timers } = setup({
      sink: {
        replace: () => {
          throw new Error('boom');
        },
        append: () => Promise.reject(new Error('boom')),
        reset: () => {},
      },
    });
    await receiver.markReady();
    expect(receiver.handle(op(1, { type: 'setState', name: 'A', value: '1' }), USER).ok).toBe(true);
    timers.advance(500);
    await receiver.flush();
    expect(log.lines.some((l) => l.msg === 'dynamic context sink write failed')).toBe(true);
  });

  it('compacts Appends that outgrow the context bound into a Replace', async () => {
    const { receiver, sink } = setup();
    await receiver.markReady();
    for (let i = 1; i <= 40; i++) receiver.handle(op(i, { type: 'addEvent', text: `${i}`.padEnd(900, '.') }), USER);
    await receiver.flush();
    expect(sink.view().length).toBeLessThan(2 * 12_288);
    expect(sink.view().endsWith('40'.padEnd(900, '.'))).toBe(true);
    expect(sink.writes).toBeLessThanOrEqual(2);
  });
});

describe('ContextReceiver: limits', () => {
  it('rejects a packet over 15 KiB before parsing it', () => {
    const big = encodeContextMessage({ v: 1, kind: 'op', src: 't', rev: 1, op: { type: 'addEvent', text: 'x'.repeat(MAX_PACKET_BYTES) } });
    expect(setup().receiver.handle(big, USER)).toEqual({ ok: false, reason: 'too_large' });
  });

  it('rate limits each sender with a token bucket on the injected clock', () => {
    const { receiver, clock } = setup({ rateLimit: { burst: RATE_LIMIT_BURST, perSecond: 20 } });
    let rev = 0;
    for (let i = 0; i < RATE_LIMIT_BURST; i++) expect(receiver.handle(op(++rev, { type: 'addEvent', text: 'e' }), USER).ok).toBe(true);
    expect(receiver.handle(op(++rev, { type: 'addEvent', text: 'e' }), USER)).toEqual({ ok: false, reason: 'rate_limited' });
    expect(receiver.handle(op(1, { type: 'addEvent', text: 'e' }), { identity: 'other-sender', attributes: { [ATTR_CONTEXT_PUBLISHER]: '1' } }).ok).toBe(true);
    clock.advance(50); // one token back at 20/s
    expect(receiver.handle(op(rev, { type: 'addEvent', text: 'e' }), USER).ok).toBe(true);
  });
});

describe('ContextReceiver: persistence', () => {
  it('exposes the snapshot through onChange and restores it on resume (one Replace at ready)', async () => {
    const snapshots: unknown[] = [];
    const first = setup({ onChange: (s) => snapshots.push(s) });
    await first.receiver.markReady();
    first.receiver.handle(op(1, { type: 'setState', name: 'Station', value: 'Bay 3' }), USER);
    first.receiver.handle(op(2, { type: 'addEvent', text: 'e' }), USER);
    const saved = first.receiver.snapshot();
    expect(snapshots.at(-1)).toEqual(saved);
    expect(saved).toEqual({ states: [{ name: 'Station', value: 'Bay 3' }], events: ['e'], revisions: { 'p:user-1/tab-1': 2 } });

    const resumed = setup();
    expect(resumed.receiver.restore(JSON.parse(JSON.stringify(saved)))).toBe(true);
    await resumed.receiver.markReady();
    expect(resumed.sink.writes).toBe(1);
    expect(resumed.sink.dynamic).toBe('Station is Bay 3\ne');
    // The client's resend of revision 2 is a duplicate for the resumed session:
    expect(resumed.receiver.handle(op(2, { type: 'addEvent', text: 'e' }), USER)).toEqual({ ok: false, reason: 'stale_revision' });
  });

  it('clear (the conversation starts over in the room) forgets the context and every revision: the model\'s copy is emptied, a reconnecting publisher is welcomed at revision 0 with nothing', async () => {
    const snapshots: ContextSnapshot[] = [];
    const { receiver, sink, replies } = setup({ onChange: (snap) => snapshots.push(snap) });
    await receiver.markReady();
    receiver.handle(op(1, { type: 'setState', name: 'Visitor', value: 'Ana' }), USER);
    receiver.handle(op(2, { type: 'addEvent', text: 'Ana signed in' }), USER);
    await receiver.flush();
    expect(sink.view()).toBe('Visitor is Ana\nAna signed in');
    receiver.clear();
    await receiver.flush();
    expect(sink.view()).toBe('');
    expect(receiver.snapshot()).toEqual({ states: [], events: [], revisions: {} });
    expect(snapshots.at(-1)).toEqual({ states: [], events: [], revisions: {} });
    receiver.handle(encodeContextMessage({ v: 1, kind: 'hello', src: 'tab-1' }), USER);
    expect(replies.at(-1)?.msg).toEqual({ v: 1, kind: 'welcome', src: 'tab-1', lastRev: 0, context: { states: [], events: [] } });
  });

  it('refuses an invalid snapshot and changes nothing', () => {
    const { receiver } = setup();
    expect(receiver.restore({ states: [{ name: '', value: 'x' }], events: [], revisions: {} })).toBe(false);
    expect(receiver.restore({ nope: 1 } as never)).toBe(false);
    expect(receiver.snapshot()).toEqual({ states: [], events: [], revisions: {} });
  });
});
