import { z } from 'zod';
import { historySchema, parseSessionRecord, sessionRecordSchema, turnSchema } from '../session/record.js';
import type { ParseResult, SessionRecord, Turn } from '../session/record.js';

/**
 * The stored (wire) form of a {@link SessionRecord}: the record itself (`v: 1`), except that
 * `history.turns` is stored column by column — `{ id: string[], role: 'ua…', text: string[],
 * at: number[] }` — instead of as an array of turn objects.
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
 * within `turnSchema.shape.createdAtMs`'s bound. One loop over the columns: zod runs its checks
 * once per element (about 45 ns each, 5 µs for 50 ids), this runs them in about 0.5 µs.
 */
function turnColumnsValid(t: { id: string[]; role: string; text: string[]; at: number[] }): boolean {
  const n = t.role.length;
  if (t.id.length !== n || t.text.length !== n || t.at.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const id = t.id[i] as string;
    const at = t.at[i] as number;
    const r = t.role.charCodeAt(i);
    if (id.length < ID_MIN || id.length > ID_MAX || (r !== U && r !== A) || !Number.isSafeInteger(at) || at < AT_MIN) return false;
  }
  return true;
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
  if (!r.success) return { ok: false, why: 'record_invalid' };
  const stored = r.data;
  const cols = stored.history.turns;
  const n = cols.role.length;
  const turns = new Array<Turn>(n);
  for (let i = 0; i < n; i++) {
    turns[i] = { id: cols.id[i] as string, role: cols.role.charCodeAt(i) === U ? 'user' : 'assistant', text: cols.text[i] as string, createdAtMs: cols.at[i] as number };
  }
  return { ok: true, value: { ...stored, history: { turns, summary: stored.history.summary, summarizedTurnCount: stored.history.summarizedTurnCount } } };
}
