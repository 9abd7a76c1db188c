/**
 * 10 000 hostile packets — malformed, oversized, wrong version, schema-invalid, stale,
 * out-of-order and unauthorised — against a receiver holding a context: no exception escapes,
 * every packet is refused with a reason, and neither the context, the revisions nor the chat
 * context change.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ATTR_CONTEXT_PUBLISHER } from '../../../lib/attributes.js';
import { ManualClock } from '../../../lib/clock.js';
import { MAX_PACKET_BYTES } from '../../../lib/context/limits.js';
import { encodeContextMessage, type ContextRejectReason } from '../../../lib/context/messages.js';
import { ContextReceiver, type ContextSender } from '../../../lib/context/receiver.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import { ManualTimers } from '../../../lib/context/timers.js';

const USER: ContextSender = { identity: 'user-1', attributes: {} };
const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
const validOp = fc.oneof(
  fc.record({ type: fc.constant('setState'), name: fc.string({ minLength: 1, maxLength: 8 }), value: fc.string({ maxLength: 8 }) }),
  fc.record({ type: fc.constant('addEvent'), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ type: fc.constant('removeState'), name: fc.constant('Station') }),
  fc.constant({ type: 'reset' }),
  fc.constant({ type: 'sync', states: [], events: [] }),
);

type Packet = { payload: Uint8Array | string; sender: ContextSender | undefined; expected: readonly ContextRejectReason[] };

const hostile: fc.Arbitrary<Packet> = fc.oneof(
  // Not JSON at all, or invalid UTF-8.
  fc.string({ maxLength: 64 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }).map((s) => ({ payload: s, sender: USER, expected: ['malformed_json'] as ContextRejectReason[] })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ payload: Uint8Array.of(0xff, ...b), sender: USER, expected: ['malformed_json' as const] })),
  // JSON of the wrong shape.
  fc.jsonValue().map((v) => ({ payload: enc(v), sender: USER, expected: ['invalid_message', 'unsupported_version'] as ContextRejectReason[] })),
  fc.record({ v: fc.integer({ min: 2, max: 9 }), kind: fc.constant('op') }).map((v) => ({ payload: enc(v), sender: USER, expected: ['unsupported_version' as const] })),
  fc.record({ v: fc.constant(1), kind: fc.constant('op'), src: fc.constant('tab-1'), rev: fc.oneof(fc.double(), fc.constant(-1), fc.constant(0), fc.string()), op: validOp })
    .map((v) => ({ payload: enc(v), sender: USER, expected: ['invalid_message' as const] })),
  fc.record({ v: fc.constant(1), kind: fc.constant('op'), src: fc.constant('tab-1'), rev: fc.constant(11), op: fc.record({ type: fc.constantFrom('setState', 'explode', 'apply'), name: fc.integer() }) })
    .map((v) => ({ payload: enc(v), sender: USER, expected: ['invalid_message' as const] })),
  // Oversized.
  fc.integer({ min: MAX_PACKET_BYTES + 1, max: MAX_PACKET_BYTES * 2 }).map((n) => ({ payload: new Uint8Array(n).fill(0x20), sender: USER, expected: ['too_large' as const] })),
  fc.constant({ payload: '€'.repeat(MAX_PACKET_BYTES / 3 + 1), sender: USER, expected: ['too_large' as ContextRejectReason] }),
  // Stale and duplicate revisions of the user's stream (last applied: 10).
  fc.tuple(fc.integer({ min: 1, max: 10 }), validOp).map(([rev, op]) => ({
    payload: enc({ v: 1, kind: 'op', src: 'tab-1', rev, op }),
    sender: USER,
    expected: ['stale_revision' as const],
  })),
  // Gaps in the user's stream (incremental ops only).
  fc.tuple(fc.integer({ min: 12, max: 1e9 }), fc.string({ minLength: 1, maxLength: 4 })).map(([rev, text]) => ({
    payload: enc({ v: 1, kind: 'op', src: 'tab-1', rev, op: { type: 'addEvent', text } }),
    sender: USER,
    expected: ['revision_gap' as const],
  })),
  // Unauthorised participants, with valid messages.
  fc.tuple(fc.string({ maxLength: 12 }).filter((s) => s !== 'user-1'), fc.constantFrom(undefined, '0', 'true', ''), validOp).map(([identity, flag, op]) => ({
    payload: enc({ v: 1, kind: 'op', src: 'x', rev: 1, op }),
    sender: { identity, attributes: flag === undefined ? {} : ({ [ATTR_CONTEXT_PUBLISHER]: flag } as Record<string, string>) },
    expected: ['unauthorized' as const],
  })),
  // Server API saying hello (it cannot be answered).
  fc.constant({ payload: enc({ v: 1, kind: 'hello', src: 's' }), sender: undefined, expected: ['hello_without_participant' as ContextRejectReason] }),
);

describe('dynamic context receiver fuzz', () => {
  it('refuses 10 000 hostile packets with a reason and changes nothing', async () => {
    const clock = new ManualClock(0);
    const sink = new MemoryContextSink();
    let replies = 0;
    const receiver = new ContextReceiver({
      participantIdentity: 'user-1',
      sink,
      clock,
      timers: new ManualTimers(clock),
      rateLimit: { burst: 1e9, perSecond: 1e9 },
      transport: { reply: () => void replies++ },
    });
    await receiver.markReady();
    for (let rev = 1; rev <= 10; rev++) {
      const op = rev % 2 ? { type: 'setState', name: 'Station', value: `Bay ${rev}` } : { type: 'addEvent', text: `event ${rev}` };
      expect(receiver.handle(enc({ v: 1, kind: 'op', src: 'tab-1', rev, op }), USER).ok).toBe(true);
    }
    await receiver.flush();
    const before = JSON.stringify(receiver.snapshot());
    const writes = sink.writes;
    const view = sink.view();
    const reasons = new Map<string, number>();

    fc.assert(
      fc.property(hostile, (p) => {
        let result;
        expect(() => (result = receiver.handle(p.payload, p.sender))).not.toThrow();
        expect(result).toMatchObject({ ok: false });
        const reason = (result as unknown as { reason: ContextRejectReason }).reason;
        expect(p.expected).toContain(reason);
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        expect(JSON.stringify(receiver.snapshot())).toBe(before);
      }),
      { numRuns: 10_000, seed: 1 },
    );
    await receiver.flush();
    expect(sink.writes).toBe(writes);
    expect(sink.view()).toBe(view);
    expect(replies).toBeGreaterThan(0);
    expect([...reasons.keys()].sort()).toEqual(
      ['hello_without_participant', 'invalid_message', 'malformed_json', 'revision_gap', 'stale_revision', 'too_large', 'unauthorized', 'unsupported_version'].sort(),
    );
  });

  it('a flood from one sender is rate limited with a reason', () => {
    const clock = new ManualClock(0);
    const receiver = new ContextReceiver({ participantIdentity: 'user-1', sink: new MemoryContextSink(), clock, timers: new ManualTimers(clock) });
    const results = Array.from({ length: 1000 }, () => receiver.handle('not json', USER));
    expect(results.filter((r) => !r.ok && r.reason === 'rate_limited').length).toBeGreaterThan(900);
    expect(() => receiver.handle(encodeContextMessage({ v: 1, kind: 'hello', src: 'a' }), USER)).not.toThrow();
  });
});
