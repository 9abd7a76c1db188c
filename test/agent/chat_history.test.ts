import { initializeLogger, llm } from '@livekit/agents';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SUMMARY_MESSAGE_ID,
  chatContextFromDto,
  chatContextToDto,
  chatContextToTurns,
  chatMessageToTurn,
  historyToChatContext,
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
