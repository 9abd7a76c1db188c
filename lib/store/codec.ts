import { DEFAULT_HISTORY_LIMITS, appendTurns, lastTopic } from '../session/history.js';
import type { HistoryLimits } from '../session/history.js';
import { DEFAULT_PROFILE_TTL_MS, DEFAULT_SESSION_TTL_MS } from '../session/policy.js';
import { parseProfile, profileFromRecord, turnSchema } from '../session/record.js';
import type { Profile, RecordProblem, SessionRecord, Turn } from '../session/record.js';
import { SessionError } from '../errors.js';
import { sealedKeyId, type PayloadCipher } from './crypto.js';
import { decodeStoredRecord, encodeStoredRecord } from './record_wire.js';
import { sessionKeyId } from './keys.js';
import type { SessionKey } from './keys.js';
import { DEFAULT_ARCHIVE_MAX_COUNT, DEFAULT_ARCHIVE_TTL_MS, DEFAULT_MAX_PENDING_TURNS } from './session_store.js';
import type { ArchivedSession, RecordRead, StoreOptions } from './session_store.js';

/**
 * Payload encoding shared by the adapters: JSON (records in their stored form, turns as columns:
 * `record_wire.ts`), optionally sealed (AES-256-GCM) with the slot (kind + session key) as
 * authenticated data. Every read is validated with zod, and the record must belong to the key it
 * was read from. Without a cipher no sealing code runs.
 */

/** Store options with defaults applied. */
export interface ResolvedStoreOptions {
  sessionTtlMs: number;
  profileTtlMs: number;
  archiveTtlMs: number;
  archiveMaxCount: number;
  maxPendingTurns: number;
  historyLimits: HistoryLimits;
  cipher: PayloadCipher | null;
}

/** Applies the defaults of {@link StoreOptions}. */
export function resolveStoreOptions(opts: StoreOptions = {}): ResolvedStoreOptions {
  return {
    sessionTtlMs: opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
    profileTtlMs: opts.profileTtlMs ?? DEFAULT_PROFILE_TTL_MS,
    archiveTtlMs: opts.archiveTtlMs ?? DEFAULT_ARCHIVE_TTL_MS,
    archiveMaxCount: opts.archiveMaxCount ?? DEFAULT_ARCHIVE_MAX_COUNT,
    maxPendingTurns: opts.maxPendingTurns ?? DEFAULT_MAX_PENDING_TURNS,
    historyLimits: opts.historyLimits ?? DEFAULT_HISTORY_LIMITS,
    cipher: opts.cipher ?? null,
  };
}

/** What a stored payload is, for its authenticated data. Archived records are `rec`, their tails' turns `turn`. */
export type PayloadKind = 'rec' | 'turn' | 'profile';
type Kind = PayloadKind;

/**
 * A payload read for key rotation ({@link PayloadCodec.reseal}): already under the current key,
 * sealed again under it, or unreadable (tampered, or under a key the keyring no longer has),
 * then left as it is. `keyId`: the key the payload named when read, null when it was plaintext.
 */
export type ResealOutcome = { keyId: string | null } & ({ status: 'current' } | { status: 'resealed'; payload: string } | { status: 'unreadable' });

type Decoded<T> = { ok: true; value: T } | { ok: false; why: 'record_invalid' | 'record_tampered' };

/** Encodes and decodes stored payloads for one store. */
export class PayloadCodec {
  constructor(private readonly cipher: PayloadCipher | null) {}

  private aad(kind: Kind, key: SessionKey): string {
    return `pva/${kind}/${sessionKeyId(key)}`;
  }

  private seal(kind: Kind, key: SessionKey, text: string): string {
    return this.cipher === null ? text : this.cipher.seal(text, this.aad(kind, key));
  }

  private open(kind: Kind, key: SessionKey, payload: string): Decoded<string> {
    if (this.cipher === null) return { ok: true, value: payload };
    const opened = this.cipher.open(payload, this.aad(kind, key));
    return opened.ok ? { ok: true, value: opened.plaintext } : opened;
  }

