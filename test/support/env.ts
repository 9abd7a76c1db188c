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

/**
 * `STORE_GREETING_BOUND_MS` of the workers and job stores the tests build, unless a test is about
 * that bound: 5 s instead of the 500 ms default, so a test decides from Redis even when a busy
 * machine stalls a round trip (or a first TLS or Cluster connection) past the default, which would
 * make the job greet from memory (degraded, by design). Seen on a 2-core VM with heavy steal time.
 */
export const TEST_GREETING_BOUND_MS = '5000';
