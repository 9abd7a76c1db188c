/**
 * Key rotation on a real Redis: `RedisSessionStore.resealSession` seals every stored payload of a
 * session (record, pending turns, profile, archived records, a crashed owner's archived tail)
 * under the keyring's current key, so a store holding only the new key reads everything the old
 * one wrote; plaintext from before encryption was turned on is sealed too; TTLs are kept; a
 * payload that does not open is left and counted; a payload rewritten between the read and the
 * write is left as rewritten.
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { recordWithTurn } from '../../../lib/session/history.js';
import { newSessionRecord, type Turn } from '../../../lib/session/record.js';
import { PayloadCipher, parseKeyring, sealedKeyId } from '../../../lib/store/crypto.js';
import { RedisSessionStore, type ResealReport } from '../../../lib/store/redis_session_store.js';
import { callScript } from '../../../lib/store/redis_scripts.js';
import type { SessionKey } from '../../../lib/store/session_store.js';
import { randomPrefix } from '../../support/env.js';
import { until } from './contract.js';
import { connectTestRedis, unlinkPrefix } from './redis_support.js';

const redis: Redis = await connectTestRedis();
const prefixes: string[] = [];
const stores: RedisSessionStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.dispose();
  for (const p of prefixes) await unlinkPrefix(redis, `${p}*`);
  redis.disconnect();
});

const K1 = `k1:${Buffer.alloc(32, 1).toString('base64')}`;
const K2 = `k2:${Buffer.alloc(32, 2).toString('base64')}`;
const LEASE_MS = 30_000;

/** A store on the test Redis under `prefix`, sealing with `keys` (a keyring's text) when given. */
function storeOn(prefix: string, keys?: string, sessionTtlMs = 60_000): RedisSessionStore {
  const cipher = keys === undefined ? {} : { cipher: new PayloadCipher(parseKeyring(keys, 'STORE_ENCRYPTION_KEYS')) };
  const store = new RedisSessionStore({ client: redis, prefix, sessionTtlMs, ...cipher });
  stores.push(store);
  return store;
}

function turn(text: string, i: number): Turn {
  return { id: `${text}-${i}`, role: i % 2 ? 'assistant' : 'user', text, createdAtMs: Date.now() + i };
}

/** Claims `key` for `owner` and saves a record with `texts` as its turns; returns the lease. */
async function conversation(store: RedisSessionStore, key: SessionKey, owner: string, sessionId: string, texts: string[]) {
  const claim = await store.resumeAndClaim(key, owner, Date.now(), LEASE_MS);
  if (claim.status !== 'claimed') throw new Error('claim failed');
  let record = newSessionRecord({ ...key, sessionId, nowMs: Date.now(), profile: claim.profile });
  texts.forEach((t, i) => (record = recordWithTurn(record, turn(t, i))));
  await store.save(record, claim.version, claim.lease);
  return claim.lease;
}

/**
 * A session with something in every sealed slot: a conversation whose owner crashed after two
 * unsaved turns (its archive copy, and its tail moved to the archive by the next claim), then
 * the next conversation, saved, with one turn pending, and the profile.
 */
async function fullSession(store: RedisSessionStore, key: SessionKey): Promise<void> {
  const crashed = await conversation(store, key, 'job-a', 's-crashed', ['saved before the crash']);
  await store.appendTurn(key, turn('said after the last save', 1), crashed);
  await store.appendTurn(key, turn('the last words', 2), crashed);
  await until(async () => (await store.readRecord(key)).status === 'missing');
  const lease = await conversation(store, key, 'job-b', 's-next', ['a new conversation']);
  await store.appendTurn(key, turn('pending turn', 3), lease);
}

/** What a store reads of `key`: turn texts of the record and of each archive entry, the visit count. */
async function everything(store: RedisSessionStore, key: SessionKey) {
  const record = await store.readRecord(key);
  const archive = await store.readArchive(key, Date.now());
  return {
    record: record.status === 'found' ? record.record.history.turns.map((t) => t.text) : record,
    archive: archive.map((a) => [a.sessionId, a.problem ?? null, a.record?.history.turns.map((t) => t.text) ?? null]),
    visits: (await store.readProfile(key))?.visitCount ?? null,
  };
}

/** Every stored payload under `prefix` (strings, list items, hash values, tail elements). */
async function rawPayloads(prefix: string): Promise<string[]> {
  const out: string[] = [];
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, page] = await redis.scan(cursor, 'MATCH', `${prefix}{s.*`, 'COUNT', '500');
    keys.push(...page);
    cursor = next;
  } while (cursor !== '0');
  for (const k of keys) {
    const type = await redis.type(k);
    if (k.endsWith(':rec') || k.endsWith(':profile')) out.push((await redis.get(k)) ?? '');
    else if (type === 'list') out.push(...(await redis.lrange(k, 0, -1)));
    else if (k.endsWith(':archdata')) out.push(...(await redis.hvals(k)));
    else if (k.endsWith(':archtail')) for (const tail of await redis.hvals(k)) out.push(...(JSON.parse(tail) as string[]));
  }
  return out;
}

/** Reseals every stored session under `store`'s prefix; reports by identity. */
async function resealAll(store: RedisSessionStore, dryRun = false): Promise<Record<string, ResealReport>> {
  const out: Record<string, ResealReport> = {};
  let cursor: string | null = null;
  do {
    const page = await store.listStoredSessions({ cursor });
    // A session can be listed on more than one page (SCAN): resealed once, as the CLI does.
    for (const key of page.items) if (!(key.identity in out)) out[key.identity] = await store.resealSession(key, dryRun);
    cursor = page.cursor;
  } while (cursor !== null);
  return out;
}

