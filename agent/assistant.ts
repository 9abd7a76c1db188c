/**
 * The `voice.Agent`: its instructions, the chat context it starts from on resume, the hook
 * that brings pending dynamic context into the model's input before it answers a user turn, and
 * the window of a long conversation that the model is given.
 */
import { llm, voice } from '@livekit/agents';
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

/** Options of {@link Assistant}. */
export interface AssistantOptions {
  /** The chat context to start from (restored history). @default empty */
  chatCtx?: llm.ChatContext;
  /** Extra instructions appended to {@link ASSISTANT_INSTRUCTIONS}. */
  extraInstructions?: string;
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

/** The project's agent. */
export class Assistant extends voice.Agent {
  private readonly beforeUserTurn: (() => Promise<void>) | undefined;
  private readonly history: (() => History | undefined) | undefined;

  constructor(opts: AssistantOptions = {}) {
    super({
      instructions: opts.extraInstructions ? `${ASSISTANT_INSTRUCTIONS}\n${opts.extraInstructions}` : ASSISTANT_INSTRUCTIONS,
      chatCtx: opts.chatCtx ?? llm.ChatContext.empty(),
    });
    this.beforeUserTurn = opts.beforeUserTurn;
    this.history = opts.history;
  }

  override async llmNode(chatCtx: llm.ChatContext, toolCtx: llm.ToolContext, modelSettings: voice.ModelSettings): ReturnType<voice.Agent['llmNode']> {
    const history = this.history?.();
    return super.llmNode(history === undefined ? chatCtx : windowedChatContext(chatCtx, history), toolCtx, modelSettings);
  }

  override async onUserTurnCompleted(turnCtx: llm.ChatContext, newMessage: llm.ChatMessage): Promise<void> {
    if (this.beforeUserTurn === undefined) return super.onUserTurnCompleted(turnCtx, newMessage);
    await this.beforeUserTurn();
    // The reply is generated from `turnCtx`, a copy taken before the flush: bring the dynamic
    // context messages over from the agent's (now current) chat context.
    for (const item of [...turnCtx.items]) if (isContextMessageId(item.id)) turnCtx.remove(item.id);
    for (const item of this.chatCtx.items) if (isContextMessageId(item.id)) turnCtx.items.push(item);
  }
}
