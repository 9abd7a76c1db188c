import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HISTORY_LIMITS, recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord, sessionRecordSchema, turnSchema } from '../../../lib/session/record.js';
import type { SessionRecord, Turn } from '../../../lib/session/record.js';
import { PayloadCodec } from '../../../lib/store/codec.js';
import { PayloadCipher } from '../../../lib/store/crypto.js';
import { decodeStoredRecord, encodeStoredRecord, parseStoredRecord, toStoredRecord } from '../../../lib/store/record_wire.js';

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
        // The stored form is JSON, which writes -0 as 0 (the same instant): compare with the turns as JSON gives them back.
        if (parsed.ok) expect(parsed.value.history.turns).toEqual(JSON.parse(JSON.stringify(turns)));
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

describe('stored payload (split: JSON head, then ids and texts unescaped)', () => {
  const invalid = { ok: false, why: 'record_invalid' };
  const tricky: Turn[] = [
    { id: 'id\nwith newline', role: 'user', text: 'line one\nline two "quoted" \\ 🦊 \u0000', createdAtMs: 5_000 },
    { id: 'x'.repeat(256), role: 'assistant', text: '', createdAtMs: 4_000 },
    { id: '🦊', role: 'user', text: '{"v":1}\n', createdAtMs: 2 ** 53 - 1 },
  ];

  function split(record: SessionRecord): { head: Record<string, unknown>; tail: string } {
    const payload = encodeStoredRecord(record);
    const cut = payload.indexOf('\n');
    return { head: JSON.parse(payload.slice(0, cut)) as Record<string, unknown>, tail: payload.slice(cut + 1) };
  }

  function withHead(record: SessionRecord, patch: (turns: Record<string, unknown>) => void, tail?: (t: string) => string): string {
    const s = split(record);
    patch((s.head as { history: { turns: Record<string, unknown> } }).history.turns);
    return `${JSON.stringify(s.head)}\n${tail === undefined ? s.tail : tail(s.tail)}`;
  }

  it('round-trips ids and texts with newlines, quotes, NUL and emoji; the head holds no text', () => {
    const record = recordWith(tricky);
    const { head, tail } = split(record);
    expect(decodeStoredRecord(encodeStoredRecord(record))).toEqual({ ok: true, value: record });
    // The turns' texts are in the tail only (the head keeps the last topic, a copy of one sentence, by design).
    const { lastTopic: _topic, ...turnsAndRest } = head;
    expect(JSON.stringify(turnsAndRest)).not.toContain('line one');
    expect(tail).toBe(tricky.map((t) => t.id + t.text).join(''));
    expect((head as { history: { turns: unknown } }).history.turns).toEqual({ role: 'uau', il: [15, 256, 2], tl: [tricky[0]?.text.length, 0, 8], dt: [5_000, -1_000, 2 ** 53 - 1 - 4_000] });
  });

  it('keeps a record whose text or id is not well-formed UTF-16 in the JSON form, exactly', () => {
    for (const t of [{ ...tricky[0], text: 'lone \ud800 surrogate' }, { ...tricky[0], id: 'a\udc00' }] as Turn[]) {
      const record = recordWith([t]);
      const payload = encodeStoredRecord(record);
      expect(payload).not.toContain('\n');
      // Through UTF-8 and back, as Redis stores it.
      expect(decodeStoredRecord(Buffer.from(payload, 'utf8').toString('utf8'))).toEqual({ ok: true, value: record });
    }
  });

  it('accepts exactly the turns turnSchema accepts (property)', () => {
    const anyTurn = fc.record({
      id: fc.oneof(fc.string({ maxLength: 300, unit: 'binary' }), fc.constantFrom('', 'x'.repeat(256), 'x'.repeat(257), '\n')),
      role: fc.constantFrom('user', 'assistant'),
      text: fc.string({ unit: 'binary' }),
      createdAtMs: fc.oneof(fc.integer(), fc.constantFrom(-1, 0, 2 ** 53 - 1)),
    });
    fc.assert(
      fc.property(fc.array(anyTurn, { maxLength: 5 }), (turns) => {
        const valid = turns.every((t) => turnSchema.safeParse(t).success);
        const r = recordWith([]);
        r.history.turns = turns as Turn[];
        const parsed = decodeStoredRecord(Buffer.from(encodeStoredRecord(r), 'utf8').toString('utf8'));
        expect(parsed.ok).toBe(valid);
        if (parsed.ok) expect(parsed.value).toEqual(r);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses heads and tails that do not add up as record_invalid', () => {
    const record = recordWith(tricky);
    const good = encodeStoredRecord(record);
    const cases = [
      good.slice(0, -1), // tail one short
      `${good}x`, // tail one long
      good.slice(0, good.indexOf('\n')), // no tail at all is the JSON form: head alone is not a record
      withHead(record, (t) => (t.il = [0, 256, 2]), (tail) => tail.slice(15)), // empty id
      withHead(record, (t) => (t.il = [15, 257, 1])), // id over 256
      withHead(record, (t) => (t.tl = [-1, 0, 8 + (tricky[0]?.text.length ?? 0) + 1])), // negative length
      withHead(record, (t) => (t.dt = [5_000, -5_001, 0])), // createdAtMs below 0
      withHead(record, (t) => (t.dt = [5_000, 0.5, 0])), // not an integer
      withHead(record, (t) => (t.role = 'uax')),
      withHead(record, (t) => (t.role = 'ua')),
      withHead(record, (t) => (t.il = [15, 256])),
      withHead(record, (t) => (t.tl = ['a', 0, 8])),
      withHead(record, (t) => delete t.dt),
      `{"v":2${good.slice(good.indexOf(','))}`,
      `{${good}`,
      '\n',
      '',
    ];
    for (const payload of cases) expect(decodeStoredRecord(payload)).toEqual(invalid);
  });

  it('still reads the JSON column form and the older turns-as-objects form', () => {
    const record = recordWith(tricky);
    expect(decodeStoredRecord(JSON.stringify(toStoredRecord(record)))).toEqual({ ok: true, value: record });
    expect(decodeStoredRecord(JSON.stringify(record))).toEqual({ ok: true, value: record });
  });
});