describe('RedisSessionStore.resealSession (key rotation)', () => {
  it('seals every payload under the new key, after which a store holding only the new key reads everything; plaintext is sealed too; TTLs are kept; a second pass finds nothing to do', async () => {
    const prefix = randomPrefix('rekey');
    prefixes.push(prefix);
    const alice = { agentName: 'agent', identity: 'alice' };
    const bob = { agentName: 'agent', identity: 'bob' };
    const old = storeOn(prefix, K1, 300);
    await fullSession(old, alice);
    // bob was written before encryption was turned on.
    const plain = storeOn(prefix);
    const bobLease = await conversation(plain, bob, 'job-p', 's-bob', ['written in plaintext']);
    await plain.appendTurn(bob, turn('pending plaintext', 1), bobLease);
    const before = { alice: await everything(old, alice), bob: await everything(plain, bob) };
    expect(before.alice).toEqual({
      record: ['a new conversation', 'pending turn'],
      archive: [
        ['s-next', null, ['a new conversation']],
        ['s-crashed', null, ['saved before the crash', 'said after the last save', 'the last words']],
      ],
      visits: 2,
    });
    const recKey = old.keys.session(alice).rec;
    const ttlBefore = await redis.pttl(recKey);

    const rotating = storeOn(prefix, `${K2},${K1}`);
    const onlyNew = storeOn(prefix, K2);
    expect((await onlyNew.readRecord(alice)).status).toBe('invalid');

    const dry = await resealAll(rotating, true);
    // alice: record, pending turn, profile, two archived records (every save refreshes the archive
    // copy), two tail turns; bob: record, pending turn, profile, archived record.
    expect(dry.alice).toEqual({ payloads: 7, resealed: 7, current: 0, unreadable: 0, conflicts: 0, byKeyId: { k1: 7 } });
    expect(dry.bob).toEqual({ payloads: 4, resealed: 4, current: 0, unreadable: 0, conflicts: 0, byKeyId: { plaintext: 4 } });
    expect((await onlyNew.readRecord(alice)).status).toBe('invalid'); // a dry run writes nothing

    const done = await resealAll(rotating);
    expect(done.alice).toMatchObject({ payloads: 7, resealed: 7, unreadable: 0, conflicts: 0 });
    expect(done.bob).toMatchObject({ payloads: 4, resealed: 4, unreadable: 0, conflicts: 0 });
    expect({ alice: await everything(onlyNew, alice), bob: await everything(onlyNew, bob) }).toEqual(before);
    const raw = await rawPayloads(prefix);
    expect(raw).toHaveLength(11);
    expect(raw.map(sealedKeyId)).toEqual(raw.map(() => 'k2'));
    const ttlAfter = await redis.pttl(recKey);
    expect(ttlAfter).toBeGreaterThan(0);
    expect(ttlAfter).toBeLessThanOrEqual(ttlBefore);

    const again = await resealAll(rotating);
    expect(again.alice).toMatchObject({ payloads: 7, resealed: 0, current: 7, byKeyId: { k2: 7 } });
  });

  it('leaves a payload that does not open (under a key no longer in the keyring) as it is, and counts it', async () => {
    const prefix = randomPrefix('rekey-lost');
    prefixes.push(prefix);
    const key = { agentName: 'agent', identity: 'carol' };
    await conversation(storeOn(prefix, K1), key, 'job-a', 's-carol', ['hello']);
    const profileKey = storeOn(prefix).keys.session(key).profile;
    const profileBefore = await redis.get(profileKey);
    // The keyring lost k1: the record, its archive copy and the profile cannot be opened.
    const report = await storeOn(prefix, K2).resealSession(key);
    expect(report).toMatchObject({ payloads: 3, resealed: 0, unreadable: 3, conflicts: 0, byKeyId: { k1: 3 } });
    expect(await redis.get(profileKey)).toBe(profileBefore);
  });

  it('replaces a payload only if it still holds what was read (a job that rewrote it meanwhile wins)', async () => {
    const prefix = randomPrefix('rekey-cas');
    prefixes.push(prefix);
    const store = storeOn(prefix, `${K2},${K1}`);
    const k = store.keys.session({ agentName: 'agent', identity: 'dave' });
    await redis.set(k.profile, 'what the job wrote', 'PX', 60_000);
    await redis.rpush(k.turns, 'turn-0', 'turn-1');
    const flags = await callScript(redis, 'reseal', [k.rec, k.turns, k.profile, k.archiveData, k.archiveTail], ['3', '', 'what was read', 'resealed', '2', '1', 'turn-1', 'turn-1 resealed', '2', '0', 'stale', 'x']);
    expect(flags).toEqual([0, 1, 0]);
    expect(await redis.get(k.profile)).toBe('what the job wrote');
    expect(await redis.lrange(k.turns, 0, -1)).toEqual(['turn-0', 'turn-1 resealed']);
  });

  it('needs a keyring', async () => {
    await expect(storeOn(randomPrefix('rekey-none')).resealSession({ agentName: 'a', identity: 'b' })).rejects.toMatchObject({ code: 'config_invalid' });
  });
});
