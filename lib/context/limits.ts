/**
 * Bounds of the dynamic-context protocol. The tracker, the receiver and every publisher use the
 * same numbers, so a context one side accepts is accepted by the other and every full snapshot
 * (`sync` op, `welcome` reply) fits in one data packet.
 *
 * Lengths are counted in UTF-16 code units (`string.length`); byte sizes are UTF-8 bytes of the
 * JSON-encoded strings.
 */

/**
 * Largest data packet the protocol sends or accepts: 15 KiB of UTF-8. LiveKit's reliable data
 * packets are capped at 15 KiB; {@link MAX_CONTEXT_BYTES} leaves room for the envelope below it.
 */
export const MAX_PACKET_BYTES = 15_360;

/**
 * Most states one context holds. Setting a new state beyond it is rejected (`too_many_states`);
 * it also bounds the entries of one `setStates` batch.
 */
export const MAX_STATES = 64;

/** Longest state name, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 128;

/** Longest state value, in UTF-16 code units. */
export const MAX_VALUE_LENGTH = 1_024;

/** Longest event text (and longest `apply` text), in UTF-16 code units. */
export const MAX_EVENT_LENGTH = 1_024;

/**
 * Most events kept. Adding one more drops the oldest (both sides drop the same one, so the
 * canonical context stays equal).
 */
export const MAX_EVENTS = 32;

/**
 * Largest encoded context: the JSON-encoded bytes of all states and events as they appear in a
 * `sync` op (names, values, event texts plus per-entry punctuation). A new state or an edit that
 * would exceed it is rejected (`context_too_large`); a new event drops the oldest events until it
 * fits. 12 KiB + the envelope (< 512 B) stays below {@link MAX_PACKET_BYTES}.
 */
export const MAX_CONTEXT_BYTES = 12_288;

/** Bytes a state adds to {@link MAX_CONTEXT_BYTES} beyond its name and value: `{"name":"","value":""},`. */
export const STATE_OVERHEAD_BYTES = 23;

/** Bytes an event adds to {@link MAX_CONTEXT_BYTES} beyond its text: `"",`. */
export const EVENT_OVERHEAD_BYTES = 3;

/** Longest publisher stream id (`src`) in a message, in UTF-16 code units. */
export const MAX_SRC_LENGTH = 64;

/** Per-sender token bucket: messages a sender may send at once before the rate applies. */
export const RATE_LIMIT_BURST = 64;

/** Per-sender token bucket: sustained messages per second (tokens refilled per second). */
export const RATE_LIMIT_PER_SECOND = 20;

/** Receiver coalescing: a burst is written to the chat context this long after its last update. */
export const COALESCE_DEBOUNCE_MS = 500;

/** Receiver coalescing: a continuous burst is written at the latest this long after its first update. */
export const COALESCE_MAX_DELAY_MS = 3_000;

/**
 * Most senders (publisher streams) whose last revision a receiver remembers; the least recently
 * used is forgotten first (a forgotten sender is asked for a full `sync` on its next gap).
 */
export const MAX_TRACKED_SENDERS = 16;

/**
 * Most short update messages (Appends) the agent's chat context keeps; older ones are folded
 * into the dynamic-context message, so nothing the model was told is lost.
 */
export const MAX_UPDATE_MESSAGES = 8;

/** The limits one tracker enforces; see the constants for what each bounds. */
export interface ContextLimits {
  /** @default {@link MAX_STATES} */
  maxStates: number;
  /** @default {@link MAX_NAME_LENGTH} */
  maxNameLength: number;
  /** @default {@link MAX_VALUE_LENGTH} */
  maxValueLength: number;
  /** @default {@link MAX_EVENT_LENGTH} */
  maxEventLength: number;
  /** @default {@link MAX_EVENTS} */
  maxEvents: number;
  /** @default {@link MAX_CONTEXT_BYTES} */
  maxContextBytes: number;
}

/** The project's limits. Both ends of a connection must use the same ones. */
export const DEFAULT_CONTEXT_LIMITS: Readonly<ContextLimits> = Object.freeze({
  maxStates: MAX_STATES,
  maxNameLength: MAX_NAME_LENGTH,
  maxValueLength: MAX_VALUE_LENGTH,
  maxEventLength: MAX_EVENT_LENGTH,
  maxEvents: MAX_EVENTS,
  maxContextBytes: MAX_CONTEXT_BYTES,
});

/**
 * Bytes `s` takes inside a JSON string literal, UTF-8 encoded (quotes excluded). Control
 * characters are rejected before this is used, so only `"` and `\` are escaped; a lone
 * surrogate counts as its 6-byte `\uXXXX` escape.
 */
export function jsonStringBytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += c === 0x22 || c === 0x5c ? 2 : 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 6;
    } else if (c >= 0xdc00 && c <= 0xdfff) n += 6;
    else n += 3;
  }
  return n;
}

/** UTF-8 byte length of `s` (what a data packet carries). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
