import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RecordingLogger } from '../../../lib/logger.js';
import { EVICTION_WARNING, checkEviction, evictionRiskIn } from '../../../lib/store/eviction.js';
import { watchRedis } from '../../../lib/store/redis_watch.js';
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
    const watch = watchRedis({ url: server.url }, logger);
    expect(await watch.result).toHaveLength(1);
    watch.stop();
    expect(logger.lines).toEqual([{ level: 'warn', msg: EVICTION_WARNING, fields: { redisMasters: [{ node: `127.0.0.1:${server.port}`, policy: 'allkeys-lfu', maxmemoryBytes: 64 * MiB }] } }]);
    expect(EVICTION_WARNING).toMatch(/noeviction/);

    await setPolicy('64mb', 'noeviction');
    const quiet = new RecordingLogger();
    const quietWatch = watchRedis({ url: server.url }, quiet);
    expect(await quietWatch.result).toEqual([]);
    quietWatch.stop();
    expect(quiet.lines.map((l) => l.level)).toEqual(['debug']);
  });

  it('reads the policy again while running and tells only what changed (a CONFIG SET after the start)', async () => {
    await setPolicy('64mb', 'allkeys-lru');
    const logger = new RecordingLogger();
    const seen: number[] = [];
    const infoCalls = async () => Number(/cmdstat_info:calls=(\d+)/.exec(String(await admin.info('commandstats')))?.[1] ?? 0);
    const watch = watchRedis({ url: server.url }, logger, { recheckMs: 100, onRisks: (r) => seen.push(r.length) });
    try {
      expect(await watch.result).toHaveLength(1);
      // Several more reads of an unchanged policy: nothing more is logged or reported.
      const calls = await infoCalls();
      await waitFor('three more reads', async () => (await infoCalls()) >= calls + 4, { timeoutMs: 10_000 });
      expect(logger.lines.map((l) => l.level)).toEqual(['warn']);
      expect(seen).toEqual([1]);

      // An operator fixes it: one info line, and the count goes to 0.
      await setPolicy('64mb', 'noeviction');
      await waitFor('the fix to be seen', () => seen.length === 2, { timeoutMs: 10_000 });
      expect(seen).toEqual([1, 0]);
      expect(logger.lines[1]).toEqual({ level: 'info', msg: expect.stringMatching(/no master evicts any more/), fields: {} });

      // Someone sets an evicting policy again, later a lower limit: warned each time, with what it is now.
      await setPolicy('32mb', 'volatile-lfu');
      await waitFor('the new risk to be seen', () => seen.length === 3, { timeoutMs: 10_000 });
      await admin.config('SET', 'maxmemory', '16mb');
      await waitFor('the new limit to be seen', () => seen.length === 4, { timeoutMs: 10_000 });
      const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.fields.redisMasters);
      expect(warnings).toEqual([
        [{ node: `127.0.0.1:${server.port}`, policy: 'allkeys-lru', maxmemoryBytes: 64 * MiB }],
        [{ node: `127.0.0.1:${server.port}`, policy: 'volatile-lfu', maxmemoryBytes: 32 * MiB }],
        [{ node: `127.0.0.1:${server.port}`, policy: 'volatile-lfu', maxmemoryBytes: 16 * MiB }],
      ]);
      expect(seen).toEqual([1, 0, 1, 1]);
    } finally {
      watch.stop();
    }
  });

  it('reads the policy only once with recheckMs 0', async () => {
    await setPolicy('64mb', 'allkeys-lru');
    const logger = new RecordingLogger();
    const watch = watchRedis({ url: server.url }, logger, { recheckMs: 0 });
    try {
      expect(await watch.result).toHaveLength(1);
      await setPolicy('64mb', 'noeviction');
      // Long enough for many reads, had it kept reading.
      await new Promise((r) => setTimeout(r, 500));
      expect(logger.lines.map((l) => l.level)).toEqual(['warn']);
    } finally {
      watch.stop();
    }
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

describe('the eviction check with no Redis to ask yet', () => {
  it('does not hold up the start, asks again until Redis answers, then warns once', async () => {
    const port = await freePort();
    const logger = new RecordingLogger();
    const watch = watchRedis({ url: `redis://127.0.0.1:${port}` }, logger, { timeoutMs: 1_000, retryMs: 100 });
    try {
      // Nothing there: only debug lines, one per attempt.
      await waitFor('two attempts', () => logger.lines.length >= 2, { timeoutMs: 10_000 });
      expect(new Set(logger.lines.map((l) => l.level))).toEqual(new Set(['debug']));
      // The Redis comes up (a container started after the worker), evicting.
      const late = new PrivateRedis(port, ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
      await late.start();
      try {
        expect(await watch.result).toEqual([{ node: `127.0.0.1:${port}`, policy: 'allkeys-lru', maxmemoryBytes: 64 * MiB }]);
        expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
      } finally {
        await late.kill();
      }
    } finally {
      watch.stop();
    }
  });

  it('keeps what it last read while Redis is away, and reads the restarted one (another configuration)', async () => {
    const port = await freePort();
    const first = new PrivateRedis(port, ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    await first.start();
    const logger = new RecordingLogger();
    const seen: number[] = [];
    const watch = watchRedis({ url: `redis://127.0.0.1:${port}` }, logger, { timeoutMs: 500, recheckMs: 100, onRisks: (r) => seen.push(r.length) });
    try {
      expect(await watch.result).toHaveLength(1);
      await first.kill();
      await waitFor('a read that fails', () => logger.lines.some((l) => l.msg.startsWith('could not check Redis')), { timeoutMs: 10_000 });
      // Redis being away is the stores' news, not a change of policy.
      expect(seen).toEqual([1]);
      expect(logger.lines.filter((l) => l.level !== 'debug').map((l) => l.level)).toEqual(['warn']);
      const second = new PrivateRedis(port);
      await second.start();
      try {
        await waitFor('the restarted Redis to be read', () => seen.length === 2, { timeoutMs: 10_000 });
        expect(seen).toEqual([1, 0]);
        expect(logger.lines.filter((l) => l.level === 'info')).toHaveLength(1);
      } finally {
        await second.kill();
      }
    } finally {
      watch.stop();
      await first.kill();
    }
  });

  it('logs nothing more once stopped (a service that closes)', async () => {
    const logger = new RecordingLogger();
    const watch = watchRedis({ url: `redis://127.0.0.1:${await freePort()}` }, logger, { timeoutMs: 500, retryMs: 50 });
    await waitFor('a first attempt', () => logger.lines.length >= 1, { timeoutMs: 10_000 });
    watch.stop();
    const seen = logger.lines.length;
    // Long enough for several more attempts, had it not stopped.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(logger.lines.length).toBe(seen);
  });

  it('a Redis that refuses INFO (an ACL without it) is logged once and not asked again', async () => {
    const server = new PrivateRedis(await freePort());
    await server.start();
    const admin = new Redis(server.url);
    try {
      await admin.call('ACL', 'SETUSER', 'checker', 'on', '>checker-pass', '~*', '+@all', '-info');
      const logger = new RecordingLogger();
      const watch = watchRedis({ url: `redis://checker:checker-pass@127.0.0.1:${server.port}` }, logger, { timeoutMs: 1_000, retryMs: 50 });
      try {
        await waitFor('the refusal', () => logger.lines.find((l) => l.level === 'info'), { timeoutMs: 10_000 });
        // Long enough for several more attempts, had it kept asking.
        await new Promise((r) => setTimeout(r, 500));
        // Only the error's code: Redis's text names the ACL user.
        expect(logger.lines).toEqual([{ level: 'info', msg: expect.stringMatching(/^Redis refused INFO/), fields: { code: 'NOPERM' } }]);
        expect(JSON.stringify(logger.lines)).not.toMatch(/checker/);
      } finally {
        watch.stop();
      }
    } finally {
      admin.disconnect();
      await server.kill();
    }
  });
});
