/** True when running under CI (`CI=true`): a missing server is then a failure, never a skip. */
export const isCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * The Redis the tests use. `scripts/test.sh` exports `REDIS_URL` after making sure a Redis
 * answers; run directly with vitest, the default local Redis is assumed.
 */
export function testRedisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/** A random key prefix, so each test file owns its keys and cleans them with SCAN + UNLINK. */
export function randomPrefix(tag: string): string {
  return `pva-test:${tag}:${Math.random().toString(36).slice(2, 10)}:`;
}
