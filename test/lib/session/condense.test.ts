import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { condenseDue, condenseRequest, DEFAULT_CONDENSE_OPTIONS, withCondensedSummary } from '../../../lib/session/condense.js';
import type { CondenseOptions } from '../../../lib/session/condense.js';
import { appendTurn, DEFAULT_HISTORY_LIMITS, emptyHistory, summaryLine } from '../../../lib/session/history.js';
import type { History, Turn } from '../../../lib/session/record.js';

const t = (i: number, text = `I still need the router fixed, message ${i}, and here is more detail about it.`): Turn => ({
  id: `t${i}`,
  role: i % 2 === 0 ? 'user' : 'assistant',
  text,
  createdAtMs: i,
});

/** A history of `n` turns under the default limits (50 verbatim, the rest as summary lines). */
function historyOf(n: number): History {
  let h = emptyHistory();
  for (let i = 0; i < n; i++) h = appendTurn(h, t(i));
  return h;
}

const small: CondenseOptions = { condenseAtChars: 100, maxCondensedChars: 40, retryAfterTurns: 2 };

describe('condensing the summary of older turns', () => {
  it('is due once the summary reaches condenseAtChars, never when it is 0', () => {
    const h = historyOf(50 + 36);
    expect(h.summary.length).toBeGreaterThanOrEqual(DEFAULT_CONDENSE_OPTIONS.condenseAtChars);
    expect(condenseDue(historyOf(50 + 10))).toBe(false);
    expect(condenseDue(h)).toBe(true);
    expect(condenseDue(h, { ...DEFAULT_CONDENSE_OPTIONS, condenseAtChars: 0 })).toBe(false);
  });

  it('is due before the summary bound drops its oldest lines (the default leaves room for a turn\'s line)', () => {
    const line = summaryLine(t(0, 'x'.repeat(5_000))).length;
    expect(DEFAULT_CONDENSE_OPTIONS.condenseAtChars + line).toBeLessThan(DEFAULT_HISTORY_LIMITS.maxSummaryChars);
  });

  it('asks for a bounded third-person summary of the whole text, lines and earlier paragraph alike', () => {
    const r = condenseRequest('Earlier: the user wants a refund.\nuser: order 4411\nassistant: found it', small);
    expect(r.text).toBe('Earlier: the user wants a refund.\nuser: order 4411\nassistant: found it');
    expect(r.instructions).toContain('at most 40 characters');
    expect(r.instructions).toMatch(/third person/);
  });

  it('replaces the text the model saw and keeps the lines folded in meanwhile, in order', () => {
    const basis = 'user: my name is Ana\nassistant: hello Ana\nuser: order 4411 is late';
    const now = { turns: [], summary: `${basis}\nassistant: it ships today\nuser: thanks`, summarizedTurnCount: 5 };
    const next = withCondensedSummary(now, basis, '  Ana asked about late order 4411.  ', small);
    expect(next).toEqual({ turns: [], summary: 'Ana asked about late order 4411.\nassistant: it ships today\nuser: thanks', summarizedTurnCount: 5 });
  });

  it('replaces the whole summary when nothing was folded in meanwhile', () => {
    const basis = 'user: my name is Ana\nassistant: hello Ana\nuser: order 4411 is late';
    expect(withCondensedSummary({ turns: [], summary: basis, summarizedTurnCount: 3 }, basis, 'Ana: order 4411 late.', small)?.summary).toBe('Ana: order 4411 late.');
  });

  it('refuses an answer it cannot use: the front moved, empty, not shorter than the text', () => {
    const basis = 'user: my name is Ana\nassistant: hello Ana';
    const h = { turns: [], summary: basis, summarizedTurnCount: 2 };
    expect(withCondensedSummary({ ...h, summary: 'assistant: hello Ana\nuser: more' }, basis, 'Ana.', small)).toBeNull();
    expect(withCondensedSummary(h, basis, '   ', small)).toBeNull();
    expect(withCondensedSummary(h, '', 'Ana.', small)).toBeNull();
    const wide = { ...small, maxCondensedChars: 500 };
    expect(withCondensedSummary(h, basis, `${basis} and more`, wide)).toBeNull();
  });

  it('cuts a long answer at a word boundary to maxCondensedChars', () => {
    const basis = 'x'.repeat(300);
    const next = withCondensedSummary({ turns: [], summary: basis, summarizedTurnCount: 9 }, basis, 'The user reported that the router drops every few minutes on the 5 GHz band.', small);
    expect(next?.summary.length).toBeLessThanOrEqual(40);
    expect(next?.summary).toBe('The user reported that the router drops…');
  });

  it('never cuts a character in half: an answer with no space to cut at (Chinese, say) ending in an emoji at the bound keeps it whole or drops it', () => {
    const basis = 'x'.repeat(300);
    // 40 characters at most: the cut (39 units, then the ellipsis) falls inside the emoji.
    const answer = `${'用户报告路由器每隔几分钟就掉线'.repeat(3).slice(0, 38)}😀之后恢复正常`;
    const next = withCondensedSummary({ turns: [], summary: basis, summarizedTurnCount: 9 }, basis, answer, small);
    expect(next?.summary).toBe(`${answer.slice(0, 38)}…`);
  });

  it('never loses a line folded after the basis, whatever was folded (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 8 }), fc.array(fc.string({ maxLength: 30 }), { maxLength: 8 }), (before, after) => {
        const basis = before.map((l) => `user: ${l}`).join('\n');
        const later = after.map((l) => `assistant: ${l}`);
        const summary = [basis, ...later].join('\n');
        const next = withCondensedSummary({ turns: [], summary, summarizedTurnCount: 1 }, basis, 'S', { ...small, maxCondensedChars: 1 });
        if (basis.length <= 1) return next === null;
        return next !== null && next.summary === ['S', ...later].join('\n');
      }),
    );
  });
});
