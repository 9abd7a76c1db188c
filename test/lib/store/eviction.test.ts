import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RecordingLogger } from '../../../lib/logger.js';
import { EVICTION_WARNING, checkEviction, evictionRiskIn, warnIfEvicting } from '../../../lib/store/eviction.js';
import { waitFor } from '../../support/wait.js';
import { PrivateRedis, canStartRedis, freePort } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the eviction check test needs the redis-server binary (apt-get install redis-server)');

const MiB = 1024 * 1024;

describe('evictionRiskIn (an INFO memory reply)', () => {
  const info = (maxmemory: string, policy: string) => `# Memory\r\nused_memory:1000\r\nmaxmemory:${maxmemory}\r\nmaxmemory_human:64.00M\r\nmaxmemory_policy:${policy}\r\n`;

  it('is a risk only with a memory limit and a policy that evicts', () => {
    expect(evictionRiskIn(info('67108864', 'allkeys-lru'), 'h:1')).toEqual({ node: 'h:1', policy: 'allkeys-lru', maxmemoryBytes: 64 * MiB });
    expect(evictionRiskIn(info('67108864', 'volatile-ttl'), 'h:1')).toMatchObject({ policy: 'volatile-ttl' });
    expect(evictionRiskIn(info('67108864', 'noeviction'), 'h:1')).toBeNull();
    expect(evictionRiskIn(info('0', 'allkeys-lru'), 'h:1')).toBeNull();
  });

  it('is no risk when the reply hides the fields (a proxy), rather than a guess', () => {
    expect(evictionRiskIn('# Memory\r\nused_memory:1000\r\n', 'h:1')).toBeNull();
    expect(evictionRiskIn(info('lots', 'allkeys-lru'), 'h:1')).toBeNull();
  });
});

describe('the eviction check on a real redis-server', () => {
  let server: PrivateRedis;
  let admin: Redis;

  beforeAll(async () => {
    server = new PrivateRedis(await freePort(), ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    await server.start();
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    admin?.disconnect();
    await server?.kill();
  });

  const setPolicy = async (maxmemory: string, policy: string) => {
    await admin.config('SET', 'maxmemory', maxmemory);
    await admin.config('SET', 'maxmemory-policy', policy);
  };

  it('names the server, its policy and its limit when it evicts', async () => {
    await setPolicy('64mb', 'allkeys-lru');
    expect(await checkEviction({ url: server.url })).toEqual([{ node: `127.0.0.1:${server.port}`, policy: 'allkeys-lru', maxmemoryBytes: 64 * MiB }]);
    // Every session key has a TTL, so a volatile-* policy evicts them too.
    await setPolicy('16mb', 'volatile-lru');
    expect(await checkEviction({ url: server.url })).toEqual([{ node: `127.0.0.1:${server.port}`, policy: 'volatile-lru', maxmemoryBytes: 16 * MiB }]);
  });

  it('finds nothing with noeviction, or with no memory limit whatever the policy', async () => {
    await setPolicy('64mb', 'noeviction');
    expect(await checkEviction({ url: server.url })).toEqual([]);
    await setPolicy('0', 'allkeys-lru');
    expect(await checkEviction({ url: server.url })).toEqual([]);
  });

  it('warns once with the masters in the fields, and nothing personal; a safe Redis gets only a debug line', async () => {
    await setPolicy('64mb', 'allkeys-lfu');
    const logger = new RecordingLogger();
    expect(await warnIfEvicting({ url: server.url }, logger)).toHaveLength(1);
    expect(logger.lines).toEqual([{ level: 'warn', msg: EVICTION_WARNING, fields: { redisMasters: [{ node: `127.0.0.1:${server.port}`, policy: 'allkeys-lfu', maxmemoryBytes: 64 * MiB }] } }]);
    expect(EVICTION_WARNING).toMatch(/noeviction/);

    await setPolicy('64mb', 'noeviction');
    const quiet = new RecordingLogger();
    expect(await warnIfEvicting({ url: server.url }, quiet)).toEqual([]);
    expect(quiet.lines.map((l) => l.level)).toEqual(['debug']);
  });

  it('leaves no connection open behind it', async () => {
    const clients = async () => String(await admin.client('LIST')).trim().split('\n').length;
    const before = await clients();
    await checkEviction({ url: server.url });
    await checkEviction({ url: server.url });
    // The server drops a closed connection as soon as it reads the close.
    await waitFor('the check connections to close', async () => (await clients()) === before, { timeoutMs: 5_000 });
  });
});

describe('the eviction check with no Redis to ask', () => {
  it('does not hold up the start: resolves null within its bound and logs only at debug', async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const logger = new RecordingLogger();
    const started = Date.now();
    expect(await warnIfEvicting({ url: closed }, logger, 1_000)).toBeNull();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(logger.lines.map((l) => l.level)).toEqual(['debug']);
  });
});
