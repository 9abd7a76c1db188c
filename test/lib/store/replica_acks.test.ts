import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ConfigError } from '../../../lib/errors.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import type { Turn } from '../../../lib/session/record.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { TieredSessionStore } from '../../../lib/store/tiered_session_store.js';
import { randomPrefix } from '../../support/env.js';
import { until } from './contract.js';
import { PrivateRedis, canStartRedis, freePort } from './private_redis.js';
import { infoField } from '../../../lib/store/eviction.js';
import { loadWebConfig } from '../../../web/server/config.js';
import { DeviceKeys } from '../../../web/server/device_store.js';
import { startTokenService } from '../../../web/server/service.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the replica test needs the redis-server binary (apt-get install redis-server)');

/** `field` of `INFO replication` on `client`. */
async function replication(client: Redis, field: string): Promise<string | undefined> {
  return infoField(await client.info('replication'), field);
}

describe('RedisSessionStore with replicaAcks (private master + replica)', () => {
  let master: PrivateRedis;
  let replica: PrivateRedis;
  let onMaster: Redis;
  let onReplica: Redis;
  let dir = '';
  const prefix = randomPrefix('acks');
  const turn = (id: string): Turn => ({ id, role: 'user', text: `said ${id}`, createdAtMs: Date.now() });

  /**
   * Links the replica to the master and waits until the master counts it online (after a
   * diskless sync that is at the replica's first REPLCONF ACK, up to a second later: before
   * that, WAIT does not count it).
   */
  async function attach(): Promise<void> {
    await onReplica.replicaof('127.0.0.1', master.port);
    await until(async () => (await replication(onMaster, 'slave0'))?.includes('state=online') === true && (await replication(onReplica, 'master_link_status')) === 'up', 10_000);
  }

  /** Unlinks the replica (it keeps what it has) and waits until the master no longer counts it. */
  async function detach(): Promise<void> {
    await onReplica.replicaof('NO', 'ONE');
    await until(async () => (await replication(onMaster, 'connected_slaves')) === '0', 10_000);
  }

  beforeAll(async () => {
    // The replica writes what a full sync sends to its --dir (a temporary folder, not the working
    // directory); the master sends it at once (no 5 s wait for more replicas to join the sync).
    dir = mkdtempSync(join(tmpdir(), 'pva-acks-'));
    master = new PrivateRedis(await freePort(), ['--dir', dir, '--repl-diskless-sync-delay', '0']);
    await master.start();
    replica = new PrivateRedis(await freePort(), ['--dir', dir]);
    await replica.start();
    onMaster = new Redis(master.url);
    onReplica = new Redis(replica.url);
    await attach();
  });

  afterAll(async () => {
    onMaster?.disconnect();
    onReplica?.disconnect();
    await replica?.kill();
    await master?.kill();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad setting with a clear error', () => {
    expect(() => new RedisSessionStore({ url: master.url, replicaAcks: -1 })).toThrow(ConfigError);
    expect(() => new RedisSessionStore({ url: master.url, replicaAcks: 1, replicaAckTimeoutMs: 0 })).toThrow(/replicaAckTimeoutMs must be a positive integer/);
  });

  it('a write the replica does not acknowledge is not done: the agent keeps it and replays it once the replica is back', async () => {
    const key = { agentName: 'agent', identity: 'acked' };
    // A generous wait (a loopback replica acknowledges in about a millisecond, but CI runs other
    // servers beside it): only a replica that is gone misses it.
    const acks = { replicaAcks: 1, replicaAckTimeoutMs: 1_000, commandTimeoutMs: 3_000 };
    const direct = new RedisSessionStore({ url: master.url, prefix, ...acks });
    const shared = new RedisSessionStore({ url: master.url, prefix, ...acks });
    const tiered = new TieredSessionStore({ shared, greetingBoundMs: 500, writeBoundMs: 3_000, probeIntervalMs: 100 });
    const reasons: string[] = [];
    tiered.onHealth((e) => reasons.push(JSON.stringify(e)));
    try {
      const claim = await tiered.resumeAndClaim(key, 'job-a', Date.now(), 60_000);
      if (claim.status !== 'claimed') throw new Error('claim');
      await tiered.save(newSessionRecord({ ...key, sessionId: 's-acked', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
      await tiered.appendTurn(key, turn('t0'), claim.lease);
      expect(reasons).toEqual([]);
      // Acknowledged: the replica already holds the turn when the call returns.
      const turnsKey = shared.keys.session(key).turns;
      expect(await onReplica.lrange(turnsKey, 0, -1)).toHaveLength(1);

      await detach();
      // A direct write is refused as "not done (yet)", retryable, and says nothing personal.
      const other = { agentName: 'agent', identity: 'direct' };
      const d = await direct.resumeAndClaim(other, 'job-d', Date.now(), 60_000);
      if (d.status !== 'claimed') throw new Error('claim');
      const refused = await direct.save(newSessionRecord({ ...other, sessionId: 's-d', nowMs: Date.now(), profile: null }), d.version, d.lease).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'store_unavailable', retryable: true });
      expect(String((refused as Error).message)).not.toMatch(/direct|s-d/);

      // The agent's store goes on from memory and owes the shared tier these turns.
      const said = ['t0'];
      for (const id of ['t1', 't2', 't3']) {
        await tiered.appendTurn(key, turn(id), claim.lease);
        said.push(id);
      }
      expect(tiered.isDegraded).toBe(true);
      expect(tiered.pendingReplayCount).toBeGreaterThan(0);

      await attach();
      await until(async () => !tiered.isDegraded && tiered.pendingReplayCount === 0, 15_000);
      // Everything said reached the replica too (the replay is acknowledged like any write).
      await tiered.appendTurn(key, turn('t4'), claim.lease);
      said.push('t4');
      const onTheMaster = await shared.readRecord(key);
      expect(onTheMaster.status === 'found' && onTheMaster.record.history.turns.map((t) => t.id)).toEqual(said);
      const k = shared.keys.session(key);
      expect(await onReplica.get(k.rec)).toBe(await onMaster.get(k.rec));
      expect(await onReplica.lrange(k.turns, 0, -1)).toEqual(await onMaster.lrange(k.turns, 0, -1));
    } finally {
      await tiered.dispose();
      await direct.dispose();
    }
  });

  it('the token service waits for the replica too (REDIS_REPLICA_ACKS): "Forget me" can be asked again until it is acknowledged', async () => {
    const config = loadWebConfig(
      {
        LIVEKIT_URL: 'ws://127.0.0.1:1',
        LIVEKIT_API_KEY: 'unit-key',
        LIVEKIT_API_SECRET: 'unit-secret-unit-secret-unit-secret-0123',
        REDIS_URL: master.url,
        REDIS_KEY_PREFIX: prefix,
        REDIS_REPLICA_ACKS: '1',
        REDIS_REPLICA_ACK_TIMEOUT_MS: '1000',
      },
      { loadDotenv: false },
    );
    const svc = await startTokenService({ ...config, port: 0, roomCloser: { deleteRoom: async () => {} } });
    const worker = new RedisSessionStore({ url: master.url, prefix, replicaAcks: 1, replicaAckTimeoutMs: 1_000, commandTimeoutMs: 3_000 });
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${svc.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      const device = (await post('/api/identity', {})).body as { identity: string; deviceSecret: string };
      const key = { agentName: 'agent', identity: device.identity };
      const claim = await worker.resumeAndClaim(key, 'job-a', Date.now(), 60_000);
      if (claim.status !== 'claimed') throw new Error('claim');
      await worker.save(newSessionRecord({ ...key, sessionId: 's-forget', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
      const rec = worker.keys.session(key).rec;
      expect(await onReplica.exists(rec)).toBe(1);

      const deviceKey = new DeviceKeys(prefix).device(device.identity);
      expect(await onReplica.exists(deviceKey)).toBe(1);

      // The replica is gone: the erasure is not done, and the device keeps its credential to ask
      // again; nor is a new identity handed out that a failover could lose.
      await detach();
      const failed = await post('/api/forget', device);
      expect(failed).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
      const devicesOnMaster = async () => {
        let cursor = '0';
        let n = 0;
        do {
          const [next, keys] = await onMaster.scan(cursor, 'MATCH', `${prefix}{d.*}:device`, 'COUNT', 100);
          cursor = next;
          n += keys.length;
        } while (cursor !== '0');
        return n;
      };
      expect(await devicesOnMaster()).toBe(1);
      expect((await post('/api/identity', {})).status).toBe(503);
      expect(await devicesOnMaster()).toBe(1); // the identity not handed out is not left behind
      await attach();
      const again = await post('/api/forget', device);
      expect(again.status).toBe(200);
      expect(again.body.forgotten).toBe(true);
      // Acknowledged: the replica no longer holds the conversation or the credential.
      expect(await onReplica.exists(rec)).toBe(0);
      expect(await onReplica.exists(deviceKey)).toBe(0);
      expect((await post('/api/token', device)).status).toBe(403);
    } finally {
      await worker.dispose();
      await svc.close();
    }
  });
});
