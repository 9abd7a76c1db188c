import { initializeLogger, llm } from '@livekit/agents';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SUMMARY_MESSAGE_ID,
  chatContextFromDto,
  chatContextToDto,
  chatContextToTurns,
  chatMessageToTurn,
  historyToChatContext,
  windowedChatContext,
} from '../../agent/chat_history.js';
import { appendTurn, emptyHistory } from '../../lib/session/history.js';
import type { History, Turn } from '../../lib/session/record.js';

beforeAll(() => {
  initializeLogger({ pretty: false, level: 'warn' });
});

const turns: Turn[] = [
  { id: 'u1', role: 'user', text: 'My router keeps dropping.', createdAtMs: 1_700_000_000_000 },
  { id: 'a1', role: 'assistant', text: 'Which model is it?', createdAtMs: 1_700_000_001_000 },
  { id: 'u2', role: 'user', text: 'A TP-Link 🦊 "AX55"\nwith\ttabs', createdAtMs: 1_700_000_002_000 },
];

describe('history ↔ ChatContext', () => {
  it('round-trips turns (ids, roles, text, times) through a ChatContext', () => {
    const history: History = { turns, summary: '', summarizedTurnCount: 0 };
    const ctx = historyToChatContext(history);
    expect(ctx.items.map((i) => i.id)).toEqual(['u1', 'a1', 'u2']);
    expect(chatContextToTurns(ctx)).toEqual(turns);
  });

  it('puts the summary first as a system message that is not persisted back as a turn', () => {
    let history = emptyHistory();
    for (const t of turns) history = appendTurn(history, t, { maxTurns: 2, maxSummaryChars: 500, maxTurnChars: 500, maxSummaryLineChars: 100 });
    const ctx = historyToChatContext(history);
    const first = ctx.items[0];
    expect(first?.id).toBe(SUMMARY_MESSAGE_ID);
    expect(first?.type === 'message' && first.role).toBe('system');
    expect(first?.type === 'message' && first.textContent).toContain('user: My router keeps dropping.');
    expect(chatContextToTurns(ctx)).toEqual(turns.slice(1));
  });

  it('leaves out function calls, handoffs, instructions and empty messages', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'system', content: 'You are helpful.' });
    ctx.insert(llm.AgentHandoffItem.create({ newAgentId: 'a' }));
    ctx.addMessage({ role: 'user', content: 'hi', id: 'm1', createdAt: 5 });
    ctx.insert(llm.FunctionCall.create({ callId: 'c1', name: 'f', args: '{}' }));
    ctx.addMessage({ role: 'assistant', content: '', id: 'm2' });
    expect(chatContextToTurns(ctx)).toEqual([{ id: 'm1', role: 'user', text: 'hi', createdAtMs: 5 }]);
    expect(chatMessageToTurn(llm.ChatMessage.create({ role: 'assistant', content: 'ok', id: 'x', createdAt: 9 }))).toEqual({ id: 'x', role: 'assistant', text: 'ok', createdAtMs: 9 });
  });
});

describe('ChatContext DTO codec', () => {
  it('round-trips a full context through JSON: equivalent items, same ids and timestamps', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'system', content: 'Be brief.', id: 's', createdAt: 1 });
    ctx.addMessage({ role: 'user', content: 'What is the weather?', id: 'u', createdAt: 2 });
    ctx.insert(llm.FunctionCall.create({ id: 'fc', callId: 'c1', name: 'weather', args: '{"city":"Oslo"}', createdAt: 3 }));
    ctx.insert(llm.FunctionCallOutput.create({ id: 'fo', callId: 'c1', name: 'weather', output: '"sunny"', isError: false, createdAt: 4 }));
    ctx.insert(llm.AgentHandoffItem.create({ id: 'h', oldAgentId: 'a', newAgentId: 'b', createdAt: 5 }));
    ctx.addMessage({ role: 'assistant', content: 'Sunny.', id: 'a', createdAt: 6, interrupted: true });
    const wire = JSON.stringify(chatContextToDto(ctx));
    const back = chatContextFromDto(JSON.parse(wire));
    expect(back.ok).toBe(true);
    if (!back.ok) return;
    expect(back.ctx.isEquivalent(ctx)).toBe(true);
    expect(back.ctx.items.map((i) => [i.id, i.createdAt])).toEqual(ctx.items.map((i) => [i.id, i.createdAt]));
    expect(back.ctx.toJSON({ excludeTimestamp: false })).toEqual(ctx.toJSON({ excludeTimestamp: false }));
  });

  it('refuses a malformed DTO instead of trusting it', () => {
    expect(chatContextFromDto({ v: 2, items: [] })).toEqual({ ok: false, why: 'record_invalid' });
    expect(chatContextFromDto({ v: 1, items: [{ type: 'message', id: 'x' }] })).toEqual({ ok: false, why: 'record_invalid' });
  });
});

