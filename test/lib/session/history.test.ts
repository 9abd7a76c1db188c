import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendTurn, emptyHistory, lastTopic, recordWithTurn } from '../../../lib/session/history.js';
import type { HistoryLimits } from '../../../lib/session/history.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import type { Turn } from '../../../lib/session/record.js';

const limits: HistoryLimits = { maxTurns: 3, maxSummaryChars: 60, maxTurnChars: 20, maxSummaryLineChars: 12 };
const t = (i: number, role: Turn['role'] = 'user', text = `turn number ${i}`): Turn => ({ id: `t${i}`, role, text, createdAtMs: i });

describe('history', () => {
  it('keeps the last N turns and folds older ones into a bounded summary', () => {
    let h = emptyHistory();
    for (let i = 1; i <= 6; i++) h = appendTurn(h, t(i), limits);
    expect(h.turns.map((x) => x.id)).toEqual(['t4', 't5', 't6']);
    expect(h.summarizedTurnCount).toBe(3);
    expect(h.summary.split('\n')).toEqual(['user: turn number…', 'user: turn number…', 'user: turn number…']);
    for (let i = 7; i <= 20; i++) h = appendTurn(h, t(i), limits);
    expect(h.summary.length).toBeLessThanOrEqual(60);
    expect(h.summarizedTurnCount).toBe(17);
  });

  it('is idempotent per turn id (replays add nothing)', () => {
    const h = appendTurn(appendTurn(emptyHistory(), t(1), limits), t(1), limits);
    expect(h.turns).toHaveLength(1);
  });

  it('cuts very long turns', () => {
    expect(appendTurn(emptyHistory(), t(1, 'user', 'x'.repeat(100)), limits).turns[0]?.text).toHaveLength(20);
  });

  /** True when `text` has no half of a character (it survives UTF-8 unchanged). */
  const wellFormed = (text: string): boolean => Buffer.from(text, 'utf8').toString('utf8') === text;

  it('never cuts a character in half: a turn, a summary line or a topic cut at an emoji keeps the emoji whole or drops it', () => {
    // The cut (19 units, then the ellipsis) falls between the two halves of the emoji.
    const text = `${'a'.repeat(18)}😀 and more`;
    const kept = appendTurn(emptyHistory(), t(1, 'user', text), limits).turns[0]?.text ?? '';
    expect(kept).toBe(`${'a'.repeat(18)}…`);
    let h = emptyHistory();
    for (let i = 1; i <= 4; i++) h = appendTurn(h, t(i, 'user', `${'b'.repeat(4)}😀😀😀😀`), limits);
    expect(h.summary.length).toBeGreaterThan(0);
    expect(wellFormed(h.summary)).toBe(true);
    const topic = lastTopic(appendTurn(emptyHistory(), t(1, 'user', `${'c'.repeat(78)}😀 is what I asked about`)));
    expect(topic).toBe(`${'c'.repeat(78)}…`);
  });

  it('keeps whole summary lines that fit: a cut at the start of a line drops nothing more', () => {
    const one: HistoryLimits = { maxTurns: 1, maxSummaryChars: 21, maxTurnChars: 20, maxSummaryLineChars: 12 };
    let h = emptyHistory();
    for (const [i, text] of ['aaaa', 'bbbb', 'cccc', 'dddd'].entries()) h = appendTurn(h, t(i, 'user', text), one);
    expect(h.summary).toBe('user: bbbb\nuser: cccc');
  });

  it('property: summaries and turns of any text stay well-formed UTF-16 and within their bounds', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { maxLength: 30 }), fc.integer({ min: 1, max: 40 }), (texts, maxSummaryChars) => {
        const bounds: HistoryLimits = { maxTurns: 2, maxSummaryChars, maxTurnChars: 9, maxSummaryLineChars: 7 };
        let h = emptyHistory();
        for (const [i, text] of texts.entries()) h = appendTurn(h, t(i, 'user', text.replace(/\p{Cs}/gu, 'x')), bounds);
        return wellFormed(h.summary) && h.summary.length <= maxSummaryChars && h.turns.every((x) => wellFormed(x.text) && x.text.length <= 9);
      }),
    );
  });

  it('property: never more than maxTurns, and turns + summarized = distinct appended', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 80 }), (ids) => {
        let h = emptyHistory();
        for (const i of ids) h = appendTurn(h, t(i), limits);
        return h.turns.length <= limits.maxTurns && h.summary.length <= limits.maxSummaryChars;
      }),
    );
  });

  it('remembers what the conversation was about, not its sign-off, its greeting or a title\'s period', () => {
    const topicOf = (...turns: [Turn['role'], string][]) => lastTopic(turns.reduce((h, [role, text], i) => appendTurn(h, t(i, role, text)), emptyHistory()));
    expect(topicOf(['user', 'My router keeps dropping on the 5 GHz band.'], ['assistant', 'Let us check.'], ['user', 'Thanks, bye! See you.'])).toBe('My router keeps dropping on the 5 GHz band.');
    expect(topicOf(['user', 'Hi! My router keeps dropping.'])).toBe('My router keeps dropping.');
    expect(topicOf(['user', 'I called Dr. Smith about my refund. It was late.'])).toBe('I called Dr. Smith about my refund.');
    expect(topicOf(['user', 'Quiero cambiar mi reserva para el sábado. Gracias.'])).toBe('Quiero cambiar mi reserva para el sábado.');
    // Only short turns: the last one is all there is.
    expect(topicOf(['user', 'Hi'], ['user', 'Billing question?'])).toBe('Billing question?');
  });

  it('extracts the last topic from the last user turn', () => {
    let h = emptyHistory();
    expect(lastTopic(h)).toBeUndefined();
    h = appendTurn(h, t(1, 'user', 'My router keeps dropping. It is a TP-Link.'), limits);
    h = appendTurn(h, t(2, 'assistant', 'Let us check.'), limits);
    expect(lastTopic(h)).toBe('My router keeps dro…');
    const r = recordWithTurn(newSessionRecord({ agentName: 'a', identity: 'i', sessionId: 's', nowMs: 0, profile: null }), t(5, 'user', 'Billing question?'));
    expect(r.lastTopic).toBe('Billing question?');
    expect(r.lastSeenAt).toBe(5);
  });
});
