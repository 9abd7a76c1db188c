/**
 * The real {@link ContextSink}: writes the dynamic context into a `voice.Agent`'s chat context
 * (what the LLM sees), through `agent.updateChatCtx(copy)`.
 *
 * - Replace: the one dynamic-context message (id {@link DYNAMIC_CONTEXT_MESSAGE_ID}) is replaced
 *   and moved to the end of the context (it is the newest authoritative picture); the update
 *   messages before it are removed, since the Replace supersedes them. An empty text removes it.
 * - Append: a short update message (`Context update: …`) is added at the end, so the model can
 *   refer to the change ("I see you moved from Bay 3 to Bay 7"). At most `maxUpdateMessages`
 *   are kept; the oldest is folded into the dynamic-context message, so nothing is lost.
 * - Reset: the dynamic-context message and every update message are removed.
 */
import { llm } from '@livekit/agents';
import { MAX_UPDATE_MESSAGES } from '../lib/context/limits.js';
import { joinLines, type ContextSink } from '../lib/context/sink.js';

/** Id of the dynamic-context message in the agent's chat context. */
export const DYNAMIC_CONTEXT_MESSAGE_ID = 'pva-dynamic-context';

/** Id prefix of the update messages (Appends). */
export const CONTEXT_UPDATE_ID_PREFIX = 'pva-context-update-';

/** True for the ids of the messages this sink writes (the dynamic context and its updates). */
export function isContextMessageId(id: string): boolean {
  return id === DYNAMIC_CONTEXT_MESSAGE_ID || id.startsWith(CONTEXT_UPDATE_ID_PREFIX);
}

/** The part of `voice.Agent` the sink uses. */
export interface ChatContextOwner {
  readonly chatCtx: llm.ChatContext;
  updateChatCtx(chatCtx: llm.ChatContext): Promise<void>;
}

/** Options of {@link AgentContextSink}. */
export interface AgentContextSinkOptions {
  /** Update messages kept before the oldest is folded in. @default MAX_UPDATE_MESSAGES */
  maxUpdateMessages?: number;
  /** Role of the context messages. @default 'system' */
  role?: 'system' | 'developer';
  /** First line of the dynamic-context message. */
  header?: string;
  /** Prefix of an update message. @default 'Context update: ' */
  updatePrefix?: string;
}

const DEFAULT_HEADER = 'Current situation of the user (dynamic context; later context updates may follow):';

/** Writes Replace / Append / Reset into an agent's chat context. */
export class AgentContextSink implements ContextSink {
  private readonly maxUpdates: number;
  private readonly role: 'system' | 'developer';
  private readonly header: string;
  private readonly updatePrefix: string;
  private dynamicText = '';
  private updateIds: string[] = [];
  private updateTexts: string[] = [];
  private nextUpdate = 1;
  /** Number of `updateChatCtx` calls made. */
  writes = 0;

  constructor(
    private readonly agent: ChatContextOwner,
    opts: AgentContextSinkOptions = {},
  ) {
    this.maxUpdates = opts.maxUpdateMessages ?? MAX_UPDATE_MESSAGES;
    this.role = opts.role ?? 'system';
    this.header = opts.header ?? DEFAULT_HEADER;
    this.updatePrefix = opts.updatePrefix ?? 'Context update: ';
  }

  /** Replaces the dynamic-context message (moved to the end) and drops the update messages. */
  async replace(text: string): Promise<void> {
    const ctx = this.agent.chatCtx.copy();
    this.removeOurs(ctx);
    this.dynamicText = text;
    if (text !== '') ctx.addMessage({ id: DYNAMIC_CONTEXT_MESSAGE_ID, role: this.role, content: this.renderDynamic() });
    await this.commit(ctx);
  }

  /** Adds an update message; folds the oldest into the dynamic-context message beyond the bound. */
  async append(text: string): Promise<void> {
    const ctx = this.agent.chatCtx.copy();
    const id = `${CONTEXT_UPDATE_ID_PREFIX}${this.nextUpdate++}`;
    ctx.addMessage({ id, role: this.role, content: `${this.updatePrefix}${text}` });
    this.updateIds.push(id);
    this.updateTexts.push(text);
    let folded = false;
    while (this.updateIds.length > this.maxUpdates) {
      const oldId = this.updateIds.shift()!;
      this.dynamicText = joinLines(this.dynamicText, this.updateTexts.shift() ?? '');
      removeIfPresent(ctx, oldId);
      folded = true;
    }
    if (folded) this.rewriteDynamic(ctx);
    await this.commit(ctx);
  }

  /** Removes the dynamic context and its update messages. */
  async reset(): Promise<void> {
    const ctx = this.agent.chatCtx.copy();
    this.removeOurs(ctx);
    this.dynamicText = '';
    await this.commit(ctx);
  }

  /** The model's view as this sink wrote it (dynamic text then updates). */
  view(): string {
    return this.updateTexts.reduce(joinLines, this.dynamicText);
  }

  private renderDynamic(): string {
    return `${this.header}\n${this.dynamicText}`;
  }

  /** Rewrites the dynamic-context message in place (same id, position and timestamp), creating it if missing. */
  private rewriteDynamic(ctx: llm.ChatContext): void {
    const idx = ctx.indexById(DYNAMIC_CONTEXT_MESSAGE_ID);
    if (idx === undefined) {
      const firstUpdate = this.updateIds[0] === undefined ? undefined : ctx.getById(this.updateIds[0]);
      const msg = llm.ChatMessage.create({
        id: DYNAMIC_CONTEXT_MESSAGE_ID,
        role: this.role,
        content: [this.renderDynamic()],
        ...(firstUpdate ? { createdAt: firstUpdate.createdAt } : {}),
      });
      const at = firstUpdate ? ctx.indexById(firstUpdate.id) : undefined;
      if (at === undefined) ctx.items.push(msg);
      else ctx.items.splice(at, 0, msg);
      return;
    }
    const old = ctx.items[idx]!;
    ctx.items[idx] = llm.ChatMessage.create({
      id: DYNAMIC_CONTEXT_MESSAGE_ID,
      role: this.role,
      content: [this.renderDynamic()],
      createdAt: old.createdAt,
    });
  }

  private removeOurs(ctx: llm.ChatContext): void {
    removeIfPresent(ctx, DYNAMIC_CONTEXT_MESSAGE_ID);
    for (const id of this.updateIds) removeIfPresent(ctx, id);
    this.updateIds = [];
    this.updateTexts = [];
  }

  private async commit(ctx: llm.ChatContext): Promise<void> {
    this.writes++;
    await this.agent.updateChatCtx(ctx);
  }
}

function removeIfPresent(ctx: llm.ChatContext, id: string): void {
  if (ctx.indexById(id) !== undefined) ctx.remove(id);
}
