/**
 * REDIS_REPLICA_ACKS on a Redis Cluster: a private cluster of three masters with one replica
 * each. `WAIT` has no key, so the stores send it to the master of each written slot; a replica
 * that stops answering (SIGSTOP) makes exactly the writes to its master's slots "not done".
 */
import calculateSlot from 'cluster-key-slot';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { newSessionRecord, type Turn } from '../../../lib/session/record.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import type { SessionKey } from '../../../lib/store/session_store.js';
import { DeviceKeys, RedisDeviceStore } from '../../../web/server/device_store.js';
import { randomPrefix } from '../../support/env.js';
import { JobStoresFromEnv } from '../../support/from_env.js';
import { until } from './contract.js';
import { PrivateCluster } from './private_cluster.js';
import { canStartRedis, type PrivateRedis } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the cluster test needs the redis-server binary (apt-get install redis-server)');

const cluster = new PrivateCluster(3, undefined, false, 1);
await cluster.start();
const admin: Cluster = await cluster.client();
const prefix = randomPrefix('cluster-acks');
const seed = cluster.startupNodes[0] as { host: string; port: number };
// A generous wait (a loopback replica acknowledges in about a millisecond, but CI runs other
// servers beside it): only a replica that is stopped misses it.
const acks = { replicaAcks: 1, replicaAckTimeoutMs: 1_000, commandTimeoutMs: 3_000 };
const store = new RedisSessionStore({ cluster: { nodes: [seed] }, prefix, ...acks });
const jobs = new JobStoresFromEnv();
const readers: Redis[] = [];

afterAll(async () => {
  await jobs.close();
  await store.dispose();
  for (const r of readers) r.disconnect();
  admin.disconnect();
  await cluster.stop();
});

const turn = (id: string): Turn => ({ id, role: 'user', text: `said ${id}`, createdAtMs: Date.now() });

/** The replica of the master that serves `key`'s slot. */
function replicaServing(key: string): PrivateRedis {
  const owner = admin.slots[calculateSlot(key)]?.[0];
  if (owner === undefined) throw new Error('slot map not loaded');
  return cluster.replicaOf(Number(owner.split(':').at(-1)));
}

