import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.js';
import { createJobStores, type JobStores } from '../../agent/store.js';
import { silentLogger } from '../../lib/logger.js';
import type { SessionNotice } from '../../lib/store/session_notices.js';
import { randomPrefix, TEST_GREETING_BOUND_MS } from '../support/env.js';
import { until } from '../lib/store/contract.js';
import { canStartRedis } from '../lib/store/private_redis.js';
import { PrivateSentinel } from '../lib/store/private_sentinel.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the Sentinel wiring test needs the redis-server binary (apt-get install redis-server)');

const base = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' };

// A password-protected Sentinel deployment (data nodes and sentinel), as production would run it.
const deployment = new PrivateSentinel({ sentinelCount: 1, masterName: 'pva-worker', password: 'data-pass', sentinelPassword: 'sentinel-pass' });
await deployment.start();
const opened: JobStores[] = [];

afterAll(async () => {
  for (const s of opened) {
    await s.store.dispose();
    await s.notices?.close();
  }
  await deployment.stop();
});

function storesFor(env: Record<string, string>): JobStores {
  const config = parseConfig({ ...base, REDIS_KEY_PREFIX: randomPrefix('worker'), STORE_GREETING_BOUND_MS: TEST_GREETING_BOUND_MS, ...env });
  const stores = createJobStores(config, silentLogger);
  opened.push(stores);
  return stores;
}

const sentinelEnv = () => ({
  REDIS_SENTINELS: deployment.sentinelAddresses.map((a) => `${a.host}:${a.port}`).join(','),
  REDIS_SENTINEL_MASTER: deployment.masterName,
  REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
});

describe('createJobStores with REDIS_SENTINELS', () => {
  it('reaches the master through the sentinels, and notices travel between jobs', async () => {
    const shared = { ...sentinelEnv(), REDIS_PASSWORD: 'data-pass', REDIS_KEY_PREFIX: randomPrefix('wiring') };
    const a = storesFor(shared);
    const b = storesFor(shared);
    await a.store.ping();
    const seen: SessionNotice[] = [];
    await a.notices?.watch('caller', (n) => seen.push(n));
    expect(await b.notices?.announceForget('caller')).toBe(true);
    await until(async () => seen.length > 0);
    expect(seen).toEqual([{ v: 1, kind: 'forget' }]);
  });

  it('with a wrong REDIS_PASSWORD the shared store does not answer (the password is used)', async () => {
    const wrong = storesFor({ ...sentinelEnv(), REDIS_PASSWORD: 'not-the-password' });
    await expect(wrong.store.ping()).rejects.toThrow();
  });
});
