/**
 * The token service's limits, over real HTTP on loopback (in-memory device store): new
 * identities per client address (behind trusted proxies, per the address they saw; an IPv6
 * client per /64), and new rooms per identity, counted only once the identity's secret checked
 * out. A refused request issues nothing; a minute later the limit is open again; 0 turns a
 * limit off. A request that fails on the device store (a real private Redis, stopped or
 * refusing the command) issues nothing and does not count: retrying through an outage does not
 * use up a limit.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MemoryDeviceStore, RedisDeviceStore, type DeviceStore } from '../../web/server/device_store.js';
import { RedisRateLimiter } from '../../web/server/rate_limiter.js';
import { startTokenService, type TokenService, type TokenServiceOptions } from '../../web/server/service.js';
import { canStartRedis, freePort, PrivateRedis } from '../lib/store/private_redis.js';
import { randomPrefix, testRedisUrl } from '../support/env.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the rate limit outage tests need the redis-server binary (apt-get install redis-server)');

let svc: TokenService | undefined;
let devices: DeviceStore;
let now = Date.now();
afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

/** A service with small limits (3 identities, 2 new rooms a minute), no LiveKit, on `deviceStore`. */
function options(deviceStore: DeviceStore): TokenServiceOptions {
  return {
    livekitUrl: 'ws://127.0.0.1:1',
    apiKey: 'unit-key',
    apiSecret: 'unit-secret-unit-secret-unit-secret-0123',
    port: 0,
    deviceStore,
    sessionEraser: null,
    agentSpawner: null,
    roomCloser: { deleteRoom: async () => undefined },
    identitiesPerMin: 3,
    newRoomsPerMin: 2,
    nowMs: () => now,
  };
}

/** Starts a service of {@link options} with `opts`. */
async function start(opts: Partial<TokenServiceOptions> = {}): Promise<TokenService> {
  devices = opts.deviceStore ?? new MemoryDeviceStore();
  svc = await startTokenService({ ...options(devices), ...opts });
  return svc;
}

