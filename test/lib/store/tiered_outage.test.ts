import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { decideResume } from '../../../lib/session/resume_policy.js';
import { ReconnectPolicies } from '../../../lib/session/policy.js';
import { newSessionRecord, profileFromRecord, suspendedRecord } from '../../../lib/session/record.js';
import { recordWithTurn } from '../../../lib/session/history.js';
import type { Turn } from '../../../lib/session/record.js';
import { forkArchiveId } from '../../../lib/store/codec.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import type { LeaseToken, SessionKey } from '../../../lib/store/session_store.js';
import { TieredSessionStore } from '../../../lib/store/tiered_session_store.js';
import type { StoreHealthEvent } from '../../../lib/store/tiered_session_store.js';
import { randomPrefix, testRedisUrl } from '../../support/env.js';
import { TcpRelay } from '../../support/tcp_relay.js';
import { waitFor } from '../../support/wait.js';
import { until } from './contract.js';
import { unlinkPrefix } from './redis_support.js';
import { PrivateRedis, canStartRedis, freePort } from './private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the outage test needs the redis-server binary (apt-get install redis-server)');

describe('TieredSessionStore through a Redis outage (private redis-server)', () => {
  let server: PrivateRedis;
  let tiered: TieredSessionStore;
  let verify: RedisSessionStore;
  const events: StoreHealthEvent[] = [];
  const prefix = randomPrefix('outage');

  beforeAll(async () => {
    server = new PrivateRedis(await freePort());
    await server.start();
    const shared = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 200, connectTimeoutMs: 300, maxReconnectDelayMs: 200 });
    tiered = new TieredSessionStore({ shared, greetingBoundMs: 300, writeBoundMs: 400, probeIntervalMs: 100 });
    tiered.onHealth((e) => events.push(e));
    verify = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 500, maxReconnectDelayMs: 200 });
  });

  afterAll(async () => {
    await tiered?.dispose();
    await verify?.dispose();
    await server?.kill();
  });

  it('keeps working from memory, reports degraded, and after Redis restarts empty replays everything', async () => {
    const sessions: { key: SessionKey; lease: LeaseToken; said: string[] }[] = [];
    for (let i = 0; i < 5; i++) {
      const key = { agentName: 'agent', identity: `caller-${i}` };
      const claim = await tiered.resumeAndClaim(key, `job-${i}`, Date.now(), 60_000);
      if (claim.status !== 'claimed') throw new Error('claim');
      expect(claim.storeAvailable).toBe(true);
      await tiered.save(newSessionRecord({ ...key, sessionId: `s-${i}`, nowMs: Date.now(), profile: null }), claim.version, claim.lease);
      sessions.push({ key, lease: claim.lease, said: [] });
    }
    let n = 0;
    const write = async (): Promise<void> => {
      const s = sessions[n % sessions.length];
      if (s === undefined) throw new Error('no session');
      const text = `turn ${n}`;
      const t: Turn = { id: `id-${n}`, role: n % 2 === 0 ? 'user' : 'assistant', text, createdAtMs: Date.now() };
      n++;
      await tiered.appendTurn(s.key, t, s.lease);
      s.said.push(text);
    };
    for (let i = 0; i < 15; i++) await write();
    expect(tiered.isDegraded).toBe(false);

    await server.kill();
    for (let i = 0; i < 15; i++) await write();
    expect(tiered.isDegraded).toBe(true);
    expect(events.some((e) => e.type === 'degraded')).toBe(true);

    // A newcomer's greeting path does not wait on the dead Redis: memory answers, store_unavailable.
    const newcomer = await tiered.resumeAndClaim({ agentName: 'agent', identity: 'newcomer' }, 'job-n', Date.now(), 60_000);
    expect(newcomer).toMatchObject({ status: 'claimed', storeAvailable: false });
    if (newcomer.status !== 'claimed') throw new Error('unreachable: asserted above');
    const d = decideResume({ record: null, profile: null, policy: ReconnectPolicies.Default, reason: null, nowMs: Date.now(), storeAvailable: newcomer.storeAvailable ?? true });
    expect(d).toEqual({ kind: 'fresh', why: 'store_unavailable' });
    // Greeted, the newcomer's job saves its fresh conversation (a claim that has said nothing
    // yet is not replayed: it could only delete what Redis holds for the identity).
    await tiered.save(newSessionRecord({ agentName: 'agent', identity: 'newcomer', sessionId: 's-newcomer', nowMs: Date.now(), profile: null }), newcomer.version, newcomer.lease);

    await server.start(); // empty: no persistence
    for (let i = 0; i < 15; i++) await write();
    await until(async () => !tiered.isDegraded, 15_000);
    for (let i = 0; i < 15; i++) await write();
    expect(events.some((e) => e.type === 'recovered')).toBe(true);
    // Under load a write can still time out (200 ms command bound) and degrade the store again;
    // what is checked is the settled state: nothing owed, everything in Redis.
    await until(async () => !tiered.isDegraded && tiered.pendingReplayCount === 0, 15_000);

    for (const s of sessions) {
      const r = await verify.readRecord(s.key);
      expect(r.status).toBe('found');
      if (r.status !== 'found') continue;
      expect(r.record.history.turns.map((t) => t.text)).toEqual(s.said);
    }
    expect(tiered.pendingReplayCount).toBe(0);
  });

  it('a Redis that restarted empty between two writes is detected (lease lost, no lease stored) and refilled', async () => {
    const key = { agentName: 'agent', identity: 'quick-restart' };
    const claim = await tiered.resumeAndClaim(key, 'job-q', Date.now(), 60_000);
    if (claim.status !== 'claimed') throw new Error('claim');
    await tiered.save(newSessionRecord({ ...key, sessionId: 's-q', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    await until(async () => !tiered.isDegraded, 15_000);
    const said: string[] = [];
    const write = async (i: number): Promise<void> => {
      await tiered.appendTurn(key, { id: `q-${i}`, role: 'user', text: `q ${i}`, createdAtMs: Date.now() }, claim.lease);
      said.push(`q ${i}`);
    };
    await write(0);
    await server.kill();
    await server.start();
    for (let i = 1; i < 6; i++) await write(i);
    await until(async () => !tiered.isDegraded, 15_000);
    const r = await verify.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(said);
  });
});

/**
 * Two ways a running Redis refuses every write while it still answers: it lacks the replicas
 * it must write to (`NOREPLICAS`, as during a replica outage), or it is full (`OOM`: used memory
 * over `maxmemory` with `noeviction`). `refuse` brings the refusal about, `lift` ends it (the
 * replicas are back; the operator raised the limit).
 */
const WRITE_REFUSALS: { what: string; args: string[]; refuse: (admin: Redis) => Promise<void>; lift: (admin: Redis) => Promise<void> }[] = [
  {
    what: 'lacks the replicas it must write to (min-replicas-to-write, NOREPLICAS)',
    args: ['--min-replicas-to-write', '1', '--min-replicas-max-lag', '10'],
    refuse: async () => undefined,
    lift: async (admin) => void (await admin.config('SET', 'min-replicas-to-write', '0')),
  },
  {
    what: 'is full (maxmemory with noeviction, OOM)',
    args: ['--maxmemory-policy', 'noeviction'],
    // Filled with someone else's data: the limit is 1 MB over what the server uses now, and
    // 100 KB values go in until Redis refuses one (it checks memory before each command).
    refuse: async (admin) => {
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      await admin.config('SET', 'maxmemory', String(used + 1024 * 1024));
      for (let i = 0; ; i++) {
        if (i === 100) throw new Error('Redis never reached its maxmemory');
        const full = await admin.set(`someone-elses-data:${i}`, 'x'.repeat(100 * 1024)).then(() => false, (err: Error) => /^OOM/.test(err.message));
        if (full) return;
      }
    },
    lift: async (admin) => void (await admin.config('SET', 'maxmemory', '0')),
  },
];

for (const { what, args, refuse, lift } of WRITE_REFUSALS) describe(`TieredSessionStore over a Redis that ${what}`, () => {
  let server: PrivateRedis;
  let admin: Redis;
  let tiered: TieredSessionStore;
  let direct: RedisSessionStore;
  const prefix = randomPrefix('refusal');

  beforeAll(async () => {
    server = new PrivateRedis(await freePort(), args);
    await server.start();
    admin = new Redis(server.url);
    await refuse(admin);
    direct = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 500, maxReconnectDelayMs: 200 });
    const shared = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 200, connectTimeoutMs: 300, maxReconnectDelayMs: 200 });
    tiered = new TieredSessionStore({ shared, greetingBoundMs: 300, writeBoundMs: 400, probeIntervalMs: 100 });
  });

  afterAll(async () => {
    await tiered?.dispose();
    await direct?.dispose();
    admin?.disconnect();
    await server?.kill();
  });

  it('is an unavailable store (retry later), not a refusal of the data: the agent works from memory and nothing is lost', async () => {
    const key = { agentName: 'agent', identity: 'refused-writes' };
    await expect(direct.resumeAndClaim(key, 'probe', Date.now(), 60_000)).rejects.toMatchObject({ code: 'store_unavailable', retryable: true });
    const claim = await tiered.resumeAndClaim(key, 'job-r', Date.now(), 60_000);
    expect(claim).toMatchObject({ status: 'claimed', storeAvailable: false });
    if (claim.status !== 'claimed') throw new Error('unreachable: asserted above');
    expect(tiered.isDegraded).toBe(true);
    await tiered.save(newSessionRecord({ ...key, sessionId: 's-r', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    const said: string[] = [];
    for (let i = 0; i < 5; i++) {
      await tiered.appendTurn(key, { id: `r-${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `r ${i}`, createdAtMs: Date.now() }, claim.lease);
      said.push(`r ${i}`);
    }
    expect((await direct.readRecord(key)).status).toBe('missing');
    // Redis takes writes again: the tier replays what it holds.
    await lift(admin);
    await until(async () => !tiered.isDegraded, 15_000);
    const r = await direct.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(said);
  });
});

describe('TieredSessionStore whose session was taken over while it could not reach Redis', () => {
  let server: PrivateRedis;
  let jobA: TieredSessionStore;
  let jobB: RedisSessionStore;
  const prefix = randomPrefix('takeover-outage');
  const turn = (id: string): Turn => ({ id, role: 'user', text: id, createdAtMs: Date.now() });

  beforeAll(async () => {
    server = new PrivateRedis(await freePort());
    await server.start();
    // Job A recovers only when the test says so (no probe in between), so job B's claim lands first.
    const shared = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 200, connectTimeoutMs: 300, maxReconnectDelayMs: 200 });
    jobA = new TieredSessionStore({ shared, greetingBoundMs: 300, writeBoundMs: 400, probeIntervalMs: 3_600_000 });
    jobB = new RedisSessionStore({ url: server.url, prefix, commandTimeoutMs: 500, maxReconnectDelayMs: 200 });
  });

  afterAll(async () => {
    await jobA?.dispose();
    await jobB?.dispose();
    await server?.kill();
  });

  it('tells the old job its lease is lost once Redis is back, owes Redis nothing for it, and keeps what it heard', async () => {
    const key = { agentName: 'agent', identity: 'two-devices' };
    const a = await jobA.resumeAndClaim(key, 'job-a', Date.now(), 60_000);
    if (a.status !== 'claimed') throw new Error('claim');
    await jobA.save(newSessionRecord({ ...key, sessionId: 's-a', nowMs: Date.now(), profile: null }), a.version, a.lease);
    await jobA.appendTurn(key, turn('a-0'), a.lease);

    await server.kill();
    await jobA.appendTurn(key, turn('a-1'), a.lease); // from memory, owed to Redis
    expect(jobA.isDegraded).toBe(true);
    await server.start(); // empty: no persistence

    // The same identity arrives in another job, which reaches Redis: the newest arrival wins.
    const b = await waitFor('job B to reach Redis', () => jobB.resumeAndClaim(key, 'job-b', Date.now(), 60_000), { timeoutMs: 10_000 });
    if (b.status !== 'claimed') throw new Error('claim b');
    await jobB.save(newSessionRecord({ ...key, sessionId: 's-b', nowMs: Date.now(), profile: null }), b.version, b.lease);
    await jobB.appendTurn(key, turn('b-0'), b.lease);

    // Job A reaches Redis again; its replay is refused (job B holds a live lease).
    await jobA.tryRecover();
    expect(jobA.isDegraded).toBe(false);
    expect(jobA.pendingReplayCount).toBe(0);

    // Job A's next writes fail as after any takeover (its conversation ends there), and owe nothing.
    await expect(jobA.appendTurn(key, turn('a-2'), a.lease)).rejects.toMatchObject({ code: 'lease_lost' });
    expect(await jobA.renewLease(key, a.lease, Date.now(), 60_000)).toBe(false);
    expect(jobA.pendingReplayCount).toBe(0);

    // Job B's conversation is untouched and still its own.
    await jobB.appendTurn(key, turn('b-1'), b.lease);
    const r = await jobB.readRecord(key);
    expect(r.status === 'found' && r.record.sessionId).toBe('s-b');
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.id)).toEqual(['b-0', 'b-1']);
    // What job A's participant said, before and during the outage, is in Redis's archive.
    const archive = await jobB.readArchive(key, Date.now());
    const kept = archive.find((x) => x.sessionId === forkArchiveId('s-a', 'job-a'));
    expect(kept?.record?.history.turns.map((t) => t.id)).toEqual(['a-0', 'a-1']);
  });

  it('keeps the newest arrival when the old job carries a higher fence than the Redis that restarted empty counts', async () => {
    const key = { agentName: 'agent', identity: 'rejoined-then-moved' };
    // The participant joined job A and rejoined it twice (each rejoin claims again: fence 3).
    let a = await jobA.resumeAndClaim(key, 'job-a', Date.now(), 60_000);
    if (a.status !== 'claimed') throw new Error('claim');
    await jobA.save(newSessionRecord({ ...key, sessionId: 's-a', nowMs: Date.now(), profile: null }), a.version, a.lease);
    for (let i = 0; i < 2; i++) a = await jobA.resumeAndClaim(key, 'job-a', Date.now(), 60_000);
    if (a.status !== 'claimed') throw new Error('claim');
    expect(a.lease.fence).toBe(3);
    await jobA.appendTurn(key, turn('a-0'), a.lease);

    await server.kill();
    await jobA.appendTurn(key, turn('a-1'), a.lease);
    expect(jobA.isDegraded).toBe(true);
    await server.start(); // empty: fences count from 1 again

    const b = await waitFor('job B to reach Redis', () => jobB.resumeAndClaim(key, 'job-b', Date.now(), 60_000), { timeoutMs: 10_000 });
    if (b.status !== 'claimed') throw new Error('claim b');
    expect(b.lease.fence).toBe(1);
    await jobB.save(newSessionRecord({ ...key, sessionId: 's-b', nowMs: Date.now(), profile: null }), b.version, b.lease);

    // Job A's replay carries fence 3 but an older arrival: it is refused, and job B goes on.
    await jobA.tryRecover();
    expect(jobA.isDegraded).toBe(false);
    await jobB.appendTurn(key, turn('b-0'), b.lease);
    await expect(jobA.appendTurn(key, turn('a-2'), a.lease)).rejects.toMatchObject({ code: 'lease_lost' });
    const r = await jobB.readRecord(key);
    expect(r.status === 'found' && [r.record.sessionId, r.record.history.turns.map((t) => t.id)]).toEqual(['s-b', ['b-0']]);
    const archive = await jobB.readArchive(key, Date.now());
    expect(archive.find((x) => x.sessionId === forkArchiveId('s-a', 'job-a'))?.record?.history.turns.map((t) => t.id)).toEqual(['a-0', 'a-1']);
  });
});

describe('TieredSessionStore: an arrival while Redis is out of reach (a partition, data kept)', () => {
  /**
   * A job's tiered store whose Redis is behind a relay the test can cut (`shared`), and a direct
   * store on the same Redis and prefix (`direct`: other jobs, and what Redis holds). `close` ends
   * all of it and removes the prefix's keys.
   */
  async function cutOffJob(tag: string, probeIntervalMs: number) {
    const prefix = randomPrefix(tag);
    const { relay, url } = await TcpRelay.inFrontOf(testRedisUrl());
    const direct = new RedisSessionStore({ url: testRedisUrl(), prefix });
    const shared = new RedisSessionStore({ url, prefix, commandTimeoutMs: 200, connectTimeoutMs: 300, maxReconnectDelayMs: 200 });
    const tiered = new TieredSessionStore({ shared, greetingBoundMs: 300, writeBoundMs: 400, probeIntervalMs });
    const close = async () => {
      await tiered.dispose();
      await direct.dispose();
      await relay.close();
      const cleanup = new Redis(testRedisUrl());
      await unlinkPrefix(cleanup, `${prefix}*`);
      cleanup.disconnect();
    };
    return { relay, direct, shared, tiered, close };
  }

  it('a claim that has said nothing yet is not replayed: a speculation dropped after Redis came back leaves the stored conversation resumable', async () => {
    const { relay, direct, shared, tiered, close } = await cutOffJob('said-nothing', 60_000);
    try {
      const key = { agentName: 'agent', identity: 'resumable' };
      // A conversation that paused (its participant left), stored in Redis by another job.
      const c = await direct.resumeAndClaim(key, 'job-earlier', Date.now() - 1_000, 60_000);
      if (c.status !== 'claimed') throw new Error('claim');
      const rec = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-paused', nowMs: Date.now() - 1_000, profile: null }), { id: 't1', role: 'user', text: 'my order is 553', createdAtMs: Date.now() - 1_000 });
      await direct.suspend(suspendedRecord(rec, Date.now(), 'network'), await direct.save(rec, c.version, c.lease), c.lease, Date.now());

      // A dispatch hint's speculation in a job cut off from Redis: claimed from memory, nothing said.
      relay.cut();
      const spec = await tiered.resumeAndClaim(key, 'job-hinted', Date.now(), 60_000, 'exclusive');
      expect(spec).toMatchObject({ status: 'claimed', storeAvailable: false, record: { status: 'missing' } });
      if (spec.status !== 'claimed') throw new Error('unreachable: asserted above');
      relay.heal();
      await until(async () => (await shared.ping().then(() => true, () => false)), 15_000);
      // Redis answers, but the claim has said nothing: the replay waits for it.
      await tiered.tryRecover();
      expect(tiered.isDegraded).toBe(true);
      expect(tiered.pendingReplayCount).toBe(1);
      const meanwhile = await direct.readRecord(key);
      expect(meanwhile.status === 'found' && meanwhile.record.history.turns.map((t) => t.text)).toEqual(['my order is 553']);
      // Its participant never came: the speculation is dropped, and the replay writes nothing of it.
      expect(await tiered.release(key, spec.lease)).toBe(true);
      await tiered.tryRecover();
      expect(tiered.isDegraded).toBe(false);
      const next = await direct.resumeAndClaim(key, 'job-next', Date.now(), 60_000);
      expect(next.status === 'claimed' && next.record.status === 'found' && next.record.record.history.turns.map((t) => t.text)).toEqual(['my order is 553']);
    } finally {
      await close();
    }
  });

  it('counts its visit on top of the ones Redis kept: after the replay the profile says 4th visit since the first, not a first visit', async () => {
    const { relay, direct, tiered, close } = await cutOffJob('visits', 100);
    try {
      const key = { agentName: 'agent', identity: 'regular' };
      const t0 = Date.now();
      // Three earlier visits, each a conversation that ended, through other jobs.
      for (let v = 1; v <= 3; v++) {
        const c = await direct.resumeAndClaim(key, `job-${v}`, t0 + v, 60_000);
        if (c.status !== 'claimed') throw new Error('claim');
        const rec = newSessionRecord({ ...key, sessionId: `s-${v}`, nowMs: t0 + v, profile: c.profile });
        const version = await direct.save(rec, c.version, c.lease);
        await direct.end(suspendedRecord(rec, t0 + v, 'ended'), version, c.lease, t0 + v);
      }
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 3, firstSeenAt: t0 + 1 });

      // A new job whose Redis stops answering: the fourth visit is counted from nothing.
      relay.cut();
      const c4 = await tiered.resumeAndClaim(key, 'job-4', t0 + 10_000, 60_000);
      if (c4.status !== 'claimed') throw new Error('claim 4');
      expect(c4.storeAvailable).toBe(false);
      const rec4 = newSessionRecord({ ...key, sessionId: 's-4', nowMs: t0 + 10_000, profile: c4.profile });
      expect(rec4.visitCount).toBe(1);
      const v4 = await tiered.save(rec4, c4.version, c4.lease);
      expect(tiered.isDegraded).toBe(true);

      relay.heal();
      await until(async () => !tiered.isDegraded && tiered.pendingReplayCount === 0, 15_000);
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 4, firstSeenAt: t0 + 1, lastSessionId: 's-4' });
      const r = await direct.readRecord(key);
      expect(r.status === 'found' && [r.record.sessionId, r.record.visitCount, r.record.firstSeenAt]).toEqual(['s-4', 4, t0 + 1]);

      // The job goes on with the record it started with (visit 1): its next writes keep the count.
      const said = (text: string, atMs: number) => ({ id: `t-${atMs}`, role: 'user' as const, text, createdAtMs: atMs });
      const rec5 = recordWithTurn(rec4, said('one more thing', t0 + 11_000));
      const v5 = await tiered.save(rec5, v4, c4.lease);
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 4, firstSeenAt: t0 + 1 });
      // Another outage and its replay: still the 4th visit, not counted a second time.
      relay.cut();
      const rec6 = recordWithTurn(rec5, said('and another', t0 + 12_000));
      const v6 = await tiered.save(rec6, v5, c4.lease);
      expect(tiered.isDegraded).toBe(true);
      relay.heal();
      await until(async () => !tiered.isDegraded && tiered.pendingReplayCount === 0, 15_000);
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 4, firstSeenAt: t0 + 1 });
      // The participant leaves: the suspended record and profile still count four visits.
      await tiered.suspend(suspendedRecord(rec6, t0 + 13_000, 'network'), v6, c4.lease, t0 + 13_000);
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 4, firstSeenAt: t0 + 1 });
      const left = await direct.readRecord(key);
      expect(left.status === 'found' && [left.record.visitCount, left.record.firstSeenAt, left.record.history.turns.map((t) => t.text)]).toEqual([4, t0 + 1, ['one more thing', 'and another']]);
      // A new conversation in the same job (the next visitor of an AlwaysFresh kiosk): claimed
      // again, its record built from the job's own (visit 2, first seen at the outage): the 5th.
      const again = await tiered.resumeAndClaim(key, 'job-4', t0 + 14_000, 60_000);
      if (again.status !== 'claimed') throw new Error('claim again');
      const rec7 = newSessionRecord({ ...key, sessionId: 's-5', nowMs: t0 + 14_000, profile: profileFromRecord(rec6) });
      expect([rec7.visitCount, rec7.firstSeenAt]).toEqual([2, t0 + 10_000]);
      await tiered.save(rec7, again.version, again.lease);
      expect(await direct.readProfile(key)).toMatchObject({ visitCount: 5, firstSeenAt: t0 + 1, lastSessionId: 's-5' });
    } finally {
      await close();
    }
  });
});