/** A connection that reads from the replica serving `key` (READONLY). */
async function replicaReader(key: string): Promise<Redis> {
  const r = new Redis(replicaServing(key).port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  readers.push(r);
  await r.call('READONLY');
  return r;
}

/** Claims and saves a new session for `key` through `s`; returns its lease. */
async function open(s: RedisSessionStore, key: SessionKey) {
  const claim = await s.resumeAndClaim(key, 'job', Date.now(), 60_000);
  if (claim.status !== 'claimed') throw new Error('claim failed');
  await s.save(newSessionRecord({ ...key, sessionId: `s-${key.identity}`, nowMs: Date.now(), profile: null }), claim.version, claim.lease);
  return claim.lease;
}

/** Two sessions whose keys are served by different masters. */
function onTwoMasters(agentName: string): [SessionKey, SessionKey] {
  const keys = Array.from({ length: 24 }, (_, i) => ({ agentName, identity: `caller-${i}` }));
  const a = keys[0] as SessionKey;
  const b = keys.find((k) => replicaServing(store.keys.session(k).rec) !== replicaServing(store.keys.session(a).rec));
  if (b === undefined) throw new Error('every key on one master');
  return [a, b];
}

describe('REDIS_REPLICA_ACKS on a Redis Cluster (3 masters, one replica each)', () => {
  it('a write counts as done once the replica of its own master holds it, whichever master that is', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => ({ agentName: 'spread', identity: `caller-${i}` }));
    const replicas = new Set<PrivateRedis>();
    for (const key of keys) {
      const k = store.keys.session(key);
      replicas.add(replicaServing(k.rec));
      const lease = await open(store, key);
      await store.appendTurn(key, turn(`${key.identity}-t1`), lease);
      // Acknowledged: the replica already holds the turn when the call returns.
      expect(await (await replicaReader(k.turns)).lrange(k.turns, 0, -1)).toHaveLength(1);
    }
    expect(replicas.size).toBe(3);
  });

  it('a stopped replica makes the writes to its master\'s slots "not done" (retryable, nothing personal), and only those', async () => {
    const [a, b] = onTwoMasters('stopped');
    const leaseA = await open(store, a);
    const leaseB = await open(store, b);
    const replica = replicaServing(store.keys.session(a).rec);
    replica.pause();
    try {
      const refused = await store.appendTurn(a, turn('a-1'), leaseA).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'store_unavailable', retryable: true });
      expect(String((refused as Error).message)).not.toMatch(/stopped|caller/);
      await expect(store.appendTurn(b, turn('b-1'), leaseB)).resolves.toBeGreaterThan(0);
    } finally {
      replica.resume();
    }
    await expect(store.appendTurn(a, turn('a-2'), leaseA)).resolves.toBeGreaterThan(0);
    const k = store.keys.session(a);
    expect(await (await replicaReader(k.turns)).lrange(k.turns, 0, -1)).toHaveLength(2);
  });

  it('forget waits for the replica of every master it erased on: one stopped replica means not done, and it can be asked again', async () => {
    const identity = 'forget-me';
    // Sessions under several agent names: several slots, on more than one master.
    const keys = ['ag-a', 'ag-b', 'ag-c', 'ag-d', 'ag-e', 'ag-f'].map((agentName) => ({ agentName, identity }));
    for (const key of keys) await open(store, key);
    const replicas = new Set(keys.map((k) => replicaServing(store.keys.session(k).rec)));
    expect(replicas.size).toBeGreaterThan(1);
    const stopped = replicaServing(store.keys.session(keys[5] as SessionKey).rec);
    stopped.pause();
    try {
      await expect(store.forget(identity)).rejects.toMatchObject({ code: 'store_unavailable', retryable: true });
    } finally {
      stopped.resume();
    }
    // Asked again (the CLI or the web client's "Forget me"): done, and nothing is left.
    await store.forget(identity);
    for (const key of keys) expect(await store.readRecord(key)).toEqual({ status: 'missing' });
  });

  it('the worker from its variables (REDIS_CLUSTER_NODES + REDIS_REPLICA_ACKS) goes degraded while a replica is stopped and replays every turn once it is back', async () => {
    const { store: tiered } = jobs.make({ REDIS_CLUSTER_NODES: `${seed.host}:${seed.port}`, REDIS_KEY_PREFIX: prefix, REDIS_REPLICA_ACKS: '1', REDIS_REPLICA_ACK_TIMEOUT_MS: '1000' });
    const key = { agentName: 'worker', identity: 'caller' };
    const claim = await tiered.resumeAndClaim(key, 'job-w', Date.now(), 60_000);
    if (claim.status !== 'claimed') throw new Error('claim failed');
    await tiered.save(newSessionRecord({ ...key, sessionId: 's-worker', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    const replica = replicaServing(store.keys.session(key).rec);
    replica.pause();
    const said: string[] = [];
    try {
      for (const id of ['w1', 'w2', 'w3']) {
        await tiered.appendTurn(key, turn(id), claim.lease);
        said.push(id);
      }
      expect(tiered.isDegraded).toBe(true);
    } finally {
      replica.resume();
    }
    await until(async () => !tiered.isDegraded && tiered.pendingReplayCount === 0, 15_000);
    const k = store.keys.session(key);
    const onReplica = await replicaReader(k.rec);
    await until(async () => (await store.readRecord(key)).status === 'found');
    const r = await store.readRecord(key);
    const stored = r.status === 'found' ? r.record.history.turns.map((t) => t.id) : [];
    expect(stored).toEqual(said);
    // The replay was acknowledged like any write: the replica holds what the master holds.
    expect(await onReplica.get(k.rec)).toBe(await admin.get(k.rec));
  });

  it('the token service\'s device store: an identity the replica did not acknowledge is not handed out, and not left behind', async () => {
    // Its commands are bounded at 1 s: the replicas get half of that.
    const devices = new RedisDeviceStore({ cluster: { nodes: [seed] }, prefix, replicaAcks: 1, replicaAckTimeoutMs: 500 });
    try {
      const identity = 'device-1';
      const key = new DeviceKeys(prefix).device(identity);
      const record = { v: 1 as const, secretHash: 'a'.repeat(64), createdAtMs: Date.now() };
      const replica = replicaServing(key);
      replica.pause();
      try {
        await expect(devices.create(identity, record, 60_000)).rejects.toMatchObject({ code: 'store_unavailable', retryable: true });
      } finally {
        replica.resume();
      }
      expect(await admin.exists(key)).toBe(0);
      await expect(devices.create(identity, record, 60_000)).resolves.toBe(true);
      expect(await (await replicaReader(key)).exists(key)).toBe(1);
    } finally {
      await devices.close();
    }
  });
});