/** POSTs `body` to `path`, optionally through a proxy that wrote `forwarded`. */
async function post(s: TokenService, path: string, body: unknown, forwarded?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (forwarded !== undefined) headers['x-forwarded-for'] = forwarded;
  const res = await fetch(`${s.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
}

const newIdentity = (s: TokenService, forwarded?: string) => post(s, '/api/identity', {}, forwarded);

/** A new device's credentials. */
async function device(s: TokenService): Promise<{ identity: string; deviceSecret: string }> {
  const r = await newIdentity(s);
  expect(r.status).toBe(201);
  return r.body as { identity: string; deviceSecret: string };
}

describe('new identities per client address', () => {
  it('reached directly: the fourth identity in a minute is refused with 429 and Retry-After, a forged X-Forwarded-For does not escape it, the next minute is open again', async () => {
    const s = await start();
    for (let i = 0; i < 3; i++) expect((await newIdentity(s)).status).toBe(201);
    const refused = await newIdentity(s);
    expect(refused).toMatchObject({ status: 429, retryAfter: '60', body: { error: 'too_many_requests', reason: 'rate_limited' } });
    expect(refused.body.identity).toBeUndefined();
    expect((await newIdentity(s, '203.0.113.77')).status).toBe(429);
    now += 60_000;
    expect((await newIdentity(s)).status).toBe(201);
  });

  it('behind a trusted proxy: each client has its own limit, and writing another address before the proxy’s entry does not reset it', async () => {
    const s = await start({ trustProxyHops: 1 });
    for (let i = 0; i < 3; i++) expect((await newIdentity(s, '203.0.113.1')).status).toBe(201);
    expect((await newIdentity(s, '203.0.113.1')).status).toBe(429);
    expect((await newIdentity(s, '198.51.100.9, 203.0.113.1')).status).toBe(429);
    // Another client behind the same proxy (same socket peer) is not affected.
    expect((await newIdentity(s, '203.0.113.2')).status).toBe(201);
  });

  it('behind a trusted proxy: an IPv6 client shares one limit across its /64, and another /64 has its own', async () => {
    const s = await start({ trustProxyHops: 1 });
    for (let i = 1; i <= 3; i++) expect((await newIdentity(s, `2001:db8:5:6::${i}`)).status).toBe(201);
    expect((await newIdentity(s, '2001:db8:5:6:ffff:1:2:3')).status).toBe(429);
    expect((await newIdentity(s, '2001:db8:5:7::1')).status).toBe(201);
  });

  it('with the limit at 0 there is none', async () => {
    const s = await start({ identitiesPerMin: 0 });
    for (let i = 0; i < 6; i++) expect((await newIdentity(s)).status).toBe(201);
  });
});

describe('new rooms per identity', () => {
  it('the third new room in a minute is refused with 429 and issues nothing; rejoining an issued room still works; a minute later a new room is issued', async () => {
    const s = await start();
    const d = await device(s);
    const first = await post(s, '/api/token', d);
    expect(first.status).toBe(200);
    expect((await post(s, '/api/token', d)).status).toBe(200);
    const refused = await post(s, '/api/token', d);
    expect(refused).toMatchObject({ status: 429, retryAfter: '60', body: { error: 'too_many_requests', reason: 'rate_limited' } });
    expect(refused.body.token).toBeUndefined();
    expect(await devices.rooms(d.identity)).toHaveLength(2);
    const rejoin = await post(s, '/api/token', { ...d, room: first.body.room });
    expect(rejoin).toMatchObject({ status: 200, body: { room: first.body.room, reused: true } });
    now += 60_000;
    expect((await post(s, '/api/token', d)).status).toBe(200);
  });

  it('counts only requests whose secret checks out: nobody can use up another identity’s rooms, and other identities keep their own', async () => {
    const s = await start();
    const victim = await device(s);
    for (let i = 0; i < 5; i++) expect((await post(s, '/api/token', { identity: victim.identity, deviceSecret: 'x'.repeat(43) })).status).toBe(403);
    expect((await post(s, '/api/token', victim)).status).toBe(200);
    expect((await post(s, '/api/token', victim)).status).toBe(200);
    expect((await post(s, '/api/token', victim)).status).toBe(429);
    const other = await device(s);
    expect((await post(s, '/api/token', other)).status).toBe(200);
  });

  it('with the limit at 0 there is none', async () => {
    const s = await start({ newRoomsPerMin: 0 });
    const d = await device(s);
    for (let i = 0; i < 5; i++) expect((await post(s, '/api/token', d)).status).toBe(200);
  });
});

describe('a device store outage does not use up a limit', () => {
  let redis: PrivateRedis | undefined;
  let admin: Redis | undefined;
  const stores: RedisDeviceStore[] = [];
  afterAll(async () => {
    for (const d of stores) await d.close();
    admin?.disconnect();
    await redis?.kill();
  });

  /** A service on a private Redis (started, or restarted empty), and an admin connection to it. */
  async function startOnPrivateRedis(): Promise<TokenService> {
    redis ??= new PrivateRedis(await freePort());
    if (!redis.isRunning) await redis.start();
    if (admin === undefined) {
      admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      admin.on('error', () => {}); // Redis is stopped on purpose
    }
    // A prefix of its own: the limits' counters live in this Redis too (a service per test).
    const store = new RedisDeviceStore({ url: redis.url, prefix: `rl${stores.length}:` });
    stores.push(store);
    return start({ deviceStore: store });
  }

  it('new identities: requests failing while Redis is down are not counted, and the limit is whole when it is back', async () => {
    const s = await startOnPrivateRedis();
    await redis?.kill();
    for (let i = 0; i < 4; i++) {
      const r = await newIdentity(s);
      expect(r).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
      expect(r.body.identity).toBeUndefined();
    }
    await redis?.start();
    for (let i = 0; i < 3; i++) expect((await newIdentity(s)).status).toBe(201);
    expect((await newIdentity(s)).status).toBe(429);
  });

  it('new rooms: requests whose room could not be stored are not counted, and the limit is whole once Redis takes writes again', async () => {
    const s = await startOnPrivateRedis();
    const d = await device(s);
    // Redis refuses the room write (ZADD) and nothing else: the secret still checks out.
    await admin?.call('ACL', 'SETUSER', 'default', '-zadd');
    try {
      for (let i = 0; i < 4; i++) {
        const r = await post(s, '/api/token', d);
        expect(r).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
        expect(r.body.token).toBeUndefined();
      }
      expect(await devices.rooms(d.identity)).toHaveLength(0);
    } finally {
      await admin?.call('ACL', 'SETUSER', 'default', '+zadd');
    }
    expect((await post(s, '/api/token', d)).status).toBe(200);
    expect((await post(s, '/api/token', d)).status).toBe(200);
    expect((await post(s, '/api/token', d)).status).toBe(429);
    expect(await devices.rooms(d.identity)).toHaveLength(2);
  });
});

describe('with a Redis, the limits are shared by every service process', () => {
  const prefix = randomPrefix('rate');
  const clients: Redis[] = [];
  const replicas: TokenService[] = [];
  afterAll(async () => {
    for (const r of replicas) await r.close();
    const admin = new Redis(testRedisUrl());
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.unlink(...keys);
    admin.disconnect();
    for (const c of clients) c.disconnect();
  });

  /** A service process of its own (its own client), on the shared Redis and prefix. */
  async function replica(): Promise<TokenService> {
    const client = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
    clients.push(client);
    const s = await startTokenService(options(new RedisDeviceStore({ client, prefix })));
    replicas.push(s);
    return s;
  }

  it('two processes behind one load balancer grant one limit between them, not one each; the counters name no address or identity', async () => {
    const [a, b] = [await replica(), await replica()];
    const statuses: number[] = [];
    for (const s of [a, b, a, b]) statuses.push((await newIdentity(s)).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    expect((await newIdentity(a)).status).toBe(429);
    now += 60_000;
    const dev = await device(a);
    expect((await post(a, '/api/token', dev)).status).toBe(200);
    expect((await post(b, '/api/token', dev)).status).toBe(200);
    expect((await post(a, '/api/token', dev)).status).toBe(429);
    expect((await post(b, '/api/token', dev)).status).toBe(429);
    const admin = new Redis(testRedisUrl());
    const counters = await admin.keys(`${prefix}{r.*`);
    admin.disconnect();
    expect(counters.length).toBeGreaterThanOrEqual(2);
    for (const k of counters) {
      expect(k).not.toContain(dev.identity);
      expect(k).not.toContain('127.0.0.1');
      expect(k).toMatch(/^.*\{r\.(identity|room)\.[A-Za-z0-9_-]{22}\}$/);
    }
  });

  it('a refund gives back only an event of the current window, never one of the next', async () => {
    const client = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
    clients.push(client);
    const limit = new RedisRateLimiter(client, prefix, 'export', 2, 60_000);
    const t0 = 1_700_000_000_000;
    expect(await limit.allow('k', t0)).toBe(true);
    expect(await limit.allow('k', t0 + 1)).toBe(true);
    // The second request failed before doing anything: given back, so one more fits.
    await limit.refund('k', t0 + 1);
    expect(await limit.allow('k', t0 + 3)).toBe(true);
    expect(await limit.allow('k', t0 + 4)).toBe(false);
    // A new window: a refund of an event of the old one changes nothing in it.
    expect(await limit.allow('k', t0 + 60_000)).toBe(true);
    expect(await limit.allow('k', t0 + 60_001)).toBe(true);
    await limit.refund('k', t0 + 3);
    expect(await limit.allow('k', t0 + 60_002)).toBe(false);
    // Another key has its own count.
    expect(await limit.allow('other', t0 + 60_002)).toBe(true);
  });

  it('refuses a limit name that would not make a key', () => {
    const client = new Redis(testRedisUrl(), { lazyConnect: true });
    clients.push(client);
    expect(() => new RedisRateLimiter(client, prefix, 'Bad Name}', 1, 1_000)).toThrow(/lower-case letters/);
    expect(() => new RedisRateLimiter(client, 'a{b', 'export', 1, 1_000)).toThrow(/must not contain/);
  });
});
