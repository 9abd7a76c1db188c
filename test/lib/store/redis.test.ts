import { afterAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { randomPrefix } from '../../support/env.js';
import { sessionStoreContract } from './contract.js';
import { connectTestRedis, tamperRecordWith, unlinkPrefix } from './redis_support.js';

const redis: Redis = await connectTestRedis();
const prefixes: string[] = [];

afterAll(() => redis.disconnect());
sessionStoreContract({
  name: 'RedisSessionStore',
  make: async (opts) => {
    const prefix = randomPrefix('store');
    prefixes.push(prefix);
    return new RedisSessionStore({ ...opts, client: redis, prefix });
  },
  tamper: tamperRecordWith(redis),
  cleanup: async () => {
    for (const p of prefixes) await unlinkPrefix(redis, `${p}*`);
  },
});

describe('RedisSessionStore specifics', () => {
  it('keeps every key of a session in one hash slot and never leaks raw identities into keys', () => {
    const store = new RedisSessionStore({ client: redis, prefix: 'p:' });
    const keys = Object.values(store.keys.session({ agentName: 'ag', identity: 'a}:{b' }));
    const tags = new Set(keys.map((k) => /\{([^}]*)\}/.exec(k)?.[1]));
    expect(tags.size).toBe(1);
    for (const k of keys) expect(k).not.toContain('a}:{b');
    expect(() => new RedisSessionStore({ client: redis, prefix: 'bad{' })).toThrow(/prefix/);
  });

  it('does not close a client it was handed', async () => {
    const store = new RedisSessionStore({ client: redis, prefix: randomPrefix('own') });
    await store.dispose();
    expect(await redis.ping()).toBe('PONG');
  });
});
