import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../errors.js';

/**
 * Optional AES-256-GCM sealing of stored payloads, with key ids for rotation.
 *
 * Sealed form: `e1.<keyId>.<iv b64url>.<tag b64url>.<ciphertext b64url>`. The additional
 * authenticated data binds a payload to its slot (kind + session key), so a ciphertext copied
 * to another identity's key fails authentication like any other tampering.
 */

/** Keys by id; new payloads are sealed with `currentKeyId`, old ids stay readable until removed. */
export interface Keyring {
  currentKeyId: string;
  /** 32-byte keys. */
  keys: Readonly<Record<string, Uint8Array>>;
}

/** The outcome of {@link PayloadCipher.open}. */
export type OpenResult = { ok: true; plaintext: string } | { ok: false; why: 'record_tampered' };

const SEALED_PREFIX = 'e1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM sealer/opener over a {@link Keyring}. */
export class PayloadCipher {
  private readonly keyring: Keyring;

  /** @throws ConfigError when the current key is missing or a key is not 32 bytes. */
  constructor(keyring: Keyring) {
    for (const [id, key] of Object.entries(keyring.keys)) {
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new ConfigError(`encryption key id ${JSON.stringify(id)} must match [A-Za-z0-9_-]{1,32}`);
      if (key.length !== 32) throw new ConfigError(`encryption key ${id} must be 32 bytes, got ${key.length}`);
    }
    if (keyring.keys[keyring.currentKeyId] === undefined) throw new ConfigError(`encryption key ${keyring.currentKeyId} (current) is not in the keyring`);
    this.keyring = keyring;
  }

  /** The id of the key new payloads are sealed with. */
  get currentKeyId(): string {
    return this.keyring.currentKeyId;
  }

  /** Seals `plaintext` with the current key, bound to `aad`. */
  seal(plaintext: string, aad: string): string {
    const keyId = this.keyring.currentKeyId;
    const key = this.keyring.keys[keyId];
    if (key === undefined) throw new ConfigError('current encryption key vanished');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return `${SEALED_PREFIX}${keyId}.${iv.toString('base64url')}.${tag.toString('base64url')}.${ct.toString('base64url')}`;
  }

  /** Opens a sealed payload; anything unauthentic, unsealed or under an unknown key is `record_tampered`. */
  open(payload: string, aad: string): OpenResult {
    if (!payload.startsWith(SEALED_PREFIX)) return { ok: false, why: 'record_tampered' };
    const parts = payload.slice(SEALED_PREFIX.length).split('.');
    if (parts.length !== 4) return { ok: false, why: 'record_tampered' };
    const [keyId, ivB64, tagB64, ctB64] = parts as [string, string, string, string];
    const key = this.keyring.keys[keyId];
    if (key === undefined) return { ok: false, why: 'record_tampered' };
    try {
      const iv = Buffer.from(ivB64, 'base64url');
      const tag = Buffer.from(tagB64, 'base64url');
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return { ok: false, why: 'record_tampered' };
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      const pt = Buffer.concat([decipher.update(Buffer.from(ctB64, 'base64url')), decipher.final()]);
      return { ok: true, plaintext: pt.toString('utf8') };
    } catch {
      return { ok: false, why: 'record_tampered' };
    }
  }
}

/** The key id a payload names when it has the sealed form, else null (a plaintext payload). */
export function sealedKeyId(payload: string): string | null {
  if (!payload.startsWith(SEALED_PREFIX)) return null;
  const end = payload.indexOf('.', SEALED_PREFIX.length);
  return end < 0 ? null : payload.slice(SEALED_PREFIX.length, end);
}

/**
 * Parses a keyring from text `id1:base64key1,id2:base64key2`; the first entry is current.
 * @param name The variable the text came from, for the error message.
 * @throws ConfigError naming `name`.
 */
export function parseKeyring(text: string, name: string): Keyring {
  const entries = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (entries.length === 0) throw new ConfigError(`${name} is empty`);
  const keys: Record<string, Uint8Array> = {};
  let currentKeyId: string | null = null;
  for (const entry of entries) {
    const i = entry.indexOf(':');
    if (i <= 0) throw new ConfigError(`${name} entries must look like id:base64key`);
    const id = entry.slice(0, i);
    const key = Buffer.from(entry.slice(i + 1), 'base64');
    if (key.length !== 32) throw new ConfigError(`${name}: key ${id} must decode to 32 bytes, got ${key.length}`);
    keys[id] = key;
    currentKeyId ??= id;
  }
  if (currentKeyId === null) throw new ConfigError(`${name} is empty`);
  const keyring = { currentKeyId, keys };
  new PayloadCipher(keyring);
  return keyring;
}
