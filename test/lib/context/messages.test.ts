import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONTEXT_TOPIC } from '../../../lib/attributes.js';
import {
  MAX_CONTEXT_BYTES,
  MAX_PACKET_BYTES,
  MAX_SRC_LENGTH,
  decodeAgentMessage,
  decodeClientMessage,
  encodeContextMessage,
  jsonStringBytes,
  utf8Bytes,
  type AgentMessage,
  type ClientMessage,
} from '../../../lib/context/messages.js';
import { ContextTracker } from '../../../lib/context/tracker.js';

describe('wire protocol', () => {
  it('uses the project topic, not lk.*', () => {
    expect(CONTEXT_TOPIC).toBe('pva.context');
  });

  it('round-trips every client and agent message kind', () => {
    const client: ClientMessage[] = [
      { v: 1, kind: 'hello', src: 'tab' },
      { v: 1, kind: 'op', src: 'tab', rev: 1, op: { type: 'setState', name: 'Station', value: 'Bay 3' } },
      { v: 1, kind: 'op', src: 'tab', rev: 2, op: { type: 'setStates', states: [{ name: 'A', value: '1' }] } },
      { v: 1, kind: 'op', src: 'tab', rev: 3, op: { type: 'removeState', name: 'A' } },
      { v: 1, kind: 'op', src: 'tab', rev: 4, op: { type: 'addEvent', text: 'e' } },
      { v: 1, kind: 'op', src: 'tab', rev: 5, op: { type: 'reset' } },
      { v: 1, kind: 'op', src: 'tab', rev: 6, op: { type: 'apply', mode: 'append', text: 'raw' } },
      { v: 1, kind: 'op', src: 'tab', rev: 7, op: { type: 'sync', states: [], events: ['e'] } },
    ];
    for (const m of client) expect(decodeClientMessage(encodeContextMessage(m))).toEqual({ ok: true, message: m });
    const agent: AgentMessage[] = [
      { v: 1, kind: 'ack', src: 'tab', rev: 3 },
      { v: 1, kind: 'reject', src: 'tab', rev: 4, reason: 'revision_gap', expectedRev: 2 },
      { v: 1, kind: 'reject', reason: 'unauthorized' },
      { v: 1, kind: 'welcome', src: 'tab', lastRev: 0, context: { states: [], events: [] } },
    ];
    for (const m of agent) expect(decodeAgentMessage(encodeContextMessage(m))).toEqual({ ok: true, message: m });
  });

  it('names why a packet is refused', () => {
    expect(decodeClientMessage('{')).toEqual({ ok: false, reason: 'malformed_json' });
    expect(decodeClientMessage(Uint8Array.of(0xc3, 0x28))).toEqual({ ok: false, reason: 'malformed_json' });
    expect(decodeClientMessage('{"v":2,"kind":"hello","src":"a"}')).toEqual({ ok: false, reason: 'unsupported_version' });
    expect(decodeClientMessage('{"v":1,"kind":"op","src":"a","rev":0,"op":{"type":"reset"}}')).toEqual({ ok: false, reason: 'invalid_message' });
    expect(decodeClientMessage(new Uint8Array(MAX_PACKET_BYTES + 1))).toEqual({ ok: false, reason: 'too_large' });
  });

  it('a full context (worst-case escaping) still fits one packet as a sync and as a welcome', () => {
    const t = new ContextTracker({ active: true });
    let i = 0;
    while (t.setState(`"k${i}\\`, '"😀\\é'.repeat(100)).ok) i++;
    for (let e = 0; e < 40; e++) t.addEvent(`"${i++}`.padEnd(200, '"'));
    expect(t.contentBytes).toBeLessThanOrEqual(MAX_CONTEXT_BYTES);
    const c = t.content();
    const sync = encodeContextMessage({
      v: 1,
      kind: 'op',
      src: 'x'.repeat(MAX_SRC_LENGTH),
      rev: Number.MAX_SAFE_INTEGER,
      op: { type: 'sync', states: [...c.states], events: [...c.events] },
    });
    const welcome = encodeContextMessage({
      v: 1,
      kind: 'welcome',
      src: 'x'.repeat(MAX_SRC_LENGTH),
      lastRev: Number.MAX_SAFE_INTEGER,
      context: { states: [...c.states], events: [...c.events] },
    });
    expect(sync.byteLength).toBeLessThanOrEqual(MAX_PACKET_BYTES);
    expect(welcome.byteLength).toBeLessThanOrEqual(MAX_PACKET_BYTES);
  });

  it('counts bytes like the encoder does', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => {
        expect(utf8Bytes(s)).toBe(new TextEncoder().encode(s).byteLength);
        expect(jsonStringBytes(s)).toBeGreaterThanOrEqual(utf8Bytes(JSON.stringify(s)) - 2 - countControl(s) * 5);
      }),
      { numRuns: 500, seed: 3 },
    );
  });
});

function countControl(s: string): number {
  let n = 0;
  for (const ch of s) if (ch.charCodeAt(0) < 0x20) n++;
  return n;
}
