import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RecordingLogger } from '../../../lib/logger.js';
import { CLOCK_SKEW_WARNING, CLOCK_SKEW_WARN_MS, clockSkews, largestSkewMs, skewed, timeReplyMs } from '../../../lib/store/clock_skew.js';
import { watchRedis } from '../../../lib/store/redis_watch.js';
import { waitFor } from '../../support/wait.js';
import { PrivateRedis, canStartRedis, freePort } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the clock check test needs the redis-server binary (apt-get install redis-server)');

describe('reading a TIME reply', () => {
  it('is epoch ms with the microseconds', () => {
    expect(timeReplyMs(['1700000000', '123456'])).toBe(1_700_000_000_123.456);
  });

  it('refuses anything else', () => {
    for (const bad of [null, 'x', ['1'], ['a', 'b'], ['1', '2', '3']]) expect(() => timeReplyMs(bad)).toThrow(/TIME did not answer/);
  });
});

describe('skews that matter', () => {
  const at = (skewMs: number, uncertaintyMs = 1) => ({ node: 'h:1', skewMs, uncertaintyMs });

  it('counts only a skew beyond a second whatever the measurement could be off by', () => {
    expect(CLOCK_SKEW_WARN_MS).toBe(1_000);
    expect(skewed([at(900), at(-900), at(1_001, 2)])).toEqual([]);
    expect(skewed([at(1_500), at(-2_000, 5)])).toEqual([at(1_500), at(-2_000, 5)]);
  });

  it('reports the largest by magnitude, with its sign', () => {
    expect(largestSkewMs([])).toBe(0);
    expect(largestSkewMs([at(300), at(-1_200), at(900)])).toBe(-1_200);
  });
});

describe('the clock check on a real redis-server', () => {
  let server: PrivateRedis;
  let client: Redis;

  beforeAll(async () => {
    server = new PrivateRedis(await freePort());
    await server.start();
    client = new Redis(server.url);
  });

  afterAll(async () => {
    client?.disconnect();
    await server?.kill();
  });

  it('finds this machine agreeing with its own Redis, within the measurement', async () => {
    const [s] = await clockSkews(client);
    expect(s?.node).toBe(`127.0.0.1:${server.port}`);
    // Same machine, same clock: off by no more than the round trip it was measured over.
    expect(Math.abs(s?.skewMs ?? Number.NaN)).toBeLessThanOrEqual((s?.uncertaintyMs ?? 0) + 1);
    expect(skewed(await clockSkews(client))).toEqual([]);
  });

  it('measures a clock that is ahead or behind, with its sign', async () => {
    const [ahead] = await clockSkews(client, () => Date.now() + 3_000);
    expect(Math.abs((ahead?.skewMs ?? 0) - 3_000)).toBeLessThanOrEqual((ahead?.uncertaintyMs ?? 0) + 1);
    const [behind] = await clockSkews(client, () => Date.now() - 7_000);
    expect(Math.abs((behind?.skewMs ?? 0) + 7_000)).toBeLessThanOrEqual((behind?.uncertaintyMs ?? 0) + 1);
  });

  it('warns once when this clock drifts off, reports every measure, and tells when it agrees again', async () => {
    let offsetMs = 0;
    const logger = new RecordingLogger();
    const measured: number[] = [];
    const watch = watchRedis({ url: server.url }, logger, { recheckMs: 100, clock: { now: () => Date.now() + offsetMs, onSkew: (s) => measured.push(largestSkewMs(s)) } });
    try {
      await waitFor('a first measure', () => measured.length >= 1, { timeoutMs: 10_000 });
      // In step: a debug line only (and the memory policy's: this Redis has no limit).
      expect(logger.lines.map((l) => l.level)).toEqual(['debug', 'debug']);

      // NTP stops and the clock runs 5 s ahead.
      offsetMs = 5_000;
      await waitFor('the warning', () => logger.lines.some((l) => l.level === 'warn'), { timeoutMs: 10_000 });
      const warning = logger.lines.find((l) => l.level === 'warn');
      expect(warning?.msg).toBe(CLOCK_SKEW_WARNING);
      const [off] = warning?.fields.clockSkews as { node: string; skewMs: number; uncertaintyMs: number }[];
      expect(off?.node).toBe(`127.0.0.1:${server.port}`);
      expect(Math.abs((off?.skewMs ?? 0) - 5_000)).toBeLessThanOrEqual((off?.uncertaintyMs ?? 0) + 1);
      // Every round is measured (for the gauge), but warned about only once.
      const seen = measured.length;
      await waitFor('three more measures', () => measured.length >= seen + 3, { timeoutMs: 10_000 });
      expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
      expect(measured.at(-1)).toBeGreaterThan(4_900);

      // Fixed: one info line.
      offsetMs = 0;
      await waitFor('the clock to agree again', () => logger.lines.some((l) => l.level === 'info'), { timeoutMs: 10_000 });
      expect(logger.lines.filter((l) => l.level === 'info').map((l) => l.msg)).toEqual([expect.stringMatching(/agrees with Redis's again/)]);
    } finally {
      watch.stop();
    }
  });

  it('a Redis whose ACL refuses TIME: the clock is logged as not checked, once, and the memory policy still is', async () => {
    const admin = new Redis(server.url);
    try {
      await admin.call('ACL', 'SETUSER', 'notime', 'on', '>notime-pass', '~*', '+@all', '-time');
      await admin.config('SET', 'maxmemory', '64mb');
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const logger = new RecordingLogger();
      const watch = watchRedis({ url: `redis://notime:notime-pass@127.0.0.1:${server.port}` }, logger, { recheckMs: 50, clock: {} });
      try {
        expect(await watch.result).toHaveLength(1);
        await waitFor('the refusal', () => logger.lines.some((l) => l.level === 'info'), { timeoutMs: 10_000 });
        // Long enough for several more rounds, had it kept asking for TIME.
        await new Promise((r) => setTimeout(r, 300));
        expect(logger.lines.filter((l) => l.level === 'info')).toEqual([{ level: 'info', msg: expect.stringMatching(/^Redis refused TIME/), fields: { code: 'NOPERM' } }]);
        expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1); // the memory policy's
        expect(JSON.stringify(logger.lines)).not.toMatch(/notime/);
      } finally {
        watch.stop();
      }
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      admin.disconnect();
    }
  });
});
