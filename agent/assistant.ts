/**
 * The `voice.Agent`: its instructions and, on resume, the chat context it starts from.
 */
import { llm, voice } from '@livekit/agents';

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
  /** The chat context to start from (restored history, dynamic context). @default empty */
  chatCtx?: llm.ChatContext;
  /** Extra instructions appended to {@link ASSISTANT_INSTRUCTIONS}. */
  extraInstructions?: string;
}

/** The project's agent. */
export class Assistant extends voice.Agent {
  constructor(opts: AssistantOptions = {}) {
    super({
      instructions: opts.extraInstructions ? `${ASSISTANT_INSTRUCTIONS}\n${opts.extraInstructions}` : ASSISTANT_INSTRUCTIONS,
      chatCtx: opts.chatCtx ?? llm.ChatContext.empty(),
    });
  }
}
