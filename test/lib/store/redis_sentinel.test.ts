import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import type { Turn } from '../../../lib/session/record.js';
import { checkEviction } from '../../../lib/store/eviction.js';
import { createBoundedRedis } from '../../../lib/store/redis_connection.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { SessionNotices } from '../../../lib/store/session_notices.js';
import type { SessionNotice } from '../../../lib/store/session_notices.js';
import { randomPrefix } from '../../support/env.js';
import { sessionStoreContract, until } from './contract.js';
import { canStartRedis } from './private_redis.js';
import { PrivateSentinel } from './private_sentinel.js';
import { tamperRecordWith } from './redis_support.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the Sentinel test needs the redis-server binary (apt-get install redis-server)');

const LEASE_MS = 30_000;

// A real Sentinel deployment (master, replica, three sentinels): the client asks the sentinels
// where the master is. Its bounds are the production ones, with room for a busy test machine.
const deployment = new PrivateSentinel({ sentinelCount: 3, masterName: 'pva-contract' });
await deployment.start();
const client: Redis = createBoundedRedis({ sentinel: deployment.target }, { commandTimeoutMs: 5_000 });
client.on('error', () => {});

afterAll(async () => {
  client.disconnect();
  await deployment.stop();
});

sessionStoreContract({
  name: 'RedisSessionStore through Redis Sentinel',
  make: async (opts) => new RedisSessionStore({ ...opts, client, prefix: randomPrefix('sentinel') }),
  tamper: tamperRecordWith(client),
  // The deployment is private and discarded after the file.
  cleanup: async () => {},
});

describe('SessionNotices through Redis Sentinel', () => {
  it('delivers a takeover notice to the job watching the identity', async () => {
    const notices = new SessionNotices({ sentinel: deployment.target, prefix: randomPrefix('notices'), commandTimeoutMs: 5_000 });
    try {
      const seen: SessionNotice[] = [];
      await notices.watch('caller', (n) => seen.push(n));
      expect(await notices.announceTakeover({ agentName: 'agent', identity: 'caller' }, 'job-b', 7)).toBe(true);
      await until(async () => seen.length > 0);
      expect(seen).toEqual([{ v: 1, kind: 'takeover', agentName: 'agent', owner: 'job-b', fence: 7 }]);
    } finally {
      await notices.close();
    }
  });
});

describe('the eviction check through Redis Sentinel', () => {
  it('asks the master the sentinels name, not a sentinel or the replica', async () => {
    expect(await checkEviction({ sentinel: deployment.target })).toEqual([]);
    await client.config('SET', 'maxmemory', '128mb');
    await client.config('SET', 'maxmemory-policy', 'allkeys-random');
    try {
      expect(await checkEviction({ sentinel: deployment.target })).toEqual([{ node: `127.0.0.1:${deployment.masterPort}`, policy: 'allkeys-random', maxmemoryBytes: 128 * 1024 * 1024 }]);
    } finally {
      await client.config('SET', 'maxmemory', '0');
      await client.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });
});

describe('RedisSessionStore through a Sentinel failover', () => {
  // Its own deployment: this test kills the master.
  const failover = new PrivateSentinel({ sentinelCount: 3, masterName: 'pva-failover' });
  let store: RedisSessionStore;

  beforeAll(async () => {
    await failover.start();
    // The store owns its client, made from the Sentinel target the worker's configuration gives
    // (a 1 s command bound instead of 250 ms: room for a busy test machine).
    store = new RedisSessionStore({ sentinel: failover.target, prefix: randomPrefix('failover'), commandTimeoutMs: 1_000 });
  });

  afterAll(async () => {
    await store?.dispose();
    await failover.stop();
  });

  const turn = (id: string, role: Turn['role'], text: string): Turn => ({ id, role, text, createdAtMs: Date.now() });

  it('after the master is killed, the same store resumes the conversation with every turn and keeps writing', async () => {
    const key = { agentName: 'agent', identity: 'caller-through-failover' };
    const claim = await store.resumeAndClaim(key, 'job-a', Date.now(), LEASE_MS);
    if (claim.status !== 'claimed') throw new Error('claim failed');
    const record = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-failover', nowMs: Date.now(), profile: null }), turn('t1', 'user', 'My router keeps dropping.'));
    const version = await store.save(record, claim.version, claim.lease);
    await store.appendTurn(key, turn('t2', 'assistant', 'Which model is it?'), claim.lease);
    await store.appendTurn(key, turn('t3', 'user', 'The blue one.'), claim.lease);
    await store.appendTurn(key, turn('t4', 'assistant', 'Try channel 6.'), claim.lease);
    expect(version).toBe(claim.version + 1);

    await failover.awaitReplicated();
    await failover.killMaster();
    await failover.awaitPromotion();

    // The client asks the sentinels again and finds the promoted replica by itself.
    await until(
      () =>
        store.ping().then(
          () => true,
          () => false,
        ),
      10_000,
      100,
    );
    const resumed = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
    if (resumed.status !== 'claimed' || resumed.record.status !== 'found') throw new Error('expected the session back after the failover');
    expect(resumed.record.record.history.turns.map((t) => t.text)).toEqual(['My router keeps dropping.', 'Which model is it?', 'The blue one.', 'Try channel 6.']);
    expect(resumed.previousOwner).toBe('job-a');
    expect(resumed.lease.fence).toBe(claim.lease.fence + 1);

    // Writes work on the new master: the resumed session grows, and a new caller starts one.
    const grown = recordWithTurn(resumed.record.record, turn('t5', 'user', 'That fixed it.'));
    await store.save(grown, resumed.version, resumed.lease);
    const read = await store.readRecord(key);
    expect(read.status === 'found' && read.record.history.turns.map((t) => t.id)).toEqual(['t1', 't2', 't3', 't4', 't5']);

    const newcomer = { agentName: 'agent', identity: 'caller-after-failover' };
    const fresh = await store.resumeAndClaim(newcomer, 'job-c', Date.now(), LEASE_MS);
    if (fresh.status !== 'claimed') throw new Error('claim after the failover failed');
    expect(fresh.record).toEqual({ status: 'missing' });
    await store.save(newSessionRecord({ ...newcomer, sessionId: 's-new', nowMs: Date.now(), profile: null }), fresh.version, fresh.lease);
    expect((await store.readRecord(newcomer)).status).toBe('found');
  });
});
