/**
 * The token service configured with the Sentinel variables (`REDIS_SENTINELS`,
 * `REDIS_SENTINEL_MASTER`, both passwords), on a real private Sentinel deployment: what it issues
 * lands on the master the sentinels name, another service process accepts it, and "Forget me"
 * erases the worker's session there and tells a live job. LiveKit room deletion is injected (no
 * livekit-server here); Redis is never mocked.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingLogger } from '../../lib/logger.js';
import { recordWithTurn } from '../../lib/session/history.js';
import { newSessionRecord } from '../../lib/session/record.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { SessionNotices, type SessionNotice } from '../../lib/store/session_notices.js';
import { loadWebConfig } from '../../web/server/config.js';
import { DeviceKeys } from '../../web/server/device_store.js';
import { startTokenService, type TokenService } from '../../web/server/service.js';
import { until } from '../lib/store/contract.js';
import { canStartRedis } from '../lib/store/private_redis.js';
import { PrivateSentinel, SENTINEL_FIXTURE_TIMEOUT_MS } from '../lib/store/private_sentinel.js';
import { randomPrefix } from '../support/env.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the token service Sentinel test needs the redis-server binary (apt-get install redis-server)');

const DATA_PASSWORD = 'web-data-pass';
const SENTINEL_PASSWORD = 'web-sentinel-pass';
const LEASE_MS = 30_000;

// Password-protected data nodes and sentinel, as production would run them.
const deployment = new PrivateSentinel({ sentinelCount: 1, masterName: 'pva-web', password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
await deployment.start();
const prefix = randomPrefix('web-sentinel');
// A direct connection to the master the deployment started with, to see what reached it.
const master = new Redis(deployment.masterPort, '127.0.0.1', { password: DATA_PASSWORD, maxRetriesPerRequest: 1 });
const services: TokenService[] = [];
const closedRooms: string[] = [];
const logger = new RecordingLogger();

afterAll(async () => {
  for (const s of services) await s.close();
  master.disconnect();
  await deployment.stop(); // the deployment is private: its keys go with it
});

/** The environment an operator would set for a Sentinel deployment. */
function sentinelEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    LIVEKIT_URL: 'ws://127.0.0.1:1',
    LIVEKIT_API_KEY: 'unit-key',
    LIVEKIT_API_SECRET: 'unit-secret-unit-secret-unit-secret-0123',
    REDIS_SENTINELS: deployment.sentinelAddresses.map((a) => `${a.host}:${a.port}`).join(','),
    REDIS_SENTINEL_MASTER: deployment.masterName,
    REDIS_PASSWORD: DATA_PASSWORD,
    REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD,
    REDIS_KEY_PREFIX: prefix,
    ...overrides,
  };
}

/** Starts a service from `env` the way `npm run web` does (config from the environment), on a free port. */
async function startFromEnv(env: Record<string, string>): Promise<TokenService> {
  const config = loadWebConfig(env, { loadDotenv: false });
  const svc = await startTokenService({ ...config, port: 0, logger, roomCloser: { deleteRoom: async (r) => void closedRooms.push(r) } });
  services.push(svc);
  return svc;
}

/** The service's logs so far hold no password (they do hold what was logged, e.g. store errors). */
function expectNoPasswordLogged(): void {
  expect(logger.lines.length).toBeGreaterThan(0);
  expect(JSON.stringify(logger.lines)).not.toMatch(new RegExp(`${DATA_PASSWORD}|${SENTINEL_PASSWORD}|not-the-password`));
}

async function post(svc: TokenService, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${svc.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function health(svc: TokenService): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${svc.url}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('token service with REDIS_SENTINELS', () => {
  it('stores an issued identity on the master, and a second service process gives it a token', async () => {
    const a = await startFromEnv(sentinelEnv());
    expect(await health(a)).toEqual({ status: 200, body: { ok: true, store: 'shared' } });
    const issued = await post(a, '/api/identity', {});
    expect(issued.status).toBe(201);
    const device = issued.body as { identity: string; deviceSecret: string };

    const stored = await master.get(new DeviceKeys(prefix).device(device.identity));
    expect(stored).not.toBeNull();
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ v: 1, secretHash: expect.any(String) });
    expect(stored).not.toContain(device.deviceSecret);

    const b = await startFromEnv(sentinelEnv());
    const token = await post(b, '/api/token', device);
    expect(token.status).toBe(200);
    expect(await master.zscore(new DeviceKeys(prefix).rooms(device.identity), String(token.body.room))).not.toBeNull();
    expectNoPasswordLogged();
  });

  it('forget erases the worker session on the master, tells the job holding it, and ends the credential', async () => {
    const svc = await startFromEnv(sentinelEnv());
    const device = (await post(svc, '/api/identity', {})).body as { identity: string; deviceSecret: string };
    const room = (await post(svc, '/api/token', device)).body.room;

    // What a worker on the same Sentinel deployment would have written, and its job listening.
    const worker = new RedisSessionStore({ sentinel: deployment.target, prefix, commandTimeoutMs: SENTINEL_FIXTURE_TIMEOUT_MS });
    const notices = new SessionNotices({ sentinel: deployment.target, prefix, commandTimeoutMs: SENTINEL_FIXTURE_TIMEOUT_MS });
    try {
      const key = { agentName: 'agent', identity: device.identity };
      const claim = await worker.resumeAndClaim(key, 'job-a', Date.now(), LEASE_MS);
      if (claim.status !== 'claimed') throw new Error('claim failed');
      const record = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-web', nowMs: Date.now(), profile: null }), { id: 't1', role: 'user', text: 'Remember my router.', createdAtMs: Date.now() });
      await worker.save(record, claim.version, claim.lease);
      const seen: SessionNotice[] = [];
      await notices.watch(device.identity, (n) => seen.push(n));

      const forgot = await post(svc, '/api/forget', device);
      expect(forgot.status).toBe(200);
      expect(forgot.body).toMatchObject({ forgotten: true, roomsClosed: 1 });
      expect(forgot.body.sessionKeysErased).toBeGreaterThan(0);
      expect(closedRooms).toContain(room);

      expect(await worker.readRecord(key)).toEqual({ status: 'missing' });
      await until(async () => seen.length > 0);
      expect(seen).toEqual([{ v: 1, kind: 'forget' }]);
      expect(await master.exists(new DeviceKeys(prefix).device(device.identity))).toBe(0);
      expect((await post(svc, '/api/token', device)).status).toBe(403);
    } finally {
      await notices.close();
      await worker.dispose();
    }
  });

  it('with a wrong REDIS_PASSWORD answers 503 store_unavailable (the password is used)', async () => {
    const svc = await startFromEnv(sentinelEnv({ REDIS_PASSWORD: 'not-the-password' }));
    expect(await health(svc)).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
    expect(await post(svc, '/api/identity', {})).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
    expect(logger.lines.some((l) => l.msg === 'device store failed' && /WRONGPASS/.test(String(l.fields.err)))).toBe(true);
    expectNoPasswordLogged();
  });
});