  private encode(kind: Kind, key: SessionKey, value: unknown): string {
    return this.seal(kind, key, JSON.stringify(value));
  }

  private decode(kind: Kind, key: SessionKey, payload: string): Decoded<unknown> {
    const text = this.open(kind, key, payload);
    if (!text.ok) return text;
    try {
      return { ok: true, value: JSON.parse(text.value) as unknown };
    } catch {
      return { ok: false, why: 'record_invalid' };
    }
  }

  /** Payload of a record (`record_wire.ts`: JSON head, then the turn texts). */
  encodeRecord(record: SessionRecord): string {
    return this.seal('rec', record, encodeStoredRecord(record));
  }

  /** Payload of a turn. */
  encodeTurn(key: SessionKey, turn: Turn): string {
    return this.encode('turn', key, turn);
  }

  /** Payload of a profile. */
  encodeProfile(profile: Profile): string {
    return this.encode('profile', profile, profile);
  }

  /** Decodes one record payload and checks it belongs to `key`. */
  decodeRecordPayload(key: SessionKey, payload: string): Decoded<SessionRecord> {
    const text = this.open('rec', key, payload);
    if (!text.ok) return text;
    const parsed = decodeStoredRecord(text.value);
    if (!parsed.ok) return parsed;
    if (parsed.value.agentName !== key.agentName || parsed.value.identity !== key.identity) return { ok: false, why: 'record_invalid' };
    return parsed;
  }

  /**
   * The record a store holds: the saved payload with the pending turns merged in and the
   * authoritative version. A refused pending turn refuses the whole record.
   */
  decodeRecord(key: SessionKey, payload: string | null, turnPayloads: readonly string[], version: number, limits: HistoryLimits): RecordRead {
    if (payload === null) return { status: 'missing' };
    const rec = this.decodeRecordPayload(key, payload);
    if (!rec.ok) return { status: 'invalid', why: rec.why };
    // rec.value is a fresh object of our own (decoded above): set fields in place, no copy.
    rec.value.version = version;
    return this.withPendingTurns(key, rec.value, turnPayloads, limits);
  }

  /** One stored turn payload, or why it does not read. */
  private decodeTurn(key: SessionKey, payload: string): { ok: true; turn: Turn } | { ok: false; why: RecordProblem } {
    const raw = this.decode('turn', key, payload);
    if (!raw.ok) return raw;
    const t = turnSchema.safeParse(raw.value);
    return t.success ? { ok: true, turn: t.data } : { ok: false, why: 'record_invalid' };
  }

  /** `record` (a fresh object of the caller's) with the pending turns merged in; one that does not read refuses the record. */
  private withPendingTurns(key: SessionKey, record: SessionRecord, turnPayloads: readonly string[], limits: HistoryLimits): RecordRead {
    const turns: Turn[] = [];
    for (const tp of turnPayloads) {
      const t = this.decodeTurn(key, tp);
      if (!t.ok) return { status: 'invalid', why: t.why };
      turns.push(t.turn);
    }
    return { status: 'found', record: withTurns(record, turns, limits) };
  }

  /** Decodes a profile; a refused profile reads as null (it only shapes a greeting). */
  decodeProfile(key: SessionKey, payload: string | null): Profile | null {
    return this.readProfile(key, payload).profile;
  }

  /** Decodes a profile, saying why a stored one is refused (an export must not pass it over in silence). */
  readProfile(key: SessionKey, payload: string | null): { profile: Profile | null; problem?: RecordProblem } {
    if (payload === null) return { profile: null };
    const raw = this.decode('profile', key, payload);
    if (!raw.ok) return { profile: null, problem: raw.why };
    const p = parseProfile(raw.value);
    if (!p.ok) return { profile: null, problem: p.why };
    if (p.value.agentName !== key.agentName || p.value.identity !== key.identity) return { profile: null, problem: 'record_tampered' };
    return { profile: p.value };
  }

