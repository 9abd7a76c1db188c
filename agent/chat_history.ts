import { llm } from '@livekit/agents';
import { z } from 'zod';
import type { History, Turn } from '../lib/session/record.js';

/**
 * Conversion between our persisted history (`lib/session`) and an agents-js `llm.ChatContext`.
 * agents-js 1.9 has `ChatContext.toJSON()` but no `fromJSON()`, so we persist our own DTOs:
 * - the bounded {@link History} (turns + summary) → `historyToChatContext` / `chatContextToTurns`;
 * - a full chat-context DTO (`v: 1`: messages, function calls and outputs, handoffs) →
 *   `chatContextToDto` / `chatContextFromDto`, round-trip tested.
 */

/** Id of the message that carries the summary of older turns (so it is never persisted as a turn). */
export const SUMMARY_MESSAGE_ID = 'pva_history_summary';

/** Options of {@link historyToChatContext}. */
export interface HistoryToChatOptions {
  /**
   * Text before the summary of older turns.
   * @default 'Summary of the earlier part of this conversation:'
   */
  summaryPreamble?: string;
}

/**
 * A chat context holding the history: one `system` summary message first (when older turns
 * were folded), then every turn as a user / assistant message with its id and time. Pass it to
 * `new voice.Agent({ chatCtx })` or `agent.updateChatCtx()` so the restored turns reach the LLM.
 */
export function historyToChatContext(history: History, opts: HistoryToChatOptions = {}): llm.ChatContext {
  const items: llm.ChatItem[] = [];
  const summary = summaryMessage(history, opts);
  if (summary !== null) items.push(summary);
  for (const t of history.turns) {
    items.push(llm.ChatMessage.create({ id: t.id, role: t.role, content: [t.text], createdAt: t.createdAtMs }));
  }
  return new llm.ChatContext(items);
}

/** The system message carrying `history`'s summary (just before its first turn), or null when it has none. */
function summaryMessage(history: History, opts: HistoryToChatOptions): llm.ChatMessage | null {
  if (history.summary.trim() === '') return null;
  const preamble = opts.summaryPreamble ?? 'Summary of the earlier part of this conversation:';
  return llm.ChatMessage.create({
    id: SUMMARY_MESSAGE_ID,
    role: 'system',
    content: [`${preamble}\n${history.summary}`],
    createdAt: Math.max(0, (history.turns[0]?.createdAtMs ?? 1) - 1),
  });
}

/**
 * What the model is given in a long conversation: `ctx` (the agent's whole chat context) cut to
 * the window `history` keeps, exactly what a resume would restore. Before the first turn
 * `history` keeps verbatim, the turns, tool calls and any earlier summary message are left out
 * and `history`'s current summary (condensed or not) takes their place; instructions, dynamic
 * context and other system messages stay, and everything from that turn on is unchanged.
 *
 * The cut is at the first kept turn found in `ctx` (a kept turn the agent's context no longer
 * holds, say one it removed, moves the cut to the next). `ctx` itself is returned when nothing
 * was folded yet, or when no kept turn is in it (the two cannot be lined up; the model then gets
 * the whole context rather than a wrong cut).
 * Why: agents-js keeps every item of a live conversation and sends all of them on every turn, so
 * without this a long call's cost grows with its length and the model would see more live than
 * it will after a resume.
 */
export function windowedChatContext(ctx: llm.ChatContext, history: History, opts: HistoryToChatOptions = {}): llm.ChatContext {
  if (history.summarizedTurnCount === 0) return ctx;
  let at: number | undefined;
  for (const kept of history.turns) {
    at = ctx.indexById(kept.id);
    if (at !== undefined) break;
  }
  if (at === undefined) return ctx;
  const items: llm.ChatItem[] = [];
  for (const item of ctx.items.slice(0, at)) {
    if (item.type === 'function_call' || item.type === 'function_call_output') continue;
    if (item.type === 'message' && (item.id === SUMMARY_MESSAGE_ID || item.role === 'user' || item.role === 'assistant')) continue;
    items.push(item);
  }
  const summary = summaryMessage(history, opts);
  if (summary !== null) items.push(summary);
  items.push(...ctx.items.slice(at));
  return new llm.ChatContext(items);
}

/**
 * The user / assistant text turns of a chat context, in order (function calls, handoffs,
 * system / developer messages, the summary message and empty messages are left out).
 */
export function chatContextToTurns(ctx: llm.ChatContext): Turn[] {
  const turns: Turn[] = [];
  for (const item of ctx.items) {
    if (item.type !== 'message' || item.id === SUMMARY_MESSAGE_ID) continue;
    if (item.role !== 'user' && item.role !== 'assistant') continue;
    const text = item.textContent;
    if (text === undefined || text.trim() === '') continue;
    turns.push({ id: item.id, role: item.role, text, createdAtMs: Math.max(0, Math.round(item.createdAt)) });
  }
  return turns;
}

