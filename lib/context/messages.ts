/**
 * The dynamic-context wire protocol: JSON data messages on {@link CONTEXT_TOPIC}, version 1.
 *
 * Client → agent (`ClientMessage`):
 * - `{ v:1, kind:'op', src, rev, op }` — one tracker operation. `src` names the publisher
 *   stream (random per publisher instance); `rev` increases by one per op of that stream.
 *   Ops: `setState`, `setStates`, `removeState`, `addEvent`, `reset`, `apply` (raw, bypasses
 *   the tracker) and `sync` (the full content: the seed's flush Replace on the wire, and the
 *   repair after a gap). `sync` and `reset` are authoritative, so the agent accepts them after
 *   a gap; every other op must be exactly the next revision of a participant's stream.
 * - `{ v:1, kind:'hello', src }` — "I (re)connected": the agent answers with `welcome` once its
 *   session is ready. Before the welcome the client treats the conversation as inactive.
 *
 * Agent → client (`AgentMessage`), sent only to the sending participant:
 * - `{ kind:'ack', src, rev }` — every revision ≤ `rev` of stream `src` has been applied
 *   (also the answer to a duplicate or stale revision).
 * - `{ kind:'reject', src?, rev?, reason, expectedRev? }` — the message changed nothing;
 *   `expectedRev` accompanies `revision_gap`.
 * - `{ kind:'welcome', src, lastRev, context }` — the agent is ready; `lastRev` is the last
 *   revision it applied from `src` (0 if none), `context` its current states and events.
 *
 * A server-API sender (no participant) cannot receive replies; see `BackendContextPublisher`.
 */
import { z } from 'zod';
import { CONTEXT_TOPIC } from '../attributes.js';
import {
  MAX_EVENTS,
  MAX_EVENT_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PACKET_BYTES,
  MAX_SRC_LENGTH,
  MAX_STATES,
  MAX_VALUE_LENGTH,
  utf8Bytes,
} from './limits.js';
import type { TrackerRejectReason } from './tracker.js';

export * from './limits.js';
export { CONTEXT_TOPIC };

/** Protocol version carried in every message as `v`. */
export const CONTEXT_PROTOCOL_VERSION = 1;

const revisionSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const srcSchema = z.string().min(1).max(MAX_SRC_LENGTH);
const stateSchema = z.object({ name: z.string().max(MAX_NAME_LENGTH), value: z.string().max(MAX_VALUE_LENGTH) });
const contentSchema = {
  states: z.array(stateSchema).max(MAX_STATES),
  events: z.array(z.string().max(MAX_EVENT_LENGTH)).max(MAX_EVENTS),
};

/** One tracker operation on the wire. */
export const contextOpSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('setState'), name: z.string().max(MAX_NAME_LENGTH), value: z.string().max(MAX_VALUE_LENGTH) }),
  z.object({ type: z.literal('setStates'), states: z.array(stateSchema).min(1).max(MAX_STATES) }),
  z.object({ type: z.literal('removeState'), name: z.string().max(MAX_NAME_LENGTH) }),
  z.object({ type: z.literal('addEvent'), text: z.string().max(MAX_EVENT_LENGTH) }),
  z.object({ type: z.literal('reset') }),
  z.object({
    type: z.literal('apply'),
    mode: z.enum(['replace', 'append', 'reset']),
    text: z.string().max(MAX_EVENT_LENGTH),
  }),
  z.object({ type: z.literal('sync'), ...contentSchema }),
]);

/** See {@link contextOpSchema}. */
export type ContextOp = z.infer<typeof contextOpSchema>;

/** A message a publisher sends to the agent. */
export const clientMessageSchema = z.discriminatedUnion('kind', [
  z.object({ v: z.literal(CONTEXT_PROTOCOL_VERSION), kind: z.literal('op'), src: srcSchema, rev: revisionSchema, op: contextOpSchema }),
  z.object({ v: z.literal(CONTEXT_PROTOCOL_VERSION), kind: z.literal('hello'), src: srcSchema }),
]);

/** See {@link clientMessageSchema}. */
export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** A message the agent sends to a publisher. `reason` is a string so older clients accept new reasons. */
export const agentMessageSchema = z.discriminatedUnion('kind', [
  z.object({ v: z.literal(CONTEXT_PROTOCOL_VERSION), kind: z.literal('ack'), src: srcSchema, rev: z.number().int().min(0) }),
  z.object({
    v: z.literal(CONTEXT_PROTOCOL_VERSION),
    kind: z.literal('reject'),
    src: srcSchema.optional(),
    rev: z.number().int().min(0).optional(),
    reason: z.string().max(64),
    expectedRev: z.number().int().min(1).optional(),
  }),
  z.object({
    v: z.literal(CONTEXT_PROTOCOL_VERSION),
    kind: z.literal('welcome'),
    src: srcSchema,
    lastRev: z.number().int().min(0),
    context: z.object(contentSchema),
  }),
]);

/** See {@link agentMessageSchema}. */
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** Why the agent refused a message; it changed nothing. */
export type ContextRejectReason =
  | 'too_large'
  | 'malformed_json'
  | 'unsupported_version'
  | 'invalid_message'
  | 'unauthorized'
  | 'rate_limited'
  | 'stale_revision'
  | 'revision_gap'
  | 'hello_without_participant'
  | TrackerRejectReason;

/** Outcome of decoding a packet. */
export type DecodeResult<T> =
  | { readonly ok: true; readonly message: T }
  | { readonly ok: false; readonly reason: 'too_large' | 'malformed_json' | 'unsupported_version' | 'invalid_message' };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a message as UTF-8 JSON. */
export function encodeContextMessage(message: ClientMessage | AgentMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

function decodeWith<T>(payload: Uint8Array | string, schema: z.ZodType<T>): DecodeResult<T> {
  let text: string;
  if (typeof payload === 'string') {
    // Cheap bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
    if (payload.length * 3 > MAX_PACKET_BYTES && utf8Bytes(payload) > MAX_PACKET_BYTES) {
      return { ok: false, reason: 'too_large' };
    }
    text = payload;
  } else {
    if (!(payload instanceof Uint8Array) || payload.byteLength > MAX_PACKET_BYTES) return { ok: false, reason: 'too_large' };
    try {
      text = decoder.decode(payload);
    } catch {
      return { ok: false, reason: 'malformed_json' };
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed_json' };
  }
  if (typeof raw === 'object' && raw !== null && 'v' in raw && raw.v !== CONTEXT_PROTOCOL_VERSION) {
    return { ok: false, reason: 'unsupported_version' };
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, reason: 'invalid_message' };
}

/** Decodes and validates a client → agent packet; never throws. */
export function decodeClientMessage(payload: Uint8Array | string): DecodeResult<ClientMessage> {
  return decodeWith(payload, clientMessageSchema);
}

/** Decodes and validates an agent → client packet; never throws. */
export function decodeAgentMessage(payload: Uint8Array | string): DecodeResult<AgentMessage> {
  return decodeWith(payload, agentMessageSchema);
}
