/**
 * Every Redis key of the session store is built here.
 *
 * Schema (`P` = configurable prefix, `A` / `I` = base64url of the UTF-8 agent name / identity):
 *
 * | key                         | type   | holds                                             | TTL            |
 * |-----------------------------|--------|---------------------------------------------------|----------------|
 * | `P{s.A.I}:rec`              | string | the session record payload                        | sessionTtlMs   |
 * | `P{s.A.I}:meta`             | hash   | `version`, `fence`, `owner`, `exp` (lease end ms),| sessionTtlMs   |
 * |                             |        | `at` (the lease's claim arrival, ms)              |                |
 * | `P{s.A.I}:turns`            | list   | turn payloads appended since the last save        | max(session, archive) TTL |
 * | `P{s.A.I}:profile`          | string | the identity profile payload                      | profileTtlMs   |
 * | `P{s.A.I}:arch`             | zset   | archived session ids, score = archived at (ms)    | archiveTtlMs   |
 * | `P{s.A.I}:archdata`         | hash   | session id → archived record payload              | archiveTtlMs   |
 * | `P{s.A.I}:archtail`         | hash   | session id → turns said after its last save (a    | archiveTtlMs   |
 * |                             |        | crashed owner's), a JSON array of turn payloads   |                |
 * | `P{i.I}:agents`             | set    | `A` of every agent holding data for identity `I`  | max(profile, archive) TTL + ≤ 1 h (refreshed by saves) |
 *
 * All keys of one session share the hash tag `{s.A.I}`, so every script touching them runs in
 * one Redis Cluster slot. base64url has no `{`, `}`, `:` or `.`, so no identity's bytes can
 * reach another identity's keys, and the tag is the first `{...}` of the key even when the
 * prefix contains braces (the prefix is checked not to).
 */

import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors.js';

/** A session's natural key. */
export interface SessionKey {
  agentName: string;
  identity: string;
}

