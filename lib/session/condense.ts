/**
 * Condensing the summary of older turns. Pure: the model call itself is the agent's
 * (`agent/condenser.ts`); this module decides when a summary is due, what the model is asked,
 * and how its answer is merged into a history that may have moved on meanwhile.
 *
 * Why: a turn that leaves the verbatim window becomes one clipped summary line
 * ({@link summaryLine}), and the summary keeps only its newest `maxSummaryChars`, so in a long
 * conversation the oldest lines fall off entirely: a participant who resumes after a hundred
 * turns would find the agent had forgotten what the call was about. Once the lines fill
 * {@link CondenseOptions.condenseAtChars}, the model rewrites the whole summary (its earlier
 * condensed text included) as one short paragraph, so the gist of the whole conversation stays
 * in a bounded summary. Without a model, or while it fails, the lines are kept as before:
 * condensing only ever replaces text the model has seen, never drops any it has not.
 */
import type { History } from './record.js';
import { DEFAULT_HISTORY_LIMITS, headOf } from './history.js';

/** When and how far a summary is condensed. */
export interface CondenseOptions {
  /**
   * A summary this long (characters) is condensed; 0 turns condensing off. Below the history's
   * `maxSummaryChars`, so the summary is condensed before its oldest lines are dropped.
   * @default 3 000
   */
  condenseAtChars: number;
  /**
   * Longest condensed text kept (characters); a longer answer is cut at a word boundary.
   * @default 1 200
   */
  maxCondensedChars: number;
  /**
   * After a failed attempt, the next waits until this many more turns have been folded into
   * the summary (so a model that is down is not asked again at every turn). Counted in turns,
   * not characters: a summary at its bound stops growing in length.
   * @default 6
   */
  retryAfterTurns: number;
}

/** The default {@link CondenseOptions}. */
export const DEFAULT_CONDENSE_OPTIONS: Readonly<CondenseOptions> = Object.freeze({
  condenseAtChars: 3_000,
  maxCondensedChars: 1_200,
  retryAfterTurns: 6,
});

/** Lowest `condenseAtChars` accepted (other than 0): room for the condensed text and new lines. */
export const MIN_CONDENSE_AT_CHARS = 2_000;

/** Highest `condenseAtChars` accepted: below the summary's bound, so nothing is dropped first. */
export const MAX_CONDENSE_AT_CHARS = DEFAULT_HISTORY_LIMITS.maxSummaryChars - 400;

/**
 * Condenses a summary: resolves with the model's text ({@link condenseRequest} is what it
 * asks), rejects when the model fails or is late.
 */
export type Condenser = (summary: string) => Promise<string>;

/** True when `history`'s summary should be condensed now. */
export function condenseDue(history: History, opts: CondenseOptions = DEFAULT_CONDENSE_OPTIONS): boolean {
  return opts.condenseAtChars > 0 && history.summary.length >= opts.condenseAtChars;
}

/** What the model is asked: instructions (a system message) and the summary to condense. */
export interface CondenseRequest {
  instructions: string;
  text: string;
}

/**
 * The request that condenses `summary`. The text is the summary as it stands: an earlier
 * condensed paragraph (if any) followed by one `role: text` line per older turn.
 */
export function condenseRequest(summary: string, opts: CondenseOptions = DEFAULT_CONDENSE_OPTIONS): CondenseRequest {
  return {
    instructions: [
      'You keep the memory of a spoken conversation between a user and an assistant.',
      'Below is the summary of its earlier part: possibly a paragraph written before, then one line per turn ("user: …" or "assistant: …"), oldest first.',
      `Rewrite all of it as one summary of at most ${opts.maxCondensedChars} characters, in the third person and the conversation's language.`,
      'Keep what the assistant will need later: who the user is, what they asked for and why, facts and numbers they gave, what was decided or promised, and what is still open.',
      'Leave out greetings and small talk. Write only the summary.',
    ].join(' '),
    text: summary,
  };
}

/** `text` cut to `maxChars` at the last word boundary, with an ellipsis. */
function clipAtWord(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const cut = headOf(text, Math.max(0, maxChars - 1));
  // The cut ends a word when the next character is a space; otherwise drop the word it splits.
  const space = /\s/.test(text.charAt(cut.length)) ? cut.length : cut.search(/\s\S*$/);
  return `${(space > maxChars / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/**
 * `history` with `basis` (the summary the model was given) replaced by `condensed`, and every
 * line added after `basis` kept after it. Null when the answer cannot be used: `history`'s
 * summary no longer starts with `basis` (lines were dropped from its front meanwhile), or the
 * answer is empty or no shorter than what it replaces. An answer over `maxCondensedChars` is cut.
 */
export function withCondensedSummary(history: History, basis: string, condensed: string, opts: CondenseOptions = DEFAULT_CONDENSE_OPTIONS): History | null {
  if (basis === '' || !history.summary.startsWith(basis)) return null;
  const text = clipAtWord(condensed.trim(), opts.maxCondensedChars);
  if (text === '' || text.length >= basis.length) return null;
  const after = history.summary.slice(basis.length).replace(/^\n+/, '');
  return { ...history, summary: after === '' ? text : `${text}\n${after}` };
}
