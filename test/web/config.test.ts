/**
 * The token service's configuration: the Redis variables are the worker's (`REDIS_URL` or a
 * Sentinel group), parsed and checked the same way; every error names its variable and never
 * echoes a password or a sentinel entry.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.js';
import { loadWebConfig } from '../../web/server/config.js';

const base = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' };
const load = (env: Record<string, string | undefined>) => loadWebConfig(env, { loadDotenv: false });

/** The ConfigError's message, or a failure when none was thrown. */
function configError(env: Record<string, string | undefined>): string {
  try {
    load(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadWebConfig: LiveKit', () => {
  it('with no LiveKit configured, uses the local development server with its own key, not a key set elsewhere', () => {
    const c = loadWebConfig({ PVA_ENV_FILE: '', LIVEKIT_URL: '', LIVEKIT_API_KEY: 'a-cloud-key', LIVEKIT_API_SECRET: 'a-cloud-secret-of-at-least-32-characters' });
    expect([c.livekitUrl, c.apiKey]).toEqual(['ws://127.0.0.1:7880', 'devkey']);
  });
});

describe('loadWebConfig: Redis', () => {
  it('without Redis variables keeps devices in memory', () => {
    const c = load(base);
    expect(c.redisUrl).toBeUndefined();
    expect(c.redisSentinel).toBeUndefined();
  });

  it('reads REDIS_URL', () => {
    const c = load({ ...base, REDIS_URL: ' redis://127.0.0.1:6379 ' });
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.redisSentinel).toBeUndefined();
  });

  it('reads a Sentinel group as the worker does: REDIS_SENTINELS (port 26379 by default, IPv6 in brackets), the master, both passwords', () => {
    const c = load({
      ...base,
      REDIS_SENTINELS: ' sentinel-a:26380, sentinel_b ,[::1]:26381 ',
      REDIS_SENTINEL_MASTER: 'voice-master',
      REDIS_PASSWORD: 'data-pass',
      REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
      REDIS_KEY_PREFIX: 'app:',
    });
    expect(c.redisUrl).toBeUndefined();
    expect(c.redisSentinel).toEqual({
      sentinels: [
        { host: 'sentinel-a', port: 26_380 },
        { host: 'sentinel_b', port: 26_379 },
        { host: '::1', port: 26_381 },
      ],
      name: 'voice-master',
      password: 'data-pass',
      sentinelPassword: 'sentinel-pass',
    });
    expect(c.redisKeyPrefix).toBe('app:');
    expect(c.replicaAcks).toEqual({ replicaAcks: 0, replicaAckTimeoutMs: 100 });
    expect(load({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_REPLICA_ACKS: '2', REDIS_REPLICA_ACK_TIMEOUT_MS: '250' }).replicaAcks).toEqual({ replicaAcks: 2, replicaAckTimeoutMs: 250 });
    expect(load({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).redisPolicyCheckMs).toBe(300_000);
    expect(load({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_POLICY_CHECK_MS: '0' }).redisPolicyCheckMs).toBe(0);
    // The worker's keyring, to open sealed conversations for "Download my data".
    expect(load({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).encryptionKeys).toBeUndefined();
    const key = Buffer.alloc(32, 1).toString('base64');
    expect(load({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', STORE_ENCRYPTION_KEYS: `k2:${key},k1:${key}` }).encryptionKeys?.currentKeyId).toBe('k2');
    expect(load({ ...base, REDIS_SENTINELS: '10.0.0.5', REDIS_SENTINEL_MASTER: 'm' }).redisSentinel).toEqual({ sentinels: [{ host: '10.0.0.5', port: 26_379 }], name: 'm' });
  });

  it('reads a Redis Cluster as the worker does: REDIS_CLUSTER_NODES and REDIS_PASSWORD', () => {
    const c = load({ ...base, REDIS_CLUSTER_NODES: 'node-a:7000,node-b', REDIS_PASSWORD: 'data-pass' });
    expect([c.redisUrl, c.redisSentinel]).toEqual([undefined, undefined]);
    expect(c.redisCluster).toEqual({ nodes: [{ host: 'node-a', port: 7_000 }, { host: 'node-b', port: 6_379 }], password: 'data-pass' });
  });

  const sentinels = { REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_MASTER: 'mymaster' };
  const bad: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['REDIS_URL with REDIS_SENTINELS', { ...base, ...sentinels, REDIS_URL: 'redis://127.0.0.1:6379' }, /^REDIS_URL, REDIS_SENTINELS\/REDIS_SENTINEL_MASTER and REDIS_CLUSTER_NODES are mutually exclusive/],
    ['REDIS_SENTINELS without a master name', { ...base, REDIS_SENTINELS: '127.0.0.1:26379' }, /^REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set/],
    ['REDIS_SENTINEL_MASTER without sentinels', { ...base, REDIS_SENTINEL_MASTER: 'mymaster' }, /^REDIS_SENTINELS is required when REDIS_SENTINEL_MASTER is set/],
    ['a sentinel port out of range', { ...base, ...sentinels, REDIS_SENTINELS: 'a:1,b:70000' }, /^REDIS_SENTINELS must be a comma-separated list of host:port; entry 2 of 2 is not/],
    ['an empty sentinel entry', { ...base, ...sentinels, REDIS_SENTINELS: 'a:1,' }, /^REDIS_SENTINELS must be a comma-separated list/],
    ['a master name with a space', { ...base, ...sentinels, REDIS_SENTINEL_MASTER: 'my master' }, /^REDIS_SENTINEL_MASTER must be one master name, without spaces/],
    ['REDIS_PASSWORD without sentinels', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PASSWORD: 'x' }, /^REDIS_PASSWORD is only used with REDIS_SENTINELS/],
    ['REDIS_SENTINEL_PASSWORD without sentinels', { ...base, REDIS_SENTINEL_PASSWORD: 'x' }, /^REDIS_SENTINEL_PASSWORD is only used with REDIS_SENTINELS/],
    ['a REDIS_URL that is not redis://', { ...base, REDIS_URL: 'http://x' }, /^REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
    ['negative replica acks', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_REPLICA_ACKS: '-1' }, /^REDIS_REPLICA_ACKS must be a non-negative integer, got "-1"/],
    ['a zero replica ack wait', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_REPLICA_ACK_TIMEOUT_MS: '0' }, /^REDIS_REPLICA_ACK_TIMEOUT_MS must be a positive integer/],
    ['a keyring key of the wrong size', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', STORE_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, /^STORE_ENCRYPTION_KEYS: key k1 must decode to 32 bytes/],
    ['a policy check interval that is not a number', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_POLICY_CHECK_MS: 'often' }, /^REDIS_POLICY_CHECK_MS must be a non-negative integer, got "often"/],
  ];
  for (const [name, env, re] of bad) {
    it(`rejects ${name} with a ConfigError naming the variable`, () => {
      expect(configError(env)).toMatch(re);
    });
  }

  it('never echoes a password, a URL or a sentinel entry (it may hold a password) in its errors', () => {
    const secrets = /hunter2|data-pass|sentinel-pass|url-pass/;
    const messages = [
      configError({ ...base, REDIS_SENTINELS: 'ok:1,user:hunter2@host:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_PASSWORD: 'data-pass', REDIS_SENTINEL_PASSWORD: 'sentinel-pass' }),
      configError({ ...base, ...sentinels, REDIS_URL: 'redis://:url-pass@127.0.0.1:6379', REDIS_PASSWORD: 'data-pass' }),
      configError({ ...base, REDIS_URL: 'redis://:url-pass@127.0.0.1:6379', REDIS_PASSWORD: 'data-pass', REDIS_SENTINEL_PASSWORD: 'sentinel-pass' }),
      configError({ ...base, REDIS_URL: 'http://:url-pass@127.0.0.1:6379' }),
    ];
    for (const m of messages) expect(m).not.toMatch(secrets);
    expect(messages[0]).toMatch(/^REDIS_SENTINELS /);
    expect(messages[2]).toMatch(/REDIS_PASSWORD is only used.*REDIS_SENTINEL_PASSWORD is only used/);
  });
});

describe('loadWebConfig: WEB_TRUST_PROXY_HOPS', () => {
  it('listens on loopback unless told otherwise: a blank WEB_HOST (as .env.example leaves it) is the default, not every interface', () => {
    expect(load(base).host).toBe('127.0.0.1');
    expect(load({ ...base, WEB_HOST: '' }).host).toBe('127.0.0.1');
    expect(load({ ...base, WEB_HOST: '  ' }).host).toBe('127.0.0.1');
    expect(load({ ...base, WEB_HOST: ' 0.0.0.0 ' }).host).toBe('0.0.0.0');
    expect(load({ ...base, REDIS_KEY_PREFIX: '' }).redisKeyPrefix).toBe('pva:');
  });

  it('reads the worker\'s SESSION_TTL_MS (30 min), how long an erasure\'s mark holds; a bad value names it', () => {
    expect(load(base).sessionTtlMs).toBe(1_800_000);
    expect(load({ ...base, SESSION_TTL_MS: '7200000' }).sessionTtlMs).toBe(7_200_000);
    expect(() => load({ ...base, SESSION_TTL_MS: 'soon' })).toThrow(/^SESSION_TTL_MS /);
  });

  it('trusts no proxy by default and reads a hop count', () => {
    expect(load(base).trustProxyHops).toBe(0);
    expect(load({ ...base, WEB_TRUST_PROXY_HOPS: ' 2 ' }).trustProxyHops).toBe(2);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['a negative count', '-1', /^WEB_TRUST_PROXY_HOPS must be a non-negative integer, got "-1"/],
    ['a fraction', '1.5', /^WEB_TRUST_PROXY_HOPS must be a non-negative integer, got "1.5"/],
    ['a word', 'yes', /^WEB_TRUST_PROXY_HOPS must be a non-negative integer, got "yes"/],
    ['more hops than any deployment has', '11', /^WEB_TRUST_PROXY_HOPS must be at most 10/],
  ];
  for (const [name, value, re] of bad) {
    it(`rejects ${name} with a ConfigError naming the variable`, () => {
      expect(configError({ ...base, WEB_TRUST_PROXY_HOPS: value })).toMatch(re);
    });
  }
});

describe('loadWebConfig: limits', () => {
  it('allows 30 new identities per address and 10 new rooms per identity a minute by default; 0 turns a limit off', () => {
    expect(load(base)).toMatchObject({ identitiesPerMin: 30, newRoomsPerMin: 10 });
    expect(load({ ...base, WEB_IDENTITIES_PER_MIN: '0', WEB_NEW_ROOMS_PER_MIN: '4' })).toMatchObject({ identitiesPerMin: 0, newRoomsPerMin: 4 });
  });

  it('rejects a limit that is not a non-negative integer, naming the variable', () => {
    expect(configError({ ...base, WEB_IDENTITIES_PER_MIN: '-3' })).toMatch(/^WEB_IDENTITIES_PER_MIN must be a non-negative integer, got "-3"/);
    expect(configError({ ...base, WEB_NEW_ROOMS_PER_MIN: 'many' })).toMatch(/^WEB_NEW_ROOMS_PER_MIN must be a non-negative integer, got "many"/);
  });
});

describe('the token service process (npm run web)', () => {
  it('with REDIS_SENTINELS but no master prints one clear error naming REDIS_SENTINEL_MASTER, without the passwords, and exits 2', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PVA_ENV_FILE: '',
      ...base,
      REDIS_SENTINELS: '127.0.0.1:1',
      REDIS_PASSWORD: 'data-pass',
      REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
    };
    const r = await promisify(execFile)(`${root}/node_modules/.bin/tsx`, ['web/server/main.ts'], { cwd: root, env, encoding: 'utf8', timeout: 20_000 }).then(
      (ok) => ({ code: 0, stderr: ok.stderr }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^web: configuration error: REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set/);
    expect(r.stderr).not.toMatch(/data-pass|sentinel-pass/);
  });
});
