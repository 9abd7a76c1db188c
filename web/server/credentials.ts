/**
 * Identities, device secrets and room names the token service issues. Everything is drawn
 * from `crypto.randomBytes`; the service stores only a SHA-256 of the secret (the secret has
 * 256 random bits, so a slow password hash buys nothing) and compares in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Random bytes in an identity (96 bits: never guessed, never enumerated). */
export const IDENTITY_BYTES = 12;
/** Random bytes in a device secret (256 bits). */
export const DEVICE_SECRET_BYTES = 32;
/** Random bytes in a room name. */
export const ROOM_BYTES = 9;

/** A new identity: `web-` + 16 base64url characters. */
export function newIdentity(): string {
  return `web-${randomBytes(IDENTITY_BYTES).toString('base64url')}`;
}

/** A new device secret: 43 base64url characters. */
export function newDeviceSecret(): string {
  return randomBytes(DEVICE_SECRET_BYTES).toString('base64url');
}

/** A new room name: `web-room-` + 12 base64url characters (no personal data in it). */
export function newRoomName(): string {
  return `web-room-${randomBytes(ROOM_BYTES).toString('base64url')}`;
}

/** What the service stores for a secret: hex SHA-256 of its UTF-8 bytes. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `secret` hashes to `storedHash`, compared in constant time. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
