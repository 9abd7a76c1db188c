import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import type { SessionKey, SessionStore } from '../../../lib/store/session_store.js';
import { testRedisUrl } from '../../support/env.js';

/** Connects to the test Redis; null when it is absent locally. In CI a missing Redis throws (fails, never skips). */
export async function connectTestRedis(): Promise<Redis> {
  const client = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1_000, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch (err) {
    client.disconnect();
    // Never a skip: `npm test` (scripts/test.sh) starts a Redis when none answers.
    throw new Error(`these tests need Redis at ${testRedisUrl()} (run them with npm test, which starts one): ${String(err)}`);
  }
}

/** Deletes every key under `prefix` with SCAN + UNLINK (never FLUSHALL). */
export async function unlinkPrefix(client: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', '500');
    cursor = next;
    if (keys.length > 0) n += await client.unlink(...keys);
  } while (cursor !== '0');
  return n;
}

/** The contract harness's `tamper` for a {@link RedisSessionStore} on `client`: rewrites the stored record payload, keeping its TTL. */
export function tamperRecordWith(client: Redis | Cluster): (store: SessionStore, key: SessionKey, mutate: (payload: string) => string) => Promise<void> {
  return async (store, key, mutate) => {
    const recKey = (store as RedisSessionStore).keys.session(key).rec;
    const payload = await client.get(recKey);
    if (payload === null) throw new Error('no record to tamper with');
    await client.set(recKey, mutate(payload), 'KEEPTTL');
  };
}
