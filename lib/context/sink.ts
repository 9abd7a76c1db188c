/**
 * Where the receiver writes the dynamic context: the agent's chat context in production
 * (`agent/context_sink.ts`), memory in tests and benchmarks.
 *
 * The model's view of the dynamic context is the dynamic-context message followed by the
 * update messages, newline-joined, empty parts skipped ({@link viewOf}). A sink must keep that
 * view exact: Replace sets the dynamic-context message and drops the update messages; Append
 * adds an update message, and when it keeps a bounded number it folds the oldest into the
 * dynamic-context message rather than dropping it; Reset removes both.
 */
import { MAX_UPDATE_MESSAGES } from './limits.js';

/** Applies Replace / Append / Reset to the model's context. Calls arrive one at a time, in order. */
export interface ContextSink {
  /** Makes `text` the whole dynamic context (an empty text removes the message). */
  replace(text: string): void | Promise<void>;
  /** Adds a short update message the model can refer to. */
  append(text: string): void | Promise<void>;
  /** Removes the dynamic context and its update messages. */
  reset(): void | Promise<void>;
}

/** Joins two chunks of context with a newline, skipping empty ones. */
export function joinLines(a: string, b: string): string {
  return a === '' ? b : b === '' ? a : `${a}\n${b}`;
}

/** The model's view: the dynamic-context message then the update messages. */
export function viewOf(dynamic: string, updates: readonly string[]): string {
  return updates.reduce(joinLines, dynamic);
}

/** A sink in memory with the same folding rule as the agent's; counts the writes. */
export class MemoryContextSink implements ContextSink {
  /** Text of the dynamic-context message (`''` = none). */
  dynamic = '';
  /** Texts of the update messages, oldest first. */
  updates: string[] = [];
  /** Number of writes (each would be one `updateChatCtx`). */
  writes = 0;

  constructor(private readonly maxUpdateMessages = MAX_UPDATE_MESSAGES) {}

  replace(text: string): void {
    this.writes++;
    this.dynamic = text;
    this.updates = [];
  }

  append(text: string): void {
    this.writes++;
    this.updates.push(text);
    while (this.updates.length > this.maxUpdateMessages) this.dynamic = joinLines(this.dynamic, this.updates.shift() ?? '');
  }

  reset(): void {
    this.writes++;
    this.dynamic = '';
    this.updates = [];
  }

  /** The model's view (see {@link viewOf}). */
  view(): string {
    return viewOf(this.dynamic, this.updates);
  }
}
