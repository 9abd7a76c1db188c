import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.js';
import { createJobStores, type JobStores } from '../../agent/store.js';
import { silentLogger } from '../../lib/logger.js';
import { newSessionRecord } from '../../lib/session/record.js';
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

describe('createJobStores and the archive retention (ARCHIVE_TTL_MS, ARCHIVE_MAX_COUNT)', () => {
  /** Ends `n` conversations of one key, one after another, as jobs do. */
  const endConversations = async (stores: JobStores, n: number) => {
    const key = { agentName: 'agent', identity: `archived-${n}` };
    for (let i = 0; i < n; i++) {
      const nowMs = Date.now() + i;
      const c = await stores.store.resumeAndClaim(key, `job-${i}`, nowMs, 30_000);
      if (c.status !== 'claimed') throw new Error('claim');
      const record = { ...newSessionRecord({ ...key, sessionId: `s-${i}`, nowMs, profile: c.profile }), disconnectReason: 'ended' as const };
      const v = await stores.store.save(record, c.version, c.lease);
      await stores.store.end(record, v, c.lease, nowMs);
    }
    return (await stores.store.readArchive(key, Date.now() + n)).map((a) => a.sessionId);
  };

  it('keeps as many ended conversations per session as ARCHIVE_MAX_COUNT says, newest first, on the shared store and in memory', async () => {
    const onRedis = storesFor({ ...sentinelEnv(), REDIS_PASSWORD: 'data-pass', ARCHIVE_MAX_COUNT: '2' });
    expect(await endConversations(onRedis, 3)).toEqual(['s-2', 's-1']);
    const inMemory = storesFor({ ARCHIVE_MAX_COUNT: '2' });
    expect(await endConversations(inMemory, 3)).toEqual(['s-2', 's-1']);
    // The default keeps all three (20).
    expect(await endConversations(storesFor({ ...sentinelEnv(), REDIS_PASSWORD: 'data-pass' }), 3)).toEqual(['s-2', 's-1', 's-0']);
  });

  it('reads ARCHIVE_TTL_MS and ARCHIVE_MAX_COUNT with clear errors', () => {
    expect(parseConfig(base).archive).toEqual({ archiveTtlMs: 7 * 24 * 60 * 60 * 1000, archiveMaxCount: 20 });
    expect(parseConfig({ ...base, ARCHIVE_TTL_MS: '86400000', ARCHIVE_MAX_COUNT: '5' }).archive).toEqual({ archiveTtlMs: 86_400_000, archiveMaxCount: 5 });
    expect(() => parseConfig({ ...base, ARCHIVE_MAX_COUNT: '0' })).toThrow(/ARCHIVE_MAX_COUNT must be an integer >= 1, got 0/);
    expect(() => parseConfig({ ...base, ARCHIVE_TTL_MS: '7d' })).toThrow(/ARCHIVE_TTL_MS must be a whole number, got "7d"/);
  });
});
