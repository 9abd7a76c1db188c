/**
 * The responder used when no model is configured: it answers every turn with a plain
 * statement that it is offline, so the demo and the tests run with no network.
 */
import { DEFAULT_API_CONNECT_OPTIONS, llm, type APIConnectOptions } from '@livekit/agents';
import { DYNAMIC_CONTEXT_MESSAGE_ID, isContextMessageId } from './context_sink.js';

/** The first words of every offline reply; clients and tests can recognise it. */
export const OFFLINE_REPLY_PREFIX = '[offline mode]';

/**
 * Builds the offline reply to one user turn. Pure. It echoes what it heard and the dynamic
 * context it can see, so a demo (and a test) shows that both reached the agent.
 */
export function offlineReply(userText: string | undefined, contextLines: readonly string[] = []): string {
  const said = (userText ?? '').trim();
  const echo = said === '' ? '' : ` You said: "${said.length > 200 ? `${said.slice(0, 200)}…` : said}".`;
  const context = contextLines.length > 0 ? ` Context I can see: ${contextLines.join('; ')}.` : '';
  return `${OFFLINE_REPLY_PREFIX} No language model is configured (set OPENAI_API_KEY or LiveKit inference credentials), so I cannot really answer.${echo}${context}`;
}

/** The dynamic-context lines in a chat context (the message body without its header line). */
function contextLinesOf(ctx: llm.ChatContext): string[] {
  const lines: string[] = [];
  for (const item of ctx.items) {
    if (item.type !== 'message' || !isContextMessageId(item.id)) continue;
    const body = (item.textContent ?? '').split('\n');
    if (item.id === DYNAMIC_CONTEXT_MESSAGE_ID) body.shift(); // header line
    lines.push(...body.map((l) => l.trim()).filter((l) => l !== ''));
  }
  return lines;
}

/** An `llm.LLM` that needs no network: see {@link offlineReply}. */
export class OfflineLLM extends llm.LLM {
  label(): string {
    return 'offline';
  }

  chat({
    chatCtx,
    toolCtx,
    connOptions = DEFAULT_API_CONNECT_OPTIONS,
  }: {
    chatCtx: llm.ChatContext;
    toolCtx?: llm.ToolContextLike;
    connOptions?: APIConnectOptions;
  }): llm.LLMStream {
    return new OfflineLLMStream(this, { chatCtx, toolCtx, connOptions });
  }
}

class OfflineLLMStream extends llm.LLMStream {
  protected async run(): Promise<void> {
    const items = this.chatCtx.items;
    let lastUser: string | undefined;
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (item?.type === 'message' && item.role === 'user') {
        lastUser = item.textContent;
        break;
      }
    }
    this.queue.put({ id: 'offline', delta: { role: 'assistant', content: offlineReply(lastUser, contextLinesOf(this.chatCtx)) } });
  }
}
