import { afterAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { KeyBuilder } from '../../../lib/store/keys.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { fileURLToPath } from 'node:url';
import { SCRIPTS, scriptSource, toStoreError } from '../../../lib/store/redis_scripts.js';
import { randomPrefix } from '../../support/env.js';
import { ManualClock } from '../../../lib/clock.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import { sessionStoreContract, until } from './contract.js';
import { connectTestRedis, tamperRecordWith, unlinkPrefix } from './redis_support.js';

const redis: Redis = await connectTestRedis();
const prefixes: string[] = [];

afterAll(() => redis.disconnect());
sessionStoreContract({
  name: 'RedisSessionStore',
  make: async (opts) => {
    const prefix = randomPrefix('store');
    prefixes.push(prefix);
    return new RedisSessionStore({ ...opts, client: redis, prefix });
  },
  tamper: tamperRecordWith(redis),
  cleanup: async () => {
    for (const p of prefixes) await unlinkPrefix(redis, `${p}*`);
  },
});

describe('the Lua scripts', () => {
  it('get shared code pasted in where they include it: every script is whole, with no include line left', () => {
    const dir = fileURLToPath(new URL('../../../lib/store/scripts', import.meta.url));
    const sources = Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [name, scriptSource(dir, s.file)]));
    for (const src of Object.values(sources)) expect(src).not.toMatch(/^-- #include/m);
    for (const name of ['claim', 'restore']) expect((sources[name] as string).match(/local function keepTail\(/g)).toHaveLength(1);
    // The include precedes the code that calls it.
    expect((sources.claim as string).indexOf('local function keepTail(')).toBeLessThan((sources.claim as string).indexOf('keepTail(KEYS'));
  });
});

describe('RedisSessionStore specifics', () => {
  it('a forget that runs while a replay is being written erases what the replay wrote; the mark of it names no identity', async () => {
    const prefix = randomPrefix('forget-race');
    prefixes.push(prefix);
    const admin = new RedisSessionStore({ client: redis, prefix });
    const identity = 'erased-mid-replay';
    const mark = admin.keys.forgetMark(identity);
    // The replaying job's connection: its first look at the mark happens just before the
    // erasure (another process's "Forget me") and finds nothing.
    let looked = false;
    const racing = new Proxy(redis, {
      get(target, prop, receiver) {
        if (prop === 'get')
          return async (k: string) => {
            if (k === mark && !looked) {
              looked = true;
              await admin.forget(identity);
              return null;
            }
            return target.get(k);
          };
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const job = new RedisSessionStore({ client: racing, prefix });
    const key = { agentName: 'agent', identity };
    const nowMs = Date.now() - 1_000;
    const record = newSessionRecord({ ...key, sessionId: 's-cut-off', nowMs, profile: null });
    const out = await job.restore({ key, version: 1, lease: { owner: 'job', fence: 1, expiresAtMs: nowMs + 30_000, claimedAtMs: nowMs }, record, profile: null, archive: [] }, 'job', nowMs);
    expect(looked).toBe(true);
    expect(out).toEqual({ status: 'skipped', why: 'forgotten' });
    expect(await admin.exportIdentity(identity)).toEqual([]);
    expect(await redis.keys(`${prefix}*`)).toEqual([mark]);
    expect(mark).not.toContain(Buffer.from(identity).toString('base64url'));
  });

  it('keeps every key of a session in one hash slot and never leaks raw identities into keys', () => {
    const store = new RedisSessionStore({ client: redis, prefix: 'p:' });
    const keys = Object.values(store.keys.session({ agentName: 'ag', identity: 'a}:{b' }));
    const tags = new Set(keys.map((k) => /\{([^}]*)\}/.exec(k)?.[1]));
    expect(tags.size).toBe(1);
    for (const k of keys) expect(k).not.toContain('a}:{b');
    expect(() => new RedisSessionStore({ client: redis, prefix: 'bad{' })).toThrow(/prefix/);
  });

  it('gives every session its own keys, however many sessions and however long the identity (kept keys included)', () => {
    const keys = new KeyBuilder('p:');
    const names = ['ag', 'ag2'];
    const identities = [...Array.from({ length: 2_500 }, (_, i) => `user-${i}`), 'x'.repeat(10_000), 'a}:{b', '\u0000', '🙂'];
    const seen = new Map<string, string>();
    // Twice over: the second pass reads what the first kept (and what was dropped when full).
    for (let pass = 0; pass < 2; pass++) {
      for (const agentName of names) {
        for (const identity of identities) {
          const k = keys.session({ agentName, identity });
          expect(k).toEqual(new KeyBuilder('p:').session({ agentName, identity }));
          expect(keys.parseMetaKey(k.meta)).toEqual({ agentName, identity });
          const owner = seen.get(k.rec);
          expect(owner === undefined || owner === `${agentName}\u0001${identity}`).toBe(true);
          seen.set(k.rec, `${agentName}\u0001${identity}`);
        }
      }
    }
    expect(seen.size).toBe(names.length * identities.length);
    expect(Object.isFrozen(keys.session({ agentName: 'ag', identity: 'user-1' }))).toBe(true);
  });

  it('a crashed owner\'s kept turns are validated like any stored payload, and forget erases them', async () => {
    const prefix = randomPrefix('tail');
    prefixes.push(prefix);
    const store = new RedisSessionStore({ client: redis, prefix, sessionTtlMs: 300 });
    const key = { agentName: 'ag', identity: 'tail' };
    const nowMs = Date.now();
    const c = await store.resumeAndClaim(key, 'job-a', nowMs, 30_000);
    if (c.status !== 'claimed') throw new Error('claim');
    const version = await store.save(newSessionRecord({ ...key, sessionId: 's-crashed', nowMs, profile: null }), c.version, c.lease);
    expect(version).toBe(c.version + 1);
    await store.appendTurn(key, { id: 't1', role: 'user', text: 'after the last save', createdAtMs: nowMs + 1 }, c.lease);
    await until(async () => (await store.readRecord(key)).status === 'missing');
    // The next claim moves the kept turns next to the archive copy.
    await store.resumeAndClaim(key, 'job-b', Date.now(), 30_000);
    const k = store.keys.session(key);
    expect(await redis.llen(k.turns)).toBe(0);
    expect((await store.readArchive(key, Date.now()))[0]?.record?.history.turns.map((t) => t.text)).toEqual(['after the last save']);
    // A kept turn that does not read is left out and named; the conversation as last saved and
    // the kept turns that do read stay readable for the audit.
    const [good] = JSON.parse((await redis.hget(k.archiveTail, 's-crashed')) ?? '[]') as string[];
    const robot = '{"id":"t2","role":"robot","text":"x","createdAtMs":1}';
    const truncated = (good as string).slice(0, -1);
    for (const [bad, kept] of [
      ['not json', []],
      ['[1, 2]', []],
      [JSON.stringify([good, robot]), ['after the last save']],
      [JSON.stringify([truncated, good]), ['after the last save']],
    ] as const) {
      await redis.hset(k.archiveTail, 's-crashed', bad);
      const [entry] = await store.readArchive(key, Date.now());
      expect([entry?.sessionId, entry?.problem, entry?.record?.sessionId, entry?.record?.history.turns.map((t) => t.text)]).toEqual(['s-crashed', 'record_invalid', 's-crashed', kept]);
    }
    await store.forget('tail');
    expect(await redis.exists(k.archiveTail, k.archive, k.archiveData, k.turns)).toBe(0);
  });

  it('a conversation kept alive by saves alone stays findable by forget: a takeover\'s first save and an hourly save index it again', async () => {
    const prefix = randomPrefix('index');
    prefixes.push(prefix);
    const key = { agentName: 'ag', identity: 'kept-by-saves' };
    const jobA = new RedisSessionStore({ client: redis, prefix });
    const clock = new ManualClock(Date.now());
    const jobB = new RedisSessionStore({ client: redis, prefix, clock });
    const admin = new RedisSessionStore({ client: redis, prefix });
    const idx = jobA.keys.identityIndex(key.identity);
    const t0 = Date.now();
    const a = await jobA.resumeAndClaim(key, 'job-a', t0, 30_000);
    if (a.status !== 'claimed') throw new Error('claim');
    await jobA.save(newSessionRecord({ ...key, sessionId: 's-kept', nowMs: t0, profile: null }), a.version, a.lease);
    // The index lasts longer than the profile and the archive it points to.
    expect(await redis.pttl(idx)).toBeGreaterThan(30 * 24 * 3600_000);
    // Job A is SIGKILLed; its index ages out while the conversation lives on (here: removed).
    await redis.unlink(idx);
    const b = await jobB.resumeAndClaim(key, 'job-b', t0 + 60_000, 30_000);
    if (b.status !== 'claimed' || b.record.status !== 'found') throw new Error('takeover');
    let version = await jobB.save({ ...b.record.record, lastSeenAt: t0 + 60_001 }, b.version, b.lease);
    expect(await redis.scard(idx)).toBe(1);
    // Saves within the hour add no write of the index; an hour after its last indexing, one does
    // (timed by the store's clock: a save with no new turn counts as much as one with).
    await redis.unlink(idx);
    clock.advance(30 * 60_000);
    version = await jobB.save(b.record.record, version, b.lease);
    expect(await redis.exists(idx)).toBe(0);
    clock.advance(30 * 60_000);
    version = await jobB.save(b.record.record, version, b.lease);
    expect(await redis.scard(idx)).toBe(1);
    expect(await admin.forget(key.identity)).toEqual({ sessionKeysErased: 1 });
    expect((await admin.readRecord(key)).status).toBe('missing');
    expect(await admin.readArchive(key, Date.now())).toEqual([]);
  });

  it('treats a Redis that cannot take writes for now as unavailable (retry later), and a refusal as a fault', () => {
    const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });
    const unavailable = [
      'NOREPLICAS Not enough good replicas to write. script: 82cd, on @user_script:1.',
      "OOM command not allowed when used memory > 'maxmemory'.",
      'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
      "READONLY You can't write against a read only replica.",
      "ERR Error running script (call to f_1): @user_script:1: -READONLY You can't write against a read only replica.",
      'LOADING Redis is loading the dataset in memory',
    ];
    for (const m of unavailable) expect(toStoreError(reply(m))).toMatchObject({ code: 'store_unavailable', retryable: true });
    for (const m of ['ERR wrong number of arguments for command', 'ERR user_script:3: attempt to index a nil value (BOOM)', 'WRONGTYPE Operation against a key holding the wrong kind of value']) {
      expect(toStoreError(reply(m))).toMatchObject({ code: 'internal', retryable: false });
    }
  });

  it('does not close a client it was handed', async () => {
    const store = new RedisSessionStore({ client: redis, prefix: randomPrefix('own') });
    await store.dispose();
    expect(await redis.ping()).toBe('PONG');
  });
});
