import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.js';
import { createJobStores, warmUp, type JobStores } from '../../agent/store.js';
import { silentLogger } from '../../lib/logger.js';
import { livenessKeys } from '../../lib/store/agent_liveness.js';
import { KeyBuilder } from '../../lib/store/keys.js';
import { randomPrefix, testRedisUrl } from '../support/env.js';
import { connectTestRedis, unlinkPrefix } from '../lib/store/redis_support.js';
import { TcpRelay } from '../support/tcp_relay.js';

const redis = await connectTestRedis();
const prefix = randomPrefix('warmup');
const opened: JobStores[] = [];

afterAll(async () => {
  for (const s of opened) {
    await s.store.dispose();
    await s.notices?.close();
    await s.liveness?.close();
  }
  await unlinkPrefix(redis, new KeyBuilder(prefix).allKeysPattern());
  redis.disconnect();
});

const env = (redisUrl: string) => ({ LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix });

describe('warmUp (job-process pre-warm)', () => {
  it('connects to Redis and runs whole arrivals, without writing anything to Redis or degrading the store', async () => {
    const config = parseConfig(env(testRedisUrl()));
    const stores = createJobStores(config, silentLogger);
    opened.push(stores);
    await warmUp(stores, config.policy);
    expect(stores.store.isDegraded).toBe(false);
    expect(stores.store.pendingReplayCount).toBe(0);
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', new KeyBuilder(prefix).allKeysPattern(), 'COUNT', '1000');
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    expect(keys).toEqual([]);
    // The job's own store is untouched by the warm-up arrivals (they ran on a scratch store).
    expect(stores.store.memory.keys()).toHaveLength(0);
  });

  it('opens the liveness beats\' connection too: a job\'s first beat is not held up setting one up (past its bound, the job would say it is cut off from Redis)', async () => {
    const { relay, url } = await TcpRelay.inFrontOf(testRedisUrl());
    try {
      const config = parseConfig(env(url));
      const stores = createJobStores(config, silentLogger);
      opened.push(stores);
      await warmUp(stores, config.policy);
      const connections = relay.accepted;
      await stores.liveness!.beat('warm-agent', 'room', 'agent-1', 4_000);
      expect(relay.accepted).toBe(connections); // on the connection warmUp opened
      expect(await redis.zcard(livenessKeys(prefix, 'warm-agent').beats)).toBe(1);
    } finally {
      await relay.close();
    }
  });
});
