/**
 * The project's agent before each reply: pending dynamic context is flushed into the model's
 * context first, and a turn whose context did not change keeps agents-js's early (preemptive)
 * reply, which is reused only when the chat context it started from is still equivalent.
 */
import { initializeLogger, llm } from '@livekit/agents';
import { beforeAll, describe, expect, it } from 'vitest';
import { Assistant } from '../../agent/assistant.js';
import { DYNAMIC_CONTEXT_MESSAGE_ID } from '../../agent/context_sink.js';

beforeAll(() => initializeLogger({ pretty: false, level: 'warn' }));

/** A conversation with the dynamic context before one exchange, as the sink leaves it. */
function conversation(): llm.ChatContext {
  const ctx = llm.ChatContext.empty();
  ctx.addMessage({ id: DYNAMIC_CONTEXT_MESSAGE_ID, role: 'system', content: 'Current situation of the user:\nStation is Bay 3', createdAt: 1 });
  ctx.addMessage({ id: 'u1', role: 'user', content: 'Hi.', createdAt: 2 });
  ctx.addMessage({ id: 'a1', role: 'assistant', content: 'Hello, how can I help?', createdAt: 3 });
  return ctx;
}

const question = () => llm.ChatMessage.create({ role: 'user', content: 'Where am I?' });

describe('Assistant before a reply', () => {
  it('leaves the turn\'s context as it was when the flush changed nothing: the early reply stays usable', async () => {
    let flushes = 0;
    const agent = new Assistant({ chatCtx: conversation(), beforeUserTurn: async () => void flushes++ });
    const startedFrom = agent.chatCtx.copy(); // what an early reply was generated from
    const turnCtx = agent.chatCtx.copy();
    await agent.onUserTurnCompleted(turnCtx, question());
    expect(flushes).toBe(1);
    expect(turnCtx.isEquivalent(startedFrom)).toBe(true);
  });

  it('gives the reply the context the flush just wrote, not the one the turn started with', async () => {
    let agent: Assistant | undefined;
    const flush = async () => {
      const next = agent!.chatCtx.copy();
      const at = next.indexById(DYNAMIC_CONTEXT_MESSAGE_ID)!;
      next.items.splice(at, 1);
      next.addMessage({ id: DYNAMIC_CONTEXT_MESSAGE_ID, role: 'system', content: 'Current situation of the user:\nStation is Bay 7', createdAt: 4 });
      await agent!.updateChatCtx(next);
    };
    agent = new Assistant({ chatCtx: conversation(), beforeUserTurn: flush });
    const turnCtx = agent.chatCtx.copy();
    await agent.onUserTurnCompleted(turnCtx, question());
    const said = turnCtx.items.map((i) => (i.type === 'message' ? `${i.id}:${i.textContent ?? ''}` : i.id));
    expect(said.filter((s) => s.startsWith(DYNAMIC_CONTEXT_MESSAGE_ID))).toEqual([`${DYNAMIC_CONTEXT_MESSAGE_ID}:Current situation of the user:\nStation is Bay 7`]);
    expect(said.slice(0, 2)).toEqual(['u1:Hi.', 'a1:Hello, how can I help?']);
  });
});
