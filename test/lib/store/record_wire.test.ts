import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HISTORY_LIMITS, recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord, sessionRecordSchema, turnSchema } from '../../../lib/session/record.js';
import type { SessionRecord, Turn } from '../../../lib/session/record.js';
import { PayloadCodec } from '../../../lib/store/codec.js';
import { PayloadCipher } from '../../../lib/store/crypto.js';
import { parseStoredRecord, toStoredRecord } from '../../../lib/store/record_wire.js';

const key = { agentName: 'agent', identity: 'wire' };

function recordWith(turns: Turn[]): SessionRecord {
  let r = newSessionRecord({ ...key, sessionId: 's1', nowMs: 1_000, profile: null, participantName: 'Ada' });
  for (const t of turns) r = recordWithTurn(r, t);
  return r;
}

function stored(turns: Turn[]): Record<string, unknown> {
  return JSON.parse(JSON.stringify(toStoredRecord(recordWith(turns)))) as Record<string, unknown>;
}

function withColumns(turns: Turn[], patch: Record<string, unknown>): unknown {
  const s = stored(turns) as { history: { turns: Record<string, unknown> } };
  s.history.turns = { ...s.history.turns, ...patch };
  return s;
}

const someTurns: Turn[] = [
  { id: 't1', role: 'user', text: 'My router drops — 5 GHz, "AX55" \\ 🦊 \u0000', createdAtMs: 2_000 },
  { id: 't2', role: 'assistant', text: '', createdAtMs: 2_001 },
];

describe('stored record form (turns as columns)', () => {
  it('round-trips a record through JSON, turns included', () => {
    const record = recordWith(someTurns);
    const back = parseStoredRecord(JSON.parse(JSON.stringify(toStoredRecord(record))));
    expect(back).toEqual({ ok: true, value: record });
    const s = stored(someTurns) as { history: { turns: unknown } };
    expect(s.history.turns).toEqual({ id: ['t1', 't2'], role: 'ua', text: [someTurns[0]?.text, ''], at: [2_000, 2_001] });
  });

  it('accepts exactly the turns turnSchema accepts (property)', () => {
    const anyTurn = fc.record({
      id: fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('', 'x'.repeat(256), 'x'.repeat(257))),
      role: fc.constantFrom('user', 'assistant'),
      text: fc.string({ unit: 'binary' }),
      createdAtMs: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-1, 0, 2 ** 53 - 1, 2 ** 53, 1.5)),
    });
    fc.assert(
      fc.property(fc.array(anyTurn, { maxLength: 5 }), (turns) => {
        const valid = turns.every((t) => turnSchema.safeParse(t).success);
        const r = recordWith([]);
        r.history.turns = turns as Turn[];
        const parsed = parseStoredRecord(JSON.parse(JSON.stringify(toStoredRecord(r))));
        expect(parsed.ok).toBe(valid && sessionRecordSchema.safeParse(JSON.parse(JSON.stringify(r))).success);
        if (parsed.ok) expect(parsed.value.history.turns).toEqual(turns);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses malformed columns and unknown versions as record_invalid', () => {
    const invalid = { ok: false, why: 'record_invalid' };
    expect(parseStoredRecord(withColumns(someTurns, { role: 'ux' }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { role: 'u' }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { id: ['t1'] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { text: ['a', 'b', 'c'] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { at: [2_000, '2001'] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { at: [2_000, -1] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { id: ['t1', ''] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { text: ['a', 7] }))).toEqual(invalid);
    expect(parseStoredRecord(withColumns(someTurns, { at: undefined }))).toEqual(invalid);
    expect(parseStoredRecord({ ...stored(someTurns), v: 2 })).toEqual(invalid);
    expect(parseStoredRecord(null)).toEqual(invalid);
  });

  it('still reads a record stored in the previous form (turns as objects)', () => {
    const record = recordWith(someTurns);
    expect(parseStoredRecord(JSON.parse(JSON.stringify(record)))).toEqual({ ok: true, value: record });
    expect(parseStoredRecord({ ...JSON.parse(JSON.stringify(record)), v: 2 })).toEqual({ ok: false, why: 'record_invalid' });
  });

  it('codec: plain and sealed payloads round-trip; a tampered sealed payload is record_tampered', () => {
    const record = recordWith(someTurns);
    for (const codec of [new PayloadCodec(null), new PayloadCodec(new PayloadCipher({ currentKeyId: 'k', keys: { k: Buffer.alloc(32, 3) } }))]) {
      const payload = codec.encodeRecord(record);
      const read = codec.decodeRecord(key, payload, [], 7, DEFAULT_HISTORY_LIMITS);
      expect(read).toEqual({ status: 'found', record: { ...record, version: 7 } });
    }
    const sealed = new PayloadCodec(new PayloadCipher({ currentKeyId: 'k', keys: { k: Buffer.alloc(32, 3) } }));
    const p = sealed.encodeRecord(record);
    const tampered = p.slice(0, -4) + (p.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expect(sealed.decodeRecordPayload(key, tampered)).toEqual({ ok: false, why: 'record_tampered' });
  });
});