/** One turn from a `conversation_item_added` message item, or null when it is not a text turn. */
export function chatMessageToTurn(item: llm.ChatItem): Turn | null {
  return chatContextToTurns(new llm.ChatContext([item]))[0] ?? null;
}

const messageDto = z.object({
  type: z.literal('message'),
  id: z.string(),
  role: z.enum(['developer', 'system', 'user', 'assistant']),
  content: z.array(z.string()),
  interrupted: z.boolean(),
  createdAt: z.number(),
  extra: z.record(z.string(), z.unknown()),
});
const functionCallDto = z.object({
  type: z.literal('function_call'),
  id: z.string(),
  callId: z.string(),
  name: z.string(),
  args: z.string(),
  createdAt: z.number(),
});
const functionCallOutputDto = z.object({
  type: z.literal('function_call_output'),
  id: z.string(),
  callId: z.string(),
  name: z.string(),
  output: z.string(),
  isError: z.boolean(),
  createdAt: z.number(),
});
const handoffDto = z.object({
  type: z.literal('agent_handoff'),
  id: z.string(),
  oldAgentId: z.string().optional(),
  newAgentId: z.string(),
  createdAt: z.number(),
});

/** The persisted chat-context DTO, version 1 (text content only; images and audio are dropped). */
export const chatContextDtoSchema = z.object({
  v: z.literal(1),
  items: z.array(z.discriminatedUnion('type', [messageDto, functionCallDto, functionCallOutputDto, handoffDto])),
});

/** See {@link chatContextDtoSchema}. */
export type ChatContextDto = z.infer<typeof chatContextDtoSchema>;

/** A JSON-safe DTO of a chat context (config updates and non-text content are left out). */
export function chatContextToDto(ctx: llm.ChatContext): ChatContextDto {
  const items: ChatContextDto['items'] = [];
  for (const it of ctx.items) {
    switch (it.type) {
      case 'message':
        items.push({
          type: 'message',
          id: it.id,
          role: it.role,
          content: it.content.filter((c): c is string => typeof c === 'string'),
          interrupted: it.interrupted,
          createdAt: it.createdAt,
          extra: JSON.parse(JSON.stringify(it.extra ?? {})) as Record<string, unknown>,
        });
        break;
      case 'function_call':
        items.push({ type: 'function_call', id: it.id, callId: it.callId, name: it.name, args: it.args, createdAt: it.createdAt });
        break;
      case 'function_call_output':
        items.push({ type: 'function_call_output', id: it.id, callId: it.callId, name: it.name, output: it.output, isError: it.isError, createdAt: it.createdAt });
        break;
      case 'agent_handoff': {
        const h: ChatContextDto['items'][number] = { type: 'agent_handoff', id: it.id, newAgentId: it.newAgentId, createdAt: it.createdAt };
        if (it.oldAgentId !== undefined) h.oldAgentId = it.oldAgentId;
        items.push(h);
        break;
      }
      default:
        break;
    }
  }
  return { v: 1, items };
}

/** The outcome of {@link chatContextFromDto}. */
export type ChatContextParse = { ok: true; ctx: llm.ChatContext } | { ok: false; why: 'record_invalid' };

/** Rebuilds a chat context from an untrusted DTO (ids and timestamps preserved). */
export function chatContextFromDto(value: unknown): ChatContextParse {
  const parsed = chatContextDtoSchema.safeParse(value);
  if (!parsed.success) return { ok: false, why: 'record_invalid' };
  const out: llm.ChatItem[] = [];
  for (const it of parsed.data.items) {
    switch (it.type) {
      case 'message':
        out.push(llm.ChatMessage.create({ id: it.id, role: it.role, content: it.content, interrupted: it.interrupted, createdAt: it.createdAt, extra: it.extra }));
        break;
      case 'function_call':
        out.push(llm.FunctionCall.create({ id: it.id, callId: it.callId, name: it.name, args: it.args, createdAt: it.createdAt }));
        break;
      case 'function_call_output':
        out.push(llm.FunctionCallOutput.create({ id: it.id, callId: it.callId, name: it.name, output: it.output, isError: it.isError, createdAt: it.createdAt }));
        break;
      case 'agent_handoff':
        out.push(llm.AgentHandoffItem.create({ id: it.id, oldAgentId: it.oldAgentId, newAgentId: it.newAgentId, createdAt: it.createdAt }));
        break;
    }
  }
  return { ok: true, ctx: new llm.ChatContext(out) };
}
