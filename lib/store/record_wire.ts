import { z } from 'zod';
import { historySchema, parseSessionRecord, sessionRecordSchema, turnSchema } from '../session/record.js';
import type { ParseResult, SessionRecord, Turn } from '../session/record.js';

/**
 * The stored (wire) form of a {@link SessionRecord}: the record itself (`v: 1`), except that
 * `history.turns` is stored column by column — `{ id: string[], role: 'ua…', text: string[],
 * at: number[] }` — instead of as an array of turn objects.
 *
 * The payload ({@link encodeStoredRecord}) goes one step further: the turn ids and texts leave
 * the JSON. It is the JSON head, where the turns are the role letters, the id and text lengths
 * (UTF-16 code units) and `at` delta-encoded, then one newline, then each turn's id and text back
 * to back, unescaped. `JSON.stringify` never writes a raw newline, so the first one ends the
 * head. Decoding parses only the head (about a tenth of the bytes for a typical history) and
 * slices the ids and texts out; the lengths must add up to exactly the rest of the payload.
 * JSON.parse is the dominant decoding cost on the resume path (measured in situ: ~10 µs for a
 * 1.3 KB head, ~25 µs for the whole 6.6 KB JSON record). An id or text that is not well-formed
 * UTF-16 (a lone surrogate) would not survive the UTF-8 round trip through Redis unescaped, so
 * such a record keeps its turns inside the JSON (the plain column form, still read).
 *
 * Why: decoding is on the resume path, and `JSON.parse` of 50 turn objects costs about twice as
 * much as the same turns as four flat columns (fewer objects and keys to build; see
 * docs/benchmarks.md "## Session store"); the payload is also ~25% smaller, which makes the
 * claim script cheaper (Redis copies the value into Lua at ~1.5 µs/KB).
 *
 * Validation keeps the guarantees of {@link sessionRecordSchema}: the stored form is parsed with
 * zod ({@link storedRecordSchema}, built from the same field schemas, so every turn field has
 * the constraints of {@link turnSchema}; the columns must have one entry per turn), and the
 * record is then rebuilt from the parsed columns. An unknown `v` is `record_invalid`. A payload
 * in the previous form (turns as objects) is still read, through {@link parseSessionRecord}.
 */

/** Role letters of the `role` column: `u` = user, `a` = assistant. */
const ROLE_LETTER = { user: 'u', assistant: 'a' } as const;
const U = 117;
const A = 97;

// The turn constraints, read from turnSchema itself so the two cannot drift apart.
const ID_MIN = turnSchema.shape.id.minLength ?? 0;
const ID_MAX = turnSchema.shape.id.maxLength ?? Number.POSITIVE_INFINITY;
const AT_MIN = turnSchema.shape.createdAtMs.minValue ?? Number.NEGATIVE_INFINITY;

/**
 * True when the columns hold one valid turn per role letter: every id within
 * `turnSchema.shape.id`'s length bounds, every role letter `u` or `a`, every `at` a safe integer
 * within `turnSchema.shape.createdAtMs`'s bound. One loop over the columns: zod runs its checks once per
 * element (about 45 ns each, 5 µs for 50 ids), this runs them in about 0.5 µs.
 */
function turnColumnsValid(t: { id: string[]; role: string; text: string[]; at: number[] }): boolean {
  const n = t.role.length;
  if (t.id.length !== n || t.text.length !== n || t.at.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const id = t.id[i] as string;
    const r = t.role.charCodeAt(i);
    if (id.length < ID_MIN || id.length > ID_MAX || (r !== U && r !== A) || !atValid(t.at[i] as number)) return false;
  }
  return true;
}

/** True when `at` is a valid `createdAtMs` for {@link turnSchema}. */
function atValid(at: number): boolean {
  return Number.isSafeInteger(at) && at >= AT_MIN;
}

/**
 * Turns as columns; every column has one entry per turn. Element types are checked by zod, the
 * per-turn bounds of {@link turnSchema} by one refinement ({@link turnColumnsValid}).
 */
const storedTurnsSchema = z
  .object({
    id: z.array(z.string()),
    /** One letter per turn (see {@link ROLE_LETTER}). */
    role: z.string(),
    text: z.array(turnSchema.shape.text),
    /** `createdAtMs` of each turn, epoch ms. */
    at: z.array(z.number()),
  })
  .refine(turnColumnsValid, 'invalid turn columns');

/** The stored form of a session record (see the module comment). */
export const storedRecordSchema = sessionRecordSchema.extend({ history: historySchema.extend({ turns: storedTurnsSchema }) });

/** A column of safe integers: one zod check for the whole array (zod's per-element checks cost ~45 ns each). */
const intColumn = z.custom<number[]>((v) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x)), 'expected a column of integers');

/** True when every role letter is `u` or `a` and every other column has one entry per letter. */
function splitColumnsValid(t: { role: string; il: number[]; tl: number[]; dt: number[] }): boolean {
  const n = t.role.length;
  if (t.il.length !== n || t.tl.length !== n || t.dt.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const r = t.role.charCodeAt(i);
    if (r !== U && r !== A) return false;
  }
  return true;
}

/**
 * Turns of the split payload: the ids and texts are in the tail, so the head keeps their lengths
 * (`il`, `tl`), and `dt` replaces `at`: the first entry is the first turn's `createdAtMs`, each
 * next one the difference from the turn before (small integers are shorter to store and cheaper
 * to parse than epoch ms). Lengths and the rebuilt `createdAtMs` values are checked against
 * {@link turnSchema} while the turns are rebuilt.
 */
