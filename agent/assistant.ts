/**
 * The `voice.Agent`: its instructions, the chat context it starts from on resume, the hook
 * that brings pending dynamic context into the model's input before it answers a user turn, and
 * the window of a long conversation that the model is given.
 */
import { llm, voice } from '@livekit/agents';
import { languageInstruction } from '../lib/session/language.js';
import type { History } from '../lib/session/record.js';
import { windowedChatContext } from './chat_history.js';
import { isContextMessageId } from './context_sink.js';

/** Base instructions of the assistant. */
export const ASSISTANT_INSTRUCTIONS = [
  'You are a friendly, concise voice assistant.',
  'You remember returning participants: earlier turns of the conversation may already be in your context;',
  'use them naturally and do not pretend to meet someone for the first time when you have history with them.',
  'System messages about the "current situation of the user" (dynamic context and context updates) are live facts; use them.',
  'Keep answers short: they are spoken aloud.',
].join(' ');

/** The assistant's instructions for a conversation in `language` (a BCP 47 tag), or in none known. */
export function assistantInstructions(language: string | null): string {
  return language === null ? ASSISTANT_INSTRUCTIONS : `${ASSISTANT_INSTRUCTIONS}\n${languageInstruction(language)}`;
}

/** Options of {@link Assistant}. */
export interface AssistantOptions {
  /** The chat context to start from (restored history). @default empty */
  chatCtx?: llm.ChatContext;
  /** The conversation's language (a canonical BCP 47 tag), when one is known. @default null */
  language?: string | null;
  /**
   * Runs before the reply to a spoken user turn: flushes coalesced dynamic-context updates so
   * the answer sees them (coalescing may delay the context, never past a user turn).
   */
  beforeUserTurn?: () => Promise<void>;
  /**
   * The conversation's persisted history, read before every model request: the model is given
   * the window it keeps (see {@link windowedChatContext}). Unset: the whole chat context.
   */
  history?: () => History | undefined;
}

/** The dynamic context messages of `ctx`, in order, as id and text. */
function contextMessagesOf(ctx: llm.ChatContext): string[] {
  return ctx.items.filter((i) => isContextMessageId(i.id)).map((i) => `${i.id}\n${i.type === 'message' ? (i.textContent ?? '') : ''}`);
}

/** The project's agent. */
export class Assistant extends voice.Agent {
  private readonly beforeUserTurn: (() => Promise<void>) | undefined;
  private readonly history: (() => History | undefined) | undefined;

  constructor(opts: AssistantOptions = {}) {
    super({
      instructions: assistantInstructions(opts.language ?? null),
      chatCtx: opts.chatCtx ?? llm.ChatContext.empty(),
    });
    this.beforeUserTurn = opts.beforeUserTurn;
    this.history = opts.history;
  }

  /** The conversation's language from now on (one the participant was heard speaking): the model is told it; null: none (no language instruction). */
  async useLanguage(tag: string | null): Promise<void> {
    await this.updateInstructions(assistantInstructions(tag));
  }

  override async llmNode(chatCtx: llm.ChatContext, toolCtx: llm.ToolContext, modelSettings: voice.ModelSettings): ReturnType<voice.Agent['llmNode']> {
    const history = this.history?.();
    return super.llmNode(history === undefined ? chatCtx : windowedChatContext(chatCtx, history), toolCtx, modelSettings);
  }

  override async onUserTurnCompleted(turnCtx: llm.ChatContext, newMessage: llm.ChatMessage): Promise<void> {
    if (this.beforeUserTurn === undefined) return super.onUserTurnCompleted(turnCtx, newMessage);
    await this.beforeUserTurn();
    // The reply is generated from `turnCtx`, a copy taken before the flush: bring the dynamic
    // context messages over from the agent's (now current) chat context. When the flush changed
    // none, `turnCtx` is left as it is: agents-js reuses a reply it began early (preemptive
    // generation) only while the context it began from is unchanged, order included.
    const before = contextMessagesOf(turnCtx);
    const now = contextMessagesOf(this.chatCtx);
    if (before.length === now.length && before.every((text, i) => text === now[i])) return;
    for (const item of [...turnCtx.items]) if (isContextMessageId(item.id)) turnCtx.remove(item.id);
    for (const item of this.chatCtx.items) if (isContextMessageId(item.id)) turnCtx.items.push(item);
  }
}
