/**
 * A Redis Cluster configured the way an operator does it (`REDIS_CLUSTER_NODES`: one seed node
 * is enough; `REDIS_PASSWORD`), on a real private password-protected 3-master cluster: the
 * worker's stores (sessions and notices),
 * the token service and the sessions CLI each reach it from the variables alone; and a cluster
 * that cannot be reached fails each call within its bound instead of holding it.
 */
import type { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobStores } from '../../../agent/store.js';
import { recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import type { SessionNotice } from '../../../lib/store/session_notices.js';
import { loadWebConfig } from '../../../web/server/config.js';
import { DeviceKeys } from '../../../web/server/device_store.js';
import { startTokenService, type TokenService } from '../../../web/server/service.js';
import { randomPrefix } from '../../support/env.js';
import { JobStoresFromEnv, runSessionsCli as sessions } from '../../support/from_env.js';
import { until } from './contract.js';
import { PrivateCluster } from './private_cluster.js';
import { canStartRedis, freePort } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the cluster configuration test needs the redis-server binary (apt-get install redis-server)');

const PASSWORD = 'cluster-pass';
const cluster = new PrivateCluster(3, PASSWORD);
await cluster.start();
const admin: Cluster = await cluster.client();
const prefix = randomPrefix('cluster-env');
const seed = cluster.startupNodes[0] as { host: string; port: number };
/** What an operator sets: one seed node of the cluster. */
const clusterEnv = { REDIS_CLUSTER_NODES: `${seed.host}:${seed.port}`, REDIS_PASSWORD: PASSWORD, REDIS_KEY_PREFIX: prefix };
const LEASE_MS = 30_000;
const identities = Array.from({ length: 12 }, (_, i) => `caller-${i}`);

const jobs = new JobStoresFromEnv();
const services: TokenService[] = [];
afterAll(async () => {
  for (const s of services) await s.close();
  await jobs.close();
  admin.disconnect();
  await cluster.stop();
});

/** A job's stores, built from the worker's variables as `agent/main.ts` builds them. */
function jobStores(): JobStores {
  return jobs.make(clusterEnv);
}

describe('REDIS_CLUSTER_NODES', () => {
  it('the worker: one job writes sessions spread over every master, another job resumes them, and a takeover notice crosses nodes', async () => {
    const a = jobStores();
    for (const identity of identities) {
      const key = { agentName: 'agent', identity };
      const claim = await a.store.resumeAndClaim(key, 'job-a', Date.now(), LEASE_MS);
      if (claim.status !== 'claimed') throw new Error('claim failed');
      expect(claim.storeAvailable).toBe(true);
      const record = recordWithTurn(newSessionRecord({ ...key, sessionId: `s-${identity}`, nowMs: Date.now(), profile: null }), { id: 't1', role: 'user', text: `I am ${identity}.`, createdAtMs: Date.now() });
      await a.store.save(record, claim.version, claim.lease);
    }
    const masters = new Set<string>();
    for (const identity of identities) {
      const slot = (await admin.call('CLUSTER', 'KEYSLOT', new RedisSessionStore({ client: admin, prefix }).keys.session({ agentName: 'agent', identity }).rec)) as number;
      masters.add(admin.slots[slot]?.[0] ?? '');
    }
    expect(masters.size).toBe(3);

    const b = jobStores();
    const seen: SessionNotice[] = [];
    await a.notices?.watch('caller-0', (n) => seen.push(n));
    for (const identity of identities) {
      const claim = await b.store.resumeAndClaim({ agentName: 'agent', identity }, 'job-b', Date.now(), LEASE_MS);
      expect(claim.status === 'claimed' && claim.record.status === 'found' && claim.record.record.history.turns.map((t) => t.text)).toEqual([`I am ${identity}.`]);
      expect(claim.status === 'claimed' && claim.previousOwner).toBe('job-a');
    }
    await b.notices?.announceTakeover({ agentName: 'agent', identity: 'caller-0' }, 'job-b', 2);
    await until(async () => seen.length > 0);
    expect(seen).toEqual([{ v: 1, kind: 'takeover', agentName: 'agent', owner: 'job-b', fence: 2 }]);
  });

  it('the token service: issues identities and rooms into the cluster, and forget erases the worker session there', async () => {
    const config = loadWebConfig({ LIVEKIT_URL: 'ws://127.0.0.1:1', LIVEKIT_API_KEY: 'unit-key', LIVEKIT_API_SECRET: 'unit-secret-unit-secret-unit-secret-0123', ...clusterEnv }, { loadDotenv: false });
    const svc = await startTokenService({ ...config, port: 0, agentSpawner: null, roomCloser: { deleteRoom: async () => undefined } });
    services.push(svc);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${svc.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    const device = (await post('/api/identity', {})).body as { identity: string; deviceSecret: string };
    expect(await admin.exists(new DeviceKeys(prefix).device(device.identity))).toBe(1);
    const token = await post('/api/token', device);
    expect(token.status).toBe(200);
    expect(await admin.zscore(new DeviceKeys(prefix).rooms(device.identity), String(token.body.room))).not.toBeNull();

    const worker = jobStores();
    const key = { agentName: 'agent', identity: device.identity };
    const claim = await worker.store.resumeAndClaim(key, 'job-w', Date.now(), LEASE_MS);
    if (claim.status !== 'claimed') throw new Error('claim failed');
    await worker.store.save(newSessionRecord({ ...key, sessionId: 's-web', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    const forgot = await post('/api/forget', device);
    expect(forgot).toMatchObject({ status: 200, body: { forgotten: true, sessionKeysErased: 1 } });
    expect(await new RedisSessionStore({ client: admin, prefix }).readRecord(key)).toEqual({ status: 'missing' });
  });

  it('the sessions CLI lists every session on every master', async () => {
    const r = await sessions(['list', '--count', '500'], clusterEnv);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const listed = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { identity: string }).identity);
    expect(listed.filter((i) => i.startsWith('caller-')).sort()).toEqual([...identities].sort());
  });

  it('a wrong REDIS_PASSWORD is a store failure (the password is used), and it is not printed', async () => {
    const r = await sessions(['list'], { ...clusterEnv, REDIS_PASSWORD: 'not-the-password' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^sessions: store_(unavailable|timeout) \(retryable\): /);
    expect(r.stderr + r.stdout).not.toMatch(/not-the-password|cluster-pass/);
  });

  it('a cluster that cannot be reached fails each call within its bound: the store, the worker greeting path and the CLI', async () => {
    const nowhere = { nodes: [{ host: '127.0.0.1', port: await freePort() }] };
    const store = new RedisSessionStore({ cluster: nowhere, prefix, commandTimeoutMs: 300, connectTimeoutMs: 300 });
    try {
      const started = Date.now();
      // Never ready: the command waits for the cluster no longer than its bound (`store_timeout`).
      await expect(store.readRecord({ agentName: 'agent', identity: 'x' })).rejects.toMatchObject({ code: expect.stringMatching(/^store_(unavailable|timeout)$/), retryable: true });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await store.dispose();
    }
    // The worker greets from memory after its bound (STORE_GREETING_BOUND_MS, 500 ms here).
    const job = jobs.make({ STORE_GREETING_BOUND_MS: '500', REDIS_CLUSTER_NODES: `127.0.0.1:${nowhere.nodes[0]?.port}` });
    const started = Date.now();
    const claim = await job.store.resumeAndClaim({ agentName: 'agent', identity: 'x' }, 'job-x', Date.now(), LEASE_MS);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(claim).toMatchObject({ status: 'claimed', storeAvailable: false });

    const r = await sessions(['forget', '--identity', 'someone'], { REDIS_CLUSTER_NODES: `127.0.0.1:${nowhere.nodes[0]?.port}` });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^sessions: store_(unavailable|timeout) \(retryable\): /);
    expect(r.stderr).not.toContain('someone');
  });
});
