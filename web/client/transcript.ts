/**
 * The page's transcript model, pure: agent speech arrives on `lk.transcription` as text
 * streams (one segment id per utterance, possibly several streams per segment: deltas, then a
 * final stream), user text is added when sent. Bounded so it fits in `localStorage`.
 */

/** Who said it. `system` lines are the page's own notes (e.g. "reconnected"). */
export type TranscriptRole = 'agent' | 'user' | 'system';

/** One line of the transcript. */
export interface TranscriptEntry {
  /** Segment id (agent) or a local id. */
  id: string;
  role: TranscriptRole;
  text: string;
  /** When the line started, epoch ms. */
  atMs: number;
}

/** Lines kept (oldest dropped first). */
export const MAX_TRANSCRIPT_ENTRIES = 200;
/** Characters kept per line. */
export const MAX_ENTRY_CHARS = 4_000;

function clip(text: string): string {
  return text.length > MAX_ENTRY_CHARS ? text.slice(0, MAX_ENTRY_CHARS) : text;
}

function bounded(entries: TranscriptEntry[]): TranscriptEntry[] {
  return entries.length > MAX_TRANSCRIPT_ENTRIES ? entries.slice(entries.length - MAX_TRANSCRIPT_ENTRIES) : entries;
}

/** Adds a complete line. */
export function addLine(entries: readonly TranscriptEntry[], line: TranscriptEntry): TranscriptEntry[] {
  return bounded([...entries, { ...line, text: clip(line.text) }]);
}

/**
 * The text of a segment after a stream of it delivered `streamText` so far, when the segment
 * read `before` when that stream began: a stream repeating the text so far (cumulative or
 * final) replaces it, any other stream continues it (deltas).
 */
export function segmentText(before: string, streamText: string): string {
  if (before === '' || streamText.startsWith(before)) return streamText;
  return before + streamText;
}

/** Sets the text of line `seg.id` (same role), or adds the line. */
export function upsertSegment(entries: readonly TranscriptEntry[], seg: TranscriptEntry): TranscriptEntry[] {
  const i = entries.findIndex((e) => e.id === seg.id && e.role === seg.role);
  if (i < 0) return addLine(entries, seg);
  const out = [...entries];
  out[i] = { ...(entries[i] as TranscriptEntry), text: clip(seg.text) };
  return out;
}

/** The current text of line `id` (same role), or `''`. */
export function textOf(entries: readonly TranscriptEntry[], id: string, role: TranscriptRole): string {
  return entries.find((e) => e.id === id && e.role === role)?.text ?? '';
}
