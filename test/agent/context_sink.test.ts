import { initializeLogger, llm, voice } from '@livekit/agents';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentContextSink, CONTEXT_UPDATE_ID_PREFIX, DYNAMIC_CONTEXT_MESSAGE_ID } from '../../agent/context_sink.js';
import { ManualClock } from '../../lib/clock.js';
import { encodeContextMessage } from '../../lib/context/messages.js';
import { ContextReceiver } from '../../lib/context/receiver.js';
import { ManualTimers } from '../../lib/context/timers.js';

beforeAll(() => initializeLogger({ pretty: false, level: 'warn' }));

/** A FakeLLM that remembers the chat context of every request. */
class RecordingLLM extends voice.testing.FakeLLM {
  readonly seen: llm.ChatContext[] = [];
  override chat(params: Parameters<voice.testing.FakeLLM['chat']>[0]): ReturnType<voice.testing.FakeLLM['chat']> {
    this.seen.push(params.chatCtx.copy());
    return super.chat(params);
  }
}

function texts(agent: voice.Agent): Array<{ id: string; role: string; text: string }> {
  return agent.chatCtx.items.flatMap((i) =>
    i.type === 'message' ? [{ id: i.id, role: i.role, text: (i as llm.ChatMessage).textContent ?? '' }] : [],
  );
}

const ours = (agent: voice.Agent) =>
  texts(agent).filter((m) => m.id === DYNAMIC_CONTEXT_MESSAGE_ID || m.id.startsWith(CONTEXT_UPDATE_ID_PREFIX));

let session: voice.AgentSession | undefined;
afterEach(async () => {
  await session?.close();
  session = undefined;
});

describe('AgentContextSink on a voice.Agent', () => {
  it('Replace sets one dynamic-context message, Append adds update messages, Reset removes them', async () => {
    const agent = new voice.Agent({ instructions: 'You are helpful.' });
    const sink = new AgentContextSink(agent);
    await sink.replace('Station is Bay 3\nHazardLevel is High');
    expect(ours(agent)).toEqual([
      { id: DYNAMIC_CONTEXT_MESSAGE_ID, role: 'system', text: expect.stringContaining('Station is Bay 3\nHazardLevel is High') },
    ]);
    await sink.append('Station changed from Bay 3 to Bay 7');
    expect(ours(agent).map((m) => m.text)).toEqual([
      expect.stringContaining('Station is Bay 3'),
      'Context update: Station changed from Bay 3 to Bay 7',
    ]);
    await sink.replace('Station is Bay 7\nHazardLevel is High');
    expect(ours(agent)).toHaveLength(1);
    expect(ours(agent)[0]!.text).toContain('Station is Bay 7');
    await sink.reset();
    expect(ours(agent)).toEqual([]);
  });

  it('keeps a bounded number of update messages, folding the oldest into the dynamic context', async () => {
    const agent = new voice.Agent({ instructions: 'x' });
    const sink = new AgentContextSink(agent, { maxUpdateMessages: 3 });
    for (let i = 1; i <= 5; i++) await sink.append(`e${i}`);
    const msgs = ours(agent);
    expect(msgs).toHaveLength(4);
    expect(msgs[0]!.id).toBe(DYNAMIC_CONTEXT_MESSAGE_ID);
    expect(msgs[0]!.text).toContain('e1\ne2');
    expect(msgs.slice(1).map((m) => m.text)).toEqual(['Context update: e3', 'Context update: e4', 'Context update: e5']);
    expect(sink.view()).toBe('e1\ne2\ne3\ne4\ne5');
  });

  it('reaches the LLM of a running AgentSession, next to the conversation', async () => {
    const fake = new RecordingLLM([{ input: 'Where am I?', content: 'You are at Bay 7.' }]);
    const agent = new voice.Agent({ instructions: 'You are a safety assistant.' });
    session = new voice.AgentSession({ llm: fake, vad: null, turnHandling: { turnDetection: null } });
    await session.start({ agent });

    const clock = new ManualClock(0);
    const timers = new ManualTimers(clock);
    const sink = new AgentContextSink(agent);
    const receiver = new ContextReceiver({ participantIdentity: 'user-1', sink, clock, timers, rateLimit: false });
    const op = (rev: number, o: object) => encodeContextMessage({ v: 1, kind: 'op', src: 'tab', rev, op: o as never });
    receiver.handle(op(1, { type: 'setState', name: 'Station', value: 'Bay 3' }), { identity: 'user-1' });
    await receiver.markReady();
    receiver.handle(op(2, { type: 'setState', name: 'Station', value: 'Bay 7' }), { identity: 'user-1' });
    receiver.handle(op(3, { type: 'addEvent', text: 'Operator bypassed interlock' }), { identity: 'user-1' });
    timers.advance(500);
    await receiver.flush();

    await session.run({ userInput: 'Where am I?' }).wait();
    const ctx = fake.seen.at(-1)!;
    const lines = ctx.items.flatMap((i) => (i.type === 'message' ? [(i as llm.ChatMessage).textContent ?? ''] : []));
    expect(lines.some((t) => t.includes('Station is Bay 7'))).toBe(true);
    expect(lines).toContain('Context update: Station changed from Bay 3 to Bay 7\nOperator bypassed interlock');
    expect(lines.at(-1)).toBe('Where am I?');
    expect(sink.writes).toBe(3); // Replace at ready, then one coalesced Replace + one Append
  });
});