  /**
   * Decodes one archive entry (archived payloads are record payloads), with the turns said after
   * its last save (a crashed owner's; `tailPayloads`) merged in. A tail turn that does not read
   * (tampered, or not a turn) is left out and named in `problem`: the conversation as last saved
   * and the tail turns that do read are still there for the audit. `tailUnreadable`: the tail as a
   * whole was not a list of payloads.
   */
  decodeArchived(
    key: SessionKey,
    sessionId: string,
    archivedAtMs: number,
    payload: string,
    tailPayloads: readonly string[] | undefined,
    limits: HistoryLimits,
    tailUnreadable = false,
  ): ArchivedSession {
    const rec = this.decodeRecordPayload(key, payload);
    if (!rec.ok) return { sessionId, archivedAtMs, record: null, problem: rec.why };
    let problem: RecordProblem | undefined = tailUnreadable ? 'record_invalid' : undefined;
    const readable: Turn[] = [];
    for (const tp of tailPayloads ?? []) {
      const t = this.decodeTurn(key, tp);
      if (t.ok) readable.push(t.turn);
      else problem ??= t.why;
    }
    return { sessionId, archivedAtMs, record: withTurns(rec.value, readable, limits), ...(problem === undefined ? {} : { problem }) };
  }

  /** The turn payloads of an archive tail (a JSON array of them), or null when it is not one. */
  static parseTail(tail: string): string[] | null {
    if (tail === '') return [];
    try {
      const v: unknown = JSON.parse(tail);
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
    } catch {
      return null;
    }
  }

  /**
   * `payload` sealed under the current key, for key rotation: a payload under an older key of
   * the keyring is opened and sealed again (same plaintext, same slot), a plaintext payload
   * (written before encryption was turned on) is sealed. Nothing is parsed or changed inside.
   * @throws SessionError `config_invalid` without a keyring.
   */
  reseal(kind: PayloadKind, key: SessionKey, payload: string): ResealOutcome {
    if (this.cipher === null) throw new SessionError('config_invalid', 'resealing needs an encryption keyring');
    const keyId = sealedKeyId(payload);
    if (keyId === this.cipher.currentKeyId) return { keyId, status: 'current' };
    if (keyId === null) return { keyId, status: 'resealed', payload: this.seal(kind, key, payload) };
    const opened = this.open(kind, key, payload);
    return opened.ok ? { keyId, status: 'resealed', payload: this.seal(kind, key, opened.value) } : { keyId, status: 'unreadable' };
  }

  /** The profile payload a saved record implies. */
  profilePayloadFor(record: SessionRecord): string {
    return this.encodeProfile(profileFromRecord(record));
  }
}

/**
 * The archive member of a record whose restore was refused (another owner holds the session):
 * the conversation as `writer` left it, kept beside the session's own archive copy.
 */
export function forkArchiveId(sessionId: string, writer: string): string {
  return `${sessionId}~${writer === '' ? 'unknown' : writer}`;
}

/** The session key of a record. */
export function keyOf(record: Pick<SessionRecord, 'agentName' | 'identity'>): SessionKey {
  return { agentName: record.agentName, identity: record.identity };
}

/** `record` with `turns` (said after its last save) appended: history, last seen time and topic. */
function withTurns(record: SessionRecord, turns: readonly Turn[], limits: HistoryLimits): SessionRecord {
  if (turns.length === 0) return record;
  const history = appendTurns(record.history, turns, limits);
  const lastAtMs = turns.reduce((m, t) => Math.max(m, t.createdAtMs), record.lastSeenAt);
  const merged: SessionRecord = { ...record, history, lastSeenAt: lastAtMs };
  const topic = lastTopic(history);
  if (topic !== undefined) merged.lastTopic = topic;
  return merged;
}
