import type { History, SessionRecord, Turn } from './record.js';

/** Bounds of a persisted history. */
export interface HistoryLimits {
  /**
   * Turns kept verbatim (at least one: the newest turn is always kept whole); older ones are
   * folded into the summary.
   * @default 50
   */
  maxTurns: number;
  /**
   * Characters of summary kept (the oldest characters are dropped first).
   * @default 4000
   */
  maxSummaryChars: number;
  /**
   * Characters of one turn kept verbatim (longer text is cut with an ellipsis).
   * @default 4000
   */
  maxTurnChars: number;
  /**
   * Characters of one folded turn in the summary.
   * @default 200
   */
  maxSummaryLineChars: number;
}

/** The default {@link HistoryLimits}. */
export const DEFAULT_HISTORY_LIMITS: Readonly<HistoryLimits> = Object.freeze({
  maxTurns: 50,
  maxSummaryChars: 4000,
  maxTurnChars: 4000,
  maxSummaryLineChars: 200,
});

/** An empty history. */
export function emptyHistory(): History {
  return { turns: [], summary: '', summarizedTurnCount: 0 };
}

/** True when the UTF-16 unit at `i` is the second half of a character (an emoji, say). */
function isLowSurrogate(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * The first `end` UTF-16 units of `text`, one fewer when the cut would split a character: half
 * an emoji would reach the greeting, the model and the TTS as U+FFFD.
 */
export function headOf(text: string, end: number): string {
  return text.slice(0, end > 0 && isLowSurrogate(text, end) ? end - 1 : end);
}

/** `text` cut to at most `maxChars` UTF-16 units, the last one an ellipsis; never in the middle of a character. */
function clip(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${headOf(text, Math.max(0, maxChars - 1))}…`;
}

/** The newest `maxChars` of a summary, from the start of a line (whole lines are kept when they fit). */
function newestLines(summary: string, maxChars: number): string {
  if (summary.length <= maxChars) return summary;
  const start = summary.length - maxChars;
  if (summary[start - 1] === '\n') return summary.slice(start);
  const nl = summary.indexOf('\n', start);
  if (nl >= 0 && nl < summary.length - 1) return summary.slice(nl + 1);
  // One line longer than the bound: its newest part, never from the middle of a character.
  return summary.slice(isLowSurrogate(summary, start) ? start + 1 : start);
}

/** The summary line one turn becomes when it falls out of the verbatim window. */
export function summaryLine(turn: Turn, limits: HistoryLimits = DEFAULT_HISTORY_LIMITS): string {
  return `${turn.role}: ${clip(turn.text.replace(/\s+/g, ' ').trim(), limits.maxSummaryLineChars)}`;
}

/**
 * Appends a turn, keeping at most `maxTurns` verbatim; the overflow is folded into the summary,
 * which keeps its newest `maxSummaryChars`. A turn whose id is already present is ignored, so
 * replays are idempotent. Pure: returns a new history.
 */
export function appendTurn(history: History, turn: Turn, limits: HistoryLimits = DEFAULT_HISTORY_LIMITS): History {
  if (history.turns.some((t) => t.id === turn.id)) return history;
  const turns = [...history.turns, { ...turn, text: clip(turn.text, limits.maxTurnChars) }];
  const overflow = Math.max(0, turns.length - Math.max(1, limits.maxTurns));
  if (overflow === 0) return { ...history, turns };
  const folded = turns.splice(0, overflow);
  const joined = [history.summary, ...folded.map((t) => summaryLine(t, limits))].filter((s) => s.length > 0).join('\n');
  const summary = newestLines(joined, limits.maxSummaryChars);
  return { turns, summary, summarizedTurnCount: history.summarizedTurnCount + overflow };
}

/** Appends many turns in order (see {@link appendTurn}). */
export function appendTurns(history: History, turns: readonly Turn[], limits: HistoryLimits = DEFAULT_HISTORY_LIMITS): History {
  return turns.reduce((h, t) => appendTurn(h, t, limits), history);
}

/**
 * Maximum characters of a topic.
 * @default 80
 */
export const MAX_TOPIC_CHARS = 80;

/**
 * Words a sentence needs to be a topic: shorter ones ("Yes.", "Thanks, bye!", "Hi!") are
 * answers, greetings and sign-offs.
 * @default 4
 */
export const MIN_TOPIC_WORDS = 4;

/**
 * Where one sentence ends and the next begins: after `.`, `!` or `?` and a space, but not after a
 * title or a common abbreviation ("Dr. Smith", "Sra. López", "z.B. morgen").
 */
const SENTENCE_BREAK = /(?<!\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|St|Jr|Sr|Sra|Srta|Dra|Mme|Mlle|Hr|Fr|Nr|No|vs|z\.B|e\.g|i\.e)\.)(?<=[.!?])\s+/u;

/**
 * The last topic of a conversation: the first sentence of at least {@link MIN_TOPIC_WORDS} words
 * in the last user turn that has one (else the first sentence of the last non-empty user turn),
 * cut to {@link MAX_TOPIC_CHARS}; undefined when the user said nothing. A conversation that ends
 * "Thanks, bye!" is remembered by what it was about.
 */
export function lastTopic(history: History): string | undefined {
  let fallback: string | undefined;
  for (let i = history.turns.length - 1; i >= 0; i--) {
    const t = history.turns[i];
    if (t === undefined || t.role !== 'user') continue;
    const text = t.text.replace(/\s+/g, ' ').trim();
    if (text.length === 0) continue;
    const sentences = text.split(SENTENCE_BREAK);
    const topic = sentences.find((x) => x.split(' ').length >= MIN_TOPIC_WORDS);
    if (topic !== undefined) return clip(topic, MAX_TOPIC_CHARS);
    fallback ??= clip(sentences[0] ?? text, MAX_TOPIC_CHARS);
  }
  return fallback;
}

/** A record with one more turn: history appended, `lastSeenAt` and `lastTopic` updated. */
export function recordWithTurn(record: SessionRecord, turn: Turn, limits: HistoryLimits = DEFAULT_HISTORY_LIMITS): SessionRecord {
  const history = appendTurn(record.history, turn, limits);
  if (history === record.history) return record;
  const topic = lastTopic(history);
  const next: SessionRecord = { ...record, history, lastSeenAt: Math.max(record.lastSeenAt, turn.createdAtMs) };
  if (topic !== undefined) next.lastTopic = topic;
  return next;
}