describe('the window of a long conversation the model is given (windowedChatContext)', () => {
  const limits = { maxTurns: 3, maxSummaryChars: 500, maxTurnChars: 500, maxSummaryLineChars: 100 };
  const said: Turn[] = Array.from({ length: 6 }, (_, i) => ({ id: `t${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `message ${i}`, createdAtMs: 1_700_000_000_000 + i * 1_000 }));
  const historyOf = (n: number) => said.slice(0, n).reduce((h, t) => appendTurn(h, t, limits), emptyHistory());
  /** A live chat context: instructions, every turn said, a tool call and the dynamic context between them. */
  function live(n: number): llm.ChatContext {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ id: 'instructions', role: 'system', content: 'Be brief.', createdAt: 1 });
    for (const t of said.slice(0, n)) {
      ctx.addMessage({ id: t.id, role: t.role, content: t.text, createdAt: t.createdAtMs });
      if (t.id === 't1') {
        ctx.insert(llm.FunctionCall.create({ callId: 'c1', name: 'lookup', args: '{}', createdAt: t.createdAtMs + 1 }));
        ctx.insert(llm.FunctionCallOutput.create({ callId: 'c1', name: 'lookup', output: 'ok', isError: false, createdAt: t.createdAtMs + 2 }));
        ctx.addMessage({ id: 'pva_dynamic_context', role: 'system', content: 'The user is on the checkout page.', createdAt: t.createdAtMs + 3 });
      }
    }
    return ctx;
  }
  const shape = (ctx: llm.ChatContext) => ctx.items.map((i) => (i.type === 'message' ? `${i.role}:${i.id === SUMMARY_MESSAGE_ID ? 'summary' : i.textContent}` : i.type));

  it('gives the model what a resume would restore: the summary in place of the folded turns (and their tool calls), instructions and context kept', () => {
    const history = historyOf(6);
    const ctx = live(6);
    const windowed = windowedChatContext(ctx, history);
    expect(shape(windowed)).toEqual(['system:Be brief.', 'system:The user is on the checkout page.', 'system:summary', 'assistant:message 3', 'user:message 4', 'assistant:message 5']);
    const summary = windowed.items.find((i) => i.id === SUMMARY_MESSAGE_ID);
    expect(summary?.type === 'message' && summary.textContent).toBe(`Summary of the earlier part of this conversation:\n${history.summary}`);
    expect(history.summary).toBe('user: message 0\nassistant: message 1\nuser: message 2');
    // The agent's own context is untouched.
    expect(ctx.items).toHaveLength(10);
  });

  it('replaces an earlier summary message (a resumed conversation) with the current one, condensed or not', () => {
    const history = { ...historyOf(6), summary: 'Condensed: the user wants a refund.' };
    const resumed = historyToChatContext(historyOf(4)); // summary of t0, then t1..t3
    for (const t of said.slice(4)) resumed.addMessage({ id: t.id, role: t.role, content: t.text, createdAt: t.createdAtMs });
    const windowed = windowedChatContext(resumed, history);
    expect(shape(windowed)).toEqual(['system:summary', 'assistant:message 3', 'user:message 4', 'assistant:message 5']);
    expect(windowed.items[0]?.type === 'message' && windowed.items[0].textContent).toContain('Condensed: the user wants a refund.');
  });

  it('cuts at the next kept turn when the agent\'s context no longer holds the first one', () => {
    const ctx = live(6);
    ctx.items.splice(ctx.indexById('t3')!, 1); // say, a message agents-js removed
    expect(shape(windowedChatContext(ctx, historyOf(6)))).toEqual(['system:Be brief.', 'system:The user is on the checkout page.', 'system:summary', 'user:message 4', 'assistant:message 5']);
  });

  it('leaves the context whole when nothing was folded yet, or when the window cannot be lined up with it', () => {
    const ctx = live(3);
    expect(windowedChatContext(ctx, historyOf(3))).toBe(ctx);
    const elsewhere = { ...historyOf(6), turns: [{ ...said[5]!, id: 'not-in-the-context' }] };
    expect(windowedChatContext(live(6), elsewhere).items).toHaveLength(10);
  });
});

