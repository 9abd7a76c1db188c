/**
 * Redis over TLS, configured the way an operator does it: a `rediss://` `REDIS_URL`, or
 * `REDIS_CLUSTER_NODES` or `REDIS_SENTINELS` with `REDIS_TLS=true`, and `REDIS_TLS_CA_FILE` for a
 * private CA; on real
 * private `redis-server`s listening for TLS with the test certificates (`test/fixtures/tls`). The
 * worker's stores, the token service and the sessions CLI reach them from the variables alone,
 * and a server whose certificate is not trusted is a store failure, never a plaintext fallback.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobStores } from '../../../agent/store.js';
import { recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import { KeyBuilder } from '../../../lib/store/keys.js';
import { loadWebConfig } from '../../../web/server/config.js';
import { DeviceKeys } from '../../../web/server/device_store.js';
import { startTokenService, type TokenService } from '../../../web/server/service.js';
import { randomPrefix } from '../../support/env.js';
import { JobStoresFromEnv, LIVEKIT_ENV, runSessionsCli as sessions } from '../../support/from_env.js';
import { PrivateCluster } from './private_cluster.js';
import { PrivateSentinel } from './private_sentinel.js';
import { PrivateRedis, TEST_TLS_DIR, canStartRedis, freePort, tlsServerArgs } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the TLS tests need the redis-server binary (apt-get install redis-server)');

const CA_FILE = join(TEST_TLS_DIR, 'ca.crt');

const tlsPort = await freePort();
const single = new PrivateRedis(await freePort(), tlsServerArgs(tlsPort));
await single.start();
/** A plaintext connection to the same server, to see what reached it. */
const plain = new Redis(single.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
const cluster = new PrivateCluster(3, undefined, true);
await cluster.start();
const sentinel = new PrivateSentinel({ tls: true });
await sentinel.start();

const jobs = new JobStoresFromEnv();
const services: TokenService[] = [];
afterAll(async () => {
  for (const s of services) await s.close();
  await jobs.close();
  plain.disconnect();
  await single.kill();
  await cluster.stop();
  await sentinel.stop();
});

/** A job's stores from the worker's variables; writes one session for `identity` and returns them. */
async function workerWrites(env: Record<string, string>, identity: string): Promise<JobStores> {
  const stores = jobs.make(env);
  // As a job process does in its prewarm (agent/main.ts), before its first claim: the claim then
  // meets an open connection (twice, under a full suite on a 2-core VM short of CPU, the first
  // claim on a new TLS Cluster connection was answered from memory).
  await stores.store.ping().catch(() => undefined);
  const key = { agentName: 'agent', identity };
  const claim = await stores.store.resumeAndClaim(key, `job-${identity}`, Date.now(), 30_000);
  if (claim.status !== 'claimed') throw new Error('claim failed');
  expect(claim.storeAvailable).toBe(true);
  await stores.store.save(recordWithTurn(newSessionRecord({ ...key, sessionId: `s-${identity}`, nowMs: Date.now(), profile: null }), { id: 't1', role: 'user', text: 'Over TLS.', createdAtMs: Date.now() }), claim.version, claim.lease);
  return stores;
}

/** Starts the token service from the variables `env` and has it issue one identity (stored in Redis). */
async function tokenServiceIssues(env: Record<string, string>): Promise<string> {
  const config = loadWebConfig({ ...LIVEKIT_ENV, LIVEKIT_URL: 'ws://127.0.0.1:1', ...env }, { loadDotenv: false });
  const svc = await startTokenService({ ...config, port: 0, agentSpawner: null, roomCloser: { deleteRoom: async () => undefined } });
  services.push(svc);
  const issued = await fetch(`${svc.url}/api/identity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(issued.status).toBe(201);
  return ((await issued.json()) as { identity: string }).identity;
}

const identitiesListed = (stdout: string) => stdout.trim().split('\n').map((l) => (JSON.parse(l) as { identity: string }).identity);

describe('Redis over TLS (rediss:// and REDIS_TLS_CA_FILE)', () => {
  it('the worker and the CLI reach a single Redis over TLS with a private CA; the token service stores devices there', async () => {
    const prefix = randomPrefix('tls-single');
    const env = { REDIS_URL: `rediss://127.0.0.1:${tlsPort}`, REDIS_TLS_CA_FILE: CA_FILE, REDIS_KEY_PREFIX: prefix };
    await workerWrites(env, 'alice');
    expect(await plain.exists(`${prefix}{s.${Buffer.from('agent').toString('base64url')}.${Buffer.from('alice').toString('base64url')}}:rec`)).toBe(1);

    const listed = await sessions(['list'], env);
    expect(listed.stderr).toBe('');
    expect(identitiesListed(listed.stdout)).toEqual(['alice']);

    const identity = await tokenServiceIssues(env);
    expect(await plain.exists(new DeviceKeys(prefix).device(identity))).toBe(1);
  });

  it('a server whose certificate the client does not trust (no REDIS_TLS_CA_FILE for a private CA) is a store failure', async () => {
    const r = await sessions(['list'], { REDIS_URL: `rediss://127.0.0.1:${tlsPort}`, REDIS_KEY_PREFIX: randomPrefix('tls-untrusted') });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^sessions: store_(unavailable|timeout) \(retryable\): /);
  });

  it('a Redis Cluster over TLS (REDIS_TLS=true): the worker writes across its masters and the CLI lists them', async () => {
    const prefix = randomPrefix('tls-cluster');
    const seed = cluster.tlsStartupNodes[0] as { host: string; port: number };
    const env = { REDIS_CLUSTER_NODES: `${seed.host}:${seed.port}`, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: CA_FILE, REDIS_KEY_PREFIX: prefix };
    const identities = ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => `caller-${x}`);
    for (const identity of identities) await workerWrites(env, identity);
    const listed = await sessions(['list'], env);
    expect(listed.stderr).toBe('');
    expect(identitiesListed(listed.stdout).sort()).toEqual(identities);
  });

  it('a Sentinel group over TLS (REDIS_TLS=true): the worker and the CLI reach the master through TLS sentinels, and after a failover the promoted replica, over TLS too', async () => {
    const prefix = randomPrefix('tls-sentinel');
    const sentinels = sentinel.sentinelAddresses.map((a) => `${a.host}:${a.port}`).join(',');
    const env = { REDIS_SENTINELS: sentinels, REDIS_SENTINEL_MASTER: sentinel.masterName, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: CA_FILE, REDIS_KEY_PREFIX: prefix };
    await workerWrites(env, 'before');
    const identity = await tokenServiceIssues(env);
    // Both reached the master (seen here on its plaintext port, which no client was given).
    const onMaster = new Redis(sentinel.masterPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      expect(await onMaster.exists(new DeviceKeys(prefix).device(identity))).toBe(1);
      expect(await onMaster.exists(new KeyBuilder(prefix).session({ agentName: 'agent', identity: 'before' }).rec)).toBe(1);
    } finally {
      onMaster.disconnect();
    }
    // Without the private CA the sentinels themselves are not trusted: a store failure.
    const untrusted = await sessions(['list'], { ...env, REDIS_TLS_CA_FILE: '' });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr.trim()).toMatch(/^sessions: store_(unavailable|timeout) \(retryable\): /);

    await sentinel.awaitReplicated();
    await sentinel.killMaster();
    await sentinel.awaitPromotion();
    // A new job resumes the conversation from the promoted replica (reached at its TLS port).
    const after = jobs.make(env);
    const claim = await after.store.resumeAndClaim({ agentName: 'agent', identity: 'before' }, 'job-after', Date.now(), 30_000);
    expect(claim.status === 'claimed' && claim.storeAvailable).toBe(true);
    expect(claim.status === 'claimed' && claim.record.status === 'found' && claim.record.record.history.turns.map((t) => t.text)).toEqual(['Over TLS.']);
    const listed = await sessions(['list'], env);
    expect(listed.stderr).toBe('');
    expect(identitiesListed(listed.stdout)).toEqual(['before']);
  });
});