/** base64url of the UTF-8 bytes of `value` (no padding). */
export function encodeKeyPart(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

/** Inverse of {@link encodeKeyPart}. */
export function decodeKeyPart(encoded: string): string {
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

/** The keys of one session (all in one Cluster slot). */
export interface SessionKeys {
  rec: string;
  meta: string;
  turns: string;
  profile: string;
  archive: string;
  archiveData: string;
  archiveTail: string;
}

/**
 * Sessions whose keys {@link KeyBuilder.session} keeps built (a job uses one session's keys for
 * every turn, renewal and save): cleared whole when full, so memory stays bounded.
 */
const SESSION_KEYS_MEMO_SIZE = 1_024;
/** Longer names and identities (UTF-16 units, both together) are built on every call, not kept. */
const SESSION_KEYS_MEMO_MAX_CHARS = 512;

/** Builds keys under one prefix. */
export class KeyBuilder {
  /** agent name → identity → keys (see {@link SESSION_KEYS_MEMO_SIZE}). */
  private readonly memo = new Map<string, Map<string, Readonly<SessionKeys>>>();
  private memoCount = 0;

  /**
   * @param prefix Prepended to every key, e.g. `pva:`. Must not contain `{` or `}` (they would
   *   move the Cluster hash tag).
   */
  constructor(readonly prefix: string) {
    if (/[{}]/.test(prefix)) throw new InvalidInputError('key prefix must not contain { or }');
  }

  /** The hash tag of a session, braces included. */
  sessionTag(key: SessionKey): string {
    return `{s.${encodeKeyPart(key.agentName)}.${encodeKeyPart(key.identity)}}`;
  }

  /**
   * All keys of one session. Kept built for recent sessions: the keys are on every store call's
   * path (two base64url encodings and six strings each time otherwise).
   */
  session(key: SessionKey): Readonly<SessionKeys> {
    const known = this.memo.get(key.agentName)?.get(key.identity);
    if (known !== undefined) return known;
    const base = `${this.prefix}${this.sessionTag(key)}`;
    const keys: Readonly<SessionKeys> = Object.freeze({
      rec: `${base}:rec`,
      meta: `${base}:meta`,
      turns: `${base}:turns`,
      profile: `${base}:profile`,
      archive: `${base}:arch`,
      archiveData: `${base}:archdata`,
      archiveTail: `${base}:archtail`,
    });
    if (key.agentName.length + key.identity.length <= SESSION_KEYS_MEMO_MAX_CHARS) {
      if (this.memoCount >= SESSION_KEYS_MEMO_SIZE) {
        this.memo.clear();
        this.memoCount = 0;
      }
      let byIdentity = this.memo.get(key.agentName);
      if (byIdentity === undefined) this.memo.set(key.agentName, (byIdentity = new Map()));
      byIdentity.set(key.identity, keys);
      this.memoCount++;
    }
    return keys;
  }

  /** Pub/sub channel of notices about `identity`'s sessions (takeovers, forget). */
  noticeChannel(identity: string): string {
    return `${this.prefix}{i.${encodeKeyPart(identity)}}:notices`;
  }

  /**
   * When `identity` was last erased ({@link SessionStore.forget}, epoch ms), kept for the session
   * TTL so a job cut off at that moment cannot write it back. Hashed like a coordination key
   * ({@link hashedKey}): the erased identity does not appear in any key name.
   */
  forgetMark(identity: string): string {
    return hashedKey(this.prefix, 'f', identity);
  }

  /** The identity index: every agent name holding data for `identity`. */
  identityIndex(identity: string): string {
    return `${this.prefix}{i.${encodeKeyPart(identity)}}:agents`;
  }

  /** A SCAN MATCH pattern for every session meta key under this prefix. */
  metaScanPattern(): string {
    return `${escapeGlob(this.prefix)}{s.*}:meta`;
  }

  /** A SCAN MATCH pattern for everything under this prefix (tests clean up with it). */
  allKeysPattern(): string {
    return `${escapeGlob(this.prefix)}*`;
  }

  /** A SCAN MATCH pattern for every key of every session under this prefix (record, profile, archive, …). */
  sessionScanPattern(): string {
    return `${escapeGlob(this.prefix)}{s.*}:*`;
  }

  /** The session key a meta key belongs to, or null when it is not one of ours. */
  parseMetaKey(redisKey: string): SessionKey | null {
    return redisKey.endsWith(':meta') ? this.parseSessionKey(redisKey) : null;
  }

  /** The session key any of a session's keys belongs to, or null when it is not one of ours. */
  parseSessionKey(redisKey: string): SessionKey | null {
    if (!redisKey.startsWith(this.prefix)) return null;
    const m = /^\{s\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)\}:[a-z]+$/.exec(redisKey.slice(this.prefix.length));
    if (m === null) return null;
    return { agentName: decodeKeyPart(m[1] ?? ''), identity: decodeKeyPart(m[2] ?? '') };
  }
}

/**
 * A coordination key outside the session store (liveness, join checks, dispatch gate, seen
 * webhook events, rate limits): `P{kind.H}`, `H` the first 128 bits of the SHA-256 of `value`,
 * base64url, so no address, identity, room or agent name appears in the key name, and the hash
 * tag matches none of the session store's SCAN patterns.
 * @throws InvalidInputError when `prefix` contains `{` or `}`
 */
export function hashedKey(prefix: string, kind: string, value: string): string {
  if (/[{}]/.test(prefix)) throw new InvalidInputError('key prefix must not contain { or }');
  return `${prefix}{${kind}.${createHash('sha256').update(value).digest('base64url').slice(0, 22)}}`;
}

/** Escapes Redis glob metacharacters (`*?[]\`) so a prefix matches literally. */
export function escapeGlob(value: string): string {
  return value.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A string form of a session key for in-process maps (agent name and identity encoded). */
export function sessionKeyId(key: SessionKey): string {
  return `${encodeKeyPart(key.agentName)}.${encodeKeyPart(key.identity)}`;
}
