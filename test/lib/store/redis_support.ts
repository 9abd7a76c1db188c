import { Redis } from 'ioredis';
import { isCI, testRedisUrl } from '../../support/env.js';

/** Connects to the test Redis; null when it is absent locally. In CI a missing Redis throws (fails, never skips). */
export async function connectTestRedis(): Promise<Redis | null> {
  const client = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1_000, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch (err) {
    client.disconnect();
    if (isCI) throw new Error(`Redis required in CI at ${testRedisUrl()}: ${String(err)}`);
    return null;
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
