import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../lib/errors.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import type { Turn } from '../../../lib/session/record.js';
import { recordWithTurn } from '../../../lib/session/history.js';
import { MemorySessionStore } from '../../../lib/store/memory_session_store.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { TieredSessionStore } from '../../../lib/store/tiered_session_store.js';
import type { SessionStore } from '../../../lib/store/session_store.js';
import { randomPrefix } from '../../support/env.js';
import { until } from './contract.js';
import { connectTestRedis, unlinkPrefix } from './redis_support.js';

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
async function blackHole(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr !== null ? addr.port : 0, sockets };
}

function turn(text: string): Turn {
  return { id: `t-${text}`, role: 'user', text, createdAtMs: Date.now() };
}

/**
 * `store` with some calls replaced (the others delegate): a shared tier that fails or stalls
 * where a test says so.
 */
function withOverrides(store: SessionStore, overrides: Partial<SessionStore>): SessionStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const own = (overrides as Record<string | symbol, unknown>)[prop];
      if (own !== undefined) return own;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe('TieredSessionStore', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('memory only (no shared tier) is a plain store and never degraded', async () => {
    const tiered = new TieredSessionStore({ shared: null });
    const key = { agentName: 'a', identity: 'solo' };
    const c = await tiered.resumeAndClaim(key, 'job', Date.now(), 1_000);
    if (c.status !== 'claimed') throw new Error('claim');
    expect(c.storeAvailable).toBe(true);
    await tiered.save(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), c.version, c.lease);
    expect((await tiered.readRecord(key)).status).toBe('found');
    expect(tiered.isDegraded).toBe(false);
    await tiered.dispose();
  });

  it('a hanging shared store costs the greeting path at most greetingBoundMs, then answers from memory', async () => {
    const hole = await blackHole();
    const shared = new RedisSessionStore({ url: `redis://127.0.0.1:${hole.port}`, commandTimeoutMs: 10_000, connectTimeoutMs: 10_000 });
    const tiered = new TieredSessionStore({ shared, greetingBoundMs: 150, writeBoundMs: 150, probeIntervalMs: 50 });
    cleanups.push(async () => {
      await tiered.dispose();
      for (const s of hole.sockets) s.destroy();
      await new Promise((r) => hole.server.close(r));
    });
    const key = { agentName: 'a', identity: 'hang' };
    const started = Date.now();
    const claim = await tiered.resumeAndClaim(key, 'job', Date.now(), 1_000);
    // Bounded by greetingBoundMs (150 ms), far under the 10 s the shared store itself would wait.
    expect(Date.now() - started).toBeLessThan(1_500);
    // Claimed from memory, marked as such: never a refusal (no greeting) because Redis hangs.
    // Its fence is this process's own: never compared with the fences other jobs announce.
    expect(claim).toMatchObject({ status: 'claimed', storeAvailable: false, sharedFence: false });
    expect(tiered.isDegraded).toBe(true);
    if (claim.status !== 'claimed') throw new Error('unreachable: asserted above');
    // Writes keep working from memory and wait for replay.
    await tiered.save(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    expect(tiered.pendingReplayCount).toBeGreaterThan(0);
    // A second claim by the same job within the rejoin window resumes from memory.
    const again = await tiered.resumeAndClaim(key, 'job', Date.now(), 1_000);
    expect(again).toMatchObject({ status: 'claimed', record: { status: 'found' }, storeAvailable: true });
    // A listener that subscribes during the outage (a job whose pre-warm saw Redis fail) is told at once.
    const told: string[] = [];
    const off = tiered.onHealth((ev) => told.push(ev.type));
    expect(told).toEqual(['degraded']);
    off();
  });

  it('mirrors the shared answer into memory and keeps the caller on memory fences', async () => {
    const shared = new MemorySessionStore();
    const tiered = new TieredSessionStore({ shared });
    const key = { agentName: 'a', identity: 'mirror' };
    const c = await tiered.resumeAndClaim(key, 'job', Date.now(), 10_000);
    if (c.status !== 'claimed') throw new Error('claim');
    const v = await tiered.save(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), c.version, c.lease);
    await tiered.appendTurn(key, { id: 't1', role: 'user', text: 'hi', createdAtMs: Date.now() }, c.lease);
    const inShared = await shared.readRecord(key);
    expect(inShared.status === 'found' && inShared.record.history.turns.map((t) => t.text)).toEqual(['hi']);
    expect(v).toBe(c.version + 1);
    // Another process takes the session over in the shared store: our next write is refused.
    const other = await shared.resumeAndClaim(key, 'other-job', Date.now(), 10_000);
    expect(other.status).toBe('claimed');
    await expect(tiered.appendTurn(key, { id: 't2', role: 'user', text: 'late', createdAtMs: Date.now() }, c.lease)).rejects.toMatchObject({ code: 'lease_lost' });
  });

  it('exports an identity from the shared tier (every job\'s conversations), and from memory when there is none', async () => {
    const shared = new MemorySessionStore();
    const tiered = new TieredSessionStore({ shared });
    // A conversation another job wrote straight to the shared tier, and one of this job.
    const elsewhere = { agentName: 'b', identity: 'both' };
    const o = await shared.resumeAndClaim(elsewhere, 'other-job', Date.now(), 10_000);
    if (o.status !== 'claimed') throw new Error('claim');
    await shared.save(newSessionRecord({ ...elsewhere, sessionId: 's-b', nowMs: Date.now(), profile: null }), o.version, o.lease);
    const here = { agentName: 'a', identity: 'both' };
    const c = await tiered.resumeAndClaim(here, 'job', Date.now(), 10_000);
    if (c.status !== 'claimed') throw new Error('claim');
    await tiered.save(newSessionRecord({ ...here, sessionId: 's-a', nowMs: Date.now(), profile: null }), c.version, c.lease);
    expect((await tiered.exportIdentity('both')).map((x) => x.key.agentName).sort()).toEqual(['a', 'b']);
    const solo = new TieredSessionStore({ shared: null });
    const k = await solo.resumeAndClaim(here, 'job', Date.now(), 10_000);
    if (k.status !== 'claimed') throw new Error('claim');
    await solo.save(newSessionRecord({ ...here, sessionId: 's-a', nowMs: Date.now(), profile: null }), k.version, k.lease);
    expect((await solo.exportIdentity('both')).map((x) => x.record?.sessionId)).toEqual(['s-a']);
    await Promise.all([tiered.dispose(), solo.dispose()]);
  });

  describe('and an identity erased in the shared store (Redis)', () => {
    /** A tiered store over the test Redis under a fresh prefix; `wrap` may replace shared calls. */
    async function tieredOnRedis(tag: string, wrap: (real: RedisSessionStore) => SessionStore = (real) => real) {
      const redis = await connectTestRedis();
      const prefix = randomPrefix(tag);
      const real = new RedisSessionStore({ client: redis, prefix });
      const tiered = new TieredSessionStore({ shared: wrap(real), probeIntervalMs: 60_000 });
      cleanups.push(async () => {
        await tiered.dispose();
        await unlinkPrefix(redis, `${prefix}*`);
        redis.disconnect();
      });
      return { redis, prefix, real, tiered };
    }

    it('a job that still held it does not write it back when its next write finds the lease gone', async () => {
      const { redis, prefix, real: shared, tiered } = await tieredOnRedis('tier-forget');
      const key = { agentName: 'a', identity: 'erased-elsewhere' };
      const claimedAtMs = Date.now();
      const c = await tiered.resumeAndClaim(key, 'job', claimedAtMs, 30_000);
      if (c.status !== 'claimed') throw new Error('claim');
      await tiered.save(recordWithTurn(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), turn('something personal')), c.version, c.lease);
      await until(async () => Date.now() > claimedAtMs); // the erasure comes after the claim
      // The participant's "Forget me" runs in another process; the notice to this job is lost.
      await shared.forget('erased-elsewhere');
      // The job's next write finds no lease in Redis: it cannot tell an erasure from a Redis that
      // lost its data, so it degrades and replays, and the replay is refused.
      await tiered.appendTurn(key, turn('one more thing'), c.lease);
      expect(tiered.isDegraded).toBe(true);
      await tiered.tryRecover();
      expect(tiered.isDegraded).toBe(false);
      expect(await shared.exportIdentity('erased-elsewhere')).toEqual([]);
      // Only the mark of the erasure is left, and no key names the identity.
      expect(await redis.keys(`${prefix}*`)).toEqual([shared.keys.forgetMark('erased-elsewhere')]);
      expect(await tiered.memory.exportIdentity('erased-elsewhere')).toEqual([]);
      await expect(tiered.appendTurn(key, turn('still there?'), c.lease)).rejects.toMatchObject({ code: 'lease_lost' });
      expect(await shared.exportIdentity('erased-elsewhere')).toEqual([]);
    });

    it('a job told of the erasure erases only its own copy: a conversation started in another job since then stays', async () => {
      const { real: shared, tiered } = await tieredOnRedis('tier-forget-local');
      const key = { agentName: 'a', identity: 'forgot-then-came-back' };
      const c = await tiered.resumeAndClaim(key, 'job-old', Date.now(), 30_000);
      if (c.status !== 'claimed') throw new Error('claim');
      await tiered.save(recordWithTurn(newSessionRecord({ ...key, sessionId: 's-old', nowMs: Date.now(), profile: null }), turn('before the erasure')), c.version, c.lease);
      // "Forget me" (the token service or the CLI), then the participant starts again at once,
      // served by another job, before the old job has handled the notice.
      await shared.forget('forgot-then-came-back');
      const arrivedAtMs = Date.now() + 1;
      await until(async () => Date.now() > arrivedAtMs);
      const n = await shared.resumeAndClaim(key, 'job-new', arrivedAtMs, 30_000);
      if (n.status !== 'claimed') throw new Error('claim');
      await shared.save(recordWithTurn(newSessionRecord({ ...key, sessionId: 's-new', nowMs: Date.now(), profile: null }), turn('after the erasure')), n.version, n.lease);
      // The old job handles the notice.
      await tiered.forgetLocal('forgot-then-came-back');
      expect(await tiered.memory.exportIdentity('forgot-then-came-back')).toEqual([]);
      expect(tiered.pendingReplayCount).toBe(0);
      const kept = await shared.readRecord(key);
      expect(kept.status === 'found' && kept.record.history.turns.map((t) => t.text)).toEqual(['after the erasure']);
      // The new job's conversation goes on.
      await shared.appendTurn(key, turn('and more'), n.lease);
    });

    it('a forget made while the replay is writing that identity erases what the replay wrote', async () => {
      let down = true;
      let restoreStarted!: () => void;
      const started = new Promise<void>((r) => (restoreStarted = r));
      let letRestoreFinish!: () => void;
      const gate = new Promise<void>((r) => (letRestoreFinish = r));
      const { real, tiered } = await tieredOnRedis('tier-forget-race', (store) =>
        withOverrides(store, {
          save: async (...args) => {
            if (down) throw new StoreUnavailableError('redis unreachable (test)');
            return store.save(...args);
          },
          restore: async (...args) => {
            restoreStarted();
            await gate;
            return store.restore(...args);
          },
        }),
      );
      const key = { agentName: 'a', identity: 'forgotten-mid-replay' };
      const c = await tiered.resumeAndClaim(key, 'job', Date.now(), 30_000);
      if (c.status !== 'claimed') throw new Error('claim');
      await tiered.save(recordWithTurn(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), turn('said during the outage')), c.version, c.lease);
      expect(tiered.isDegraded).toBe(true);
      down = false;
      const recovering = tiered.tryRecover();
      await started;
      await tiered.forget('forgotten-mid-replay'); // still degraded: queued for the shared tier
      letRestoreFinish();
      await recovering;
      expect(tiered.isDegraded).toBe(false);
      expect(tiered.pendingReplayCount).toBe(0);
      expect(await real.exportIdentity('forgotten-mid-replay')).toEqual([]);
      expect(await real.readRecord(key)).toMatchObject({ status: 'missing' });
    });
  });
});

