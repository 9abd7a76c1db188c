import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSessionRecord } from '../../../lib/session/record.js';
import { PayloadCipher } from '../../../lib/store/crypto.js';
import { clockSkews } from '../../../lib/store/clock_skew.js';
import { evictionRisks } from '../../../lib/store/eviction.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import type { SessionKey } from '../../../lib/store/session_store.js';
import { randomPrefix } from '../../support/env.js';
import { sessionStoreContract } from './contract.js';
import { PrivateCluster } from './private_cluster.js';
import { canStartRedis } from './private_redis.js';
import { tamperRecordWith } from './redis_support.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the cluster test needs the redis-server binary (apt-get install redis-server)');

// A real three-master Redis Cluster: every script's keys must share a slot (hash tags), and
// whatever spans sessions (listing, forget) must work across nodes.
const cluster = new PrivateCluster(3);
await cluster.start();
const client: Cluster = await cluster.client();

afterAll(async () => {
  client.disconnect();
  await cluster.stop();
});

sessionStoreContract({
  name: 'RedisSessionStore on a 3-master Redis Cluster',
  make: async (opts) => new RedisSessionStore({ ...opts, client, prefix: randomPrefix('cluster') }),
  tamper: tamperRecordWith(client),
  // The cluster is private and discarded after the file.
  cleanup: async () => {},
});

describe('RedisSessionStore across cluster nodes', () => {
  let store: RedisSessionStore;
  const keys: SessionKey[] = Array.from({ length: 24 }, (_, i) => ({ agentName: i % 2 === 0 ? 'ag-a' : 'ag-b', identity: `caller-${i}` }));

  beforeAll(async () => {
    store = new RedisSessionStore({ client, prefix: randomPrefix('spread') });
    for (const key of keys) {
      const nowMs = Date.now();
      const claim = await store.resumeAndClaim(key, 'job', nowMs, 30_000);
      if (claim.status !== 'claimed') throw new Error('claim failed');
      await store.save(newSessionRecord({ ...key, sessionId: `s-${key.identity}`, nowMs, profile: null }), claim.version, claim.lease);
    }
  });

  it('spreads sessions over every master, and lists all of them page by page', async () => {
    const owners = new Set<string>();
    for (const key of keys) {
      const slot = (await client.call('CLUSTER', 'KEYSLOT', store.keys.session(key).rec)) as number;
      const node = client.slots[slot]?.[0];
      if (node !== undefined) owners.add(node);
    }
    expect(owners.size).toBe(3);

    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await store.listSessions({ cursor, count: 5 });
      listed.push(...page.items.map((k) => `${k.agentName}/${k.identity}`));
      cursor = page.cursor;
    } while (cursor !== null);
    expect(new Set(listed)).toEqual(new Set(keys.map((k) => `${k.agentName}/${k.identity}`)));
  });

  it('forgets an identity under every agent, whichever nodes hold its sessions', async () => {
    const identity = 'two-agents';
    for (const agentName of ['ag-a', 'ag-b']) {
      const key = { agentName, identity };
      const claim = await store.resumeAndClaim(key, 'job', Date.now(), 30_000);
      if (claim.status !== 'claimed') throw new Error('claim failed');
      await store.save(newSessionRecord({ ...key, sessionId: `s-${agentName}`, nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    }
    expect(await store.forget(identity)).toEqual({ sessionKeysErased: 2 });
    for (const agentName of ['ag-a', 'ag-b']) expect((await store.readRecord({ agentName, identity })).status).toBe('missing');
    expect((await store.readRecord(keys[0] as SessionKey)).status).toBe('found');
  });

  it('reseals every stored session on every node under a new key (key rotation: one script per session, its keys in one slot)', async () => {
    const keyring = { currentKeyId: 'k1', keys: { k1: new Uint8Array(32).fill(7) } };
    const sealing = new RedisSessionStore({ client, prefix: store.keys.prefix, cipher: new PayloadCipher(keyring) });
    let resealed = 0;
    const seen = new Set<string>();
    let cursor: string | null = null;
    do {
      const page = await sealing.listStoredSessions({ cursor, count: 5 });
      for (const key of page.items) {
        seen.add(`${key.agentName}/${key.identity}`);
        resealed += (await sealing.resealSession(key)).resealed;
      }
      cursor = page.cursor;
    } while (cursor !== null);
    expect(seen).toEqual(new Set(keys.map((k) => `${k.agentName}/${k.identity}`)));
    expect(resealed).toBe(keys.length * 3); // record, its archive copy, profile
    for (const key of keys) {
      expect((await sealing.readRecord(key)).status).toBe('found');
      expect((await store.readRecord(key)).status).toBe('invalid'); // sealed now: the keyless store cannot read it
    }
  });
});

describe('the eviction check on a Cluster', () => {
  it('asks every master and names the one that may evict', async () => {
    await client.ping();
    expect(await evictionRisks(client)).toEqual([]);
    const [evicting] = client.nodes('master');
    if (evicting === undefined) throw new Error('no master');
    await evicting.config('SET', 'maxmemory', '256mb');
    await evicting.config('SET', 'maxmemory-policy', 'volatile-lfu');
    try {
      expect(await evictionRisks(client)).toEqual([{ node: `127.0.0.1:${evicting.options.port}`, policy: 'volatile-lfu', maxmemoryBytes: 256 * 1024 * 1024 }]);
    } finally {
      await evicting.config('SET', 'maxmemory', '0');
      await evicting.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });
});

describe('the clock check on a Cluster', () => {
  it('measures this process against every master', async () => {
    await client.ping();
    const masters = client.nodes('master').map((n) => `127.0.0.1:${n.options.port}`);
    const skews = await clockSkews(client, () => Date.now() + 4_000);
    expect(skews.map((s) => s.node).sort()).toEqual([...masters].sort());
    for (const s of skews) expect(Math.abs(s.skewMs - 4_000)).toBeLessThanOrEqual(s.uncertaintyMs + 1);
  });
});