const splitTurnsSchema = z.object({ role: z.string(), il: intColumn, tl: intColumn, dt: intColumn }).refine(splitColumnsValid, 'invalid turn columns');

/** The head of a split payload (see the module comment). */
const splitHeadSchema = sessionRecordSchema.extend({ history: historySchema.extend({ turns: splitTurnsSchema }) });

/** The refusal of every malformed stored payload. */
const INVALID = { ok: false, why: 'record_invalid' } as const;

/** The role of a role letter's char code (already checked to be `u` or `a`). */
function roleOf(letter: number): Turn['role'] {
  return letter === U ? 'user' : 'assistant';
}

/** The record of a parsed stored form, with its turns rebuilt. */
function withTurns(stored: Omit<SessionRecord, 'history'> & { history: { summary: string; summarizedTurnCount: number } }, turns: Turn[]): ParseResult<SessionRecord> {
  return { ok: true, value: { ...stored, history: { turns, summary: stored.history.summary, summarizedTurnCount: stored.history.summarizedTurnCount } } };
}

/** Ends the JSON head of a split payload. */
const SPLIT = '\n';

/** See {@link storedRecordSchema}. */
export type StoredRecord = z.infer<typeof storedRecordSchema>;

/** The stored form of `record` (turns as columns). */
export function toStoredRecord(record: SessionRecord): StoredRecord {
  const turns = record.history.turns;
  const n = turns.length;
  const id = new Array<string>(n);
  const text = new Array<string>(n);
  const at = new Array<number>(n);
  let role = '';
  for (let i = 0; i < n; i++) {
    const t = turns[i] as Turn;
    id[i] = t.id;
    text[i] = t.text;
    at[i] = t.createdAtMs;
    role += ROLE_LETTER[t.role];
  }
  return { ...record, history: { ...record.history, turns: { id, role, text, at } } };
}

/**
 * The stored payload of `record`: the split form (JSON head, newline, texts) or, when a text is
 * not well-formed UTF-16, the JSON column form. One pass over the turns builds the head's columns
 * and the tail, and checks the texts on the way.
 */
export function encodeStoredRecord(record: SessionRecord): string {
  const turns = record.history.turns;
  const n = turns.length;
  const il = new Array<number>(n);
  const tl = new Array<number>(n);
  const dt = new Array<number>(n);
  let role = '';
  let tail = '';
  let prevAt = 0;
  for (let i = 0; i < n; i++) {
    const t = turns[i] as Turn;
    if (!t.id.isWellFormed() || !t.text.isWellFormed()) return JSON.stringify(toStoredRecord(record));
    il[i] = t.id.length;
    tl[i] = t.text.length;
    dt[i] = t.createdAtMs - prevAt;
    prevAt = t.createdAtMs;
    role += ROLE_LETTER[t.role];
    tail += t.id + t.text;
  }
  const head = { ...record, history: { ...record.history, turns: { role, il, tl, dt } } };
  return JSON.stringify(head) + SPLIT + tail;
}

/**
 * Parses an untrusted stored payload (any form {@link encodeStoredRecord} writes or wrote) and
 * returns the record. Anything that does not match is `record_invalid`.
 */
export function decodeStoredRecord(payload: string): ParseResult<SessionRecord> {
  const cut = payload.indexOf(SPLIT);
  let value: unknown;
  try {
    value = JSON.parse(cut < 0 ? payload : payload.slice(0, cut));
  } catch {
    return INVALID;
  }
  if (cut < 0) return parseStoredRecord(value);
  const r = splitHeadSchema.safeParse(value);
  if (!r.success) return INVALID;
  const head = r.data;
  const cols = head.history.turns;
  const n = cols.role.length;
  const turns = new Array<Turn>(n);
  let from = cut + 1;
  let createdAtMs = 0;
  for (let i = 0; i < n; i++) {
    const idLength = cols.il[i] as number;
    const textLength = cols.tl[i] as number;
    const idEnd = from + idLength;
    const end = idEnd + textLength;
    createdAtMs += cols.dt[i] as number;
    if (idLength < ID_MIN || idLength > ID_MAX || textLength < 0 || end > payload.length || !atValid(createdAtMs)) return INVALID;
    turns[i] = { id: payload.slice(from, idEnd), role: roleOf(cols.role.charCodeAt(i)), text: payload.slice(idEnd, end), createdAtMs };
    from = end;
  }
  if (from !== payload.length) return INVALID;
  return withTurns(head, turns);
}

function hasTurnObjects(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const history = (value as { history?: unknown }).history;
  return typeof history === 'object' && history !== null && Array.isArray((history as { turns?: unknown }).turns);
}

/**
 * Parses an untrusted value (a decoded payload) as a stored record and returns the record.
 * Anything that does not match is `record_invalid`.
 */
export function parseStoredRecord(value: unknown): ParseResult<SessionRecord> {
  if (hasTurnObjects(value)) return parseSessionRecord(value);
  const r = storedRecordSchema.safeParse(value);
  if (!r.success) return INVALID;
  const stored = r.data;
  const cols = stored.history.turns;
  const n = cols.role.length;
  const turns = new Array<Turn>(n);
  for (let i = 0; i < n; i++) {
    turns[i] = { id: cols.id[i] as string, role: roleOf(cols.role.charCodeAt(i)), text: cols.text[i] as string, createdAtMs: cols.at[i] as number };
  }
  return withTurns(stored, turns);
}
