/**
 * The model call behind summary condensing (see `lib/session/condense.ts`): one chat request
 * with the condensing instructions and the summary, answered as plain text.
 *
 * It must run on its own LLM instance, never the conversation's: agents-js counts every
 * unrecoverable error an LLM instance emits against the `AgentSession` using it, and closes the
 * session after a few, so a failing background request would end the conversation.
 */
import { llm } from '@livekit/agents';
import { condenseRequest, DEFAULT_CONDENSE_OPTIONS, type CondenseOptions, type Condenser } from '../lib/session/condense.js';

/** Options of {@link llmCondenser}. */
export interface LlmCondenserOptions {
  /** Longest wait for the whole answer, ms (the request is abandoned after it). @default 30 000 */
  timeoutMs?: number;
  /** @default DEFAULT_CONDENSE_OPTIONS */
  condense?: CondenseOptions;
}

/** Error of a condensing request that did not answer within its bound. */
export class CondenseTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`condensing did not answer within ${timeoutMs} ms`);
    this.name = 'CondenseTimeoutError';
  }
}

/**
 * A {@link Condenser} on `model`, which must be an LLM instance of its own (see the module
 * comment). A request that fails, or answers with no text, rejects: agents-js ends a failed
 * stream without an error, and reports the error as an `error` event of the instance, which is
 * taken here (so none is ever left unhandled) and becomes the rejection.
 */
export function llmCondenser(model: llm.LLM, opts: LlmCondenserOptions = {}): Condenser {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const condense = opts.condense ?? DEFAULT_CONDENSE_OPTIONS;
  model.on('error', () => {});
  return async (summary) => {
    const req = condenseRequest(summary, condense);
    const chatCtx = llm.ChatContext.empty();
    chatCtx.addMessage({ role: 'system', content: req.instructions });
    chatCtx.addMessage({ role: 'user', content: req.text });
    let failure: Error | undefined;
    const onError: llm.LLMCallbacks['error'] = (ev) => {
      if (!ev.recoverable) failure ??= ev.error;
    };
    model.on('error', onError);
    const stream = model.chat({ chatCtx, connOptions: { maxRetry: 1, retryIntervalMs: 1_000, timeoutMs } });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CondenseTimeoutError(timeoutMs)), timeoutMs);
    });
    try {
      const { text } = await Promise.race([stream.collect(), late]);
      if (failure !== undefined) throw failure;
      if (text.trim() === '') throw new Error('the model answered with no text');
      return text;
    } finally {
      clearTimeout(timer);
      model.off('error', onError);
      stream.close();
    }
  };
}
