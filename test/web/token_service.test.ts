/**
 * The token service over real HTTP on loopback, with the in-memory device store and with the
 * Redis one (a random prefix, cleaned with SCAN + UNLINK). LiveKit room deletion and session
 * erasure are injected; the browser test runs the whole chain for real.
 */
import { parseDispatchHint } from '../../lib/dispatch_hint.js';
import type { Redis } from 'ioredis';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTR_CONTEXT_PUBLISHER, ATTR_LANGUAGE, ATTR_LANGUAGE_CHOSEN, ATTR_RESUME_POLICY } from '../../lib/attributes.js';
import { RecordingLogger } from '../../lib/logger.js';
import { MemoryDeviceStore, RedisDeviceStore, type DeviceStore } from '../../web/server/device_store.js';
import { EXPORTS_PER_MIN, MAX_BODY_BYTES, startTokenService, type TokenService } from '../../web/server/service.js';
import type { IdentityExport } from '../../lib/identity_export.js';
import { PayloadCipher, parseKeyring } from '../../lib/store/crypto.js';
import { KeyBuilder } from '../../lib/store/keys.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { recordWithTurn } from '../../lib/session/history.js';
import { newSessionRecord, suspendedRecord } from '../../lib/session/record.js';
import { testRedisUrl } from '../support/env.js';
import { EVICTION_WARNING } from '../../lib/store/eviction.js';
import { PrivateRedis, freePort } from '../lib/store/private_redis.js';
import { connectTestRedis, unlinkPrefix } from '../lib/store/redis_support.js';
import { waitFor } from '../support/wait.js';
import { randomPrefix } from '../support/env.js';

const API_KEY = 'unit-key';
const API_SECRET = 'unit-secret-unit-secret-unit-secret-0123';

interface Claims {
  sub: string;
  attributes?: Record<string, string>;
  video: { room: string; roomJoin: boolean; canUpdateOwnMetadata?: boolean };
  roomConfig?: { departureTimeout?: number; agents?: Array<{ agentName: string; metadata?: string }> };
}

async function scanAll(client: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', '500');
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}

function claims(jwt: string): Claims {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Claims;
}

const redis: Redis = await connectTestRedis();
const prefix = randomPrefix('web');
afterAll(async () => {
  await unlinkPrefix(redis, `${prefix}*`);
  redis.disconnect();
});

const stores: Array<[string, () => DeviceStore]> = [
  ['memory', () => new MemoryDeviceStore()],
  ['redis', () => new RedisDeviceStore({ client: redis, prefix })],
];

describe.each(stores)('token service (%s device store)', (storeName, makeStore) => {
  let svc: TokenService;
  let now = Date.now();
  const deletedRooms: string[] = [];
  /** The sessions of the agent the service issues tokens for, in the test Redis. */
  const sessions = new RedisSessionStore({ client: redis, prefix: `${prefix}${storeName}-sessions:` });
  /** Identities whose next erasure goes to a session store nothing answers on (a closed port). */
  const eraserFailsFor = new Set<string>();
  let unreachable: RedisSessionStore;
  /** A conversation stored for `identity`, as the agent leaves one. */
  const storedConversation = async (identity: string) => {
    const key = { agentName: 'unit-agent', identity };
    const c = await sessions.resumeAndClaim(key, 'job-unit', Date.now(), 60_000);
    if (c.status !== 'claimed') throw new Error('claim');
    const rec = recordWithTurn(newSessionRecord({ ...key, sessionId: `s-${identity}`, nowMs: Date.now(), profile: null }), { id: 't1', role: 'user', text: 'my locker is 42', createdAtMs: Date.now() });
    await sessions.suspend(suspendedRecord(rec, Date.now(), 'client_initiated'), await sessions.save(rec, c.version, c.lease), c.lease, Date.now());
    expect((await sessions.exportIdentity(identity)).length).toBe(1);
  };
  const spawnedInto: string[] = [];
  const spawnHints: { room: string; identity: string }[] = [];
  const logger = new RecordingLogger();
  let store: DeviceStore;

  beforeAll(async () => {
    store = makeStore();
    unreachable = new RedisSessionStore({ url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 200, connectTimeoutMs: 200 });
    svc = await startTokenService({
      livekitUrl: 'ws://127.0.0.1:1',
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      port: 0,
      agentName: 'unit-agent',
      rejoinTtlMs: 45_500,
      allowedPolicies: ['AlwaysFresh', 'ResumeIfPossible'],
      roomReuseMs: 60_000,
      deviceStore: store,
      roomCloser: { deleteRoom: async (r) => void deletedRooms.push(r) },
      sessionEraser: { forget: (id) => (eraserFailsFor.delete(id) ? unreachable : sessions).forget(id) },
      agentSpawner: async (room, hint) => (spawnedInto.push(room), spawnHints.push({ room, identity: hint.identity }), 'dispatched'),
      logger,
      nowMs: () => now,
    });
  });
  afterAll(async () => {
    await svc?.close();
    await unreachable?.dispose();
  });

  const post = async (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const res = await fetch(`${svc.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const newDevice = async () => {
    const r = await post('/api/identity', {});
    expect(r.status).toBe(201);
    return r.body as { identity: string; deviceSecret: string };
  };

  it('issues an identity, then a token with the room configuration and trusted attributes', async () => {
    const d = await newDevice();
    const r = await post('/api/token', { ...d, policy: 'AlwaysFresh' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ url: 'ws://127.0.0.1:1', reused: false, policy: 'AlwaysFresh', rejoinTtlMs: 45_500 });
    const c = claims(r.body.token as string);
    expect(c.sub).toBe(d.identity);
    expect(c.video.room).toBe(r.body.room);
    expect(c.video.canUpdateOwnMetadata).toBe(false);
    expect(c.roomConfig?.departureTimeout).toBe(46); // covers the rejoin TTL, whole seconds
    expect(c.roomConfig?.agents?.[0]?.agentName).toBe('unit-agent');
    // The dispatch names who is joining, with the same policy as the trusted attribute.
    expect(parseDispatchHint(c.roomConfig?.agents?.[0]?.metadata)).toEqual({ v: 1, identity: d.identity, resumePolicy: 'AlwaysFresh' });
    expect(c.attributes?.[ATTR_RESUME_POLICY]).toBe('AlwaysFresh');
    expect(c.attributes?.[ATTR_CONTEXT_PUBLISHER]).toBeUndefined();
  });

  it('puts the page\'s language in the token (canonical BCP 47) and in the dispatch hint; refuses a malformed one with 400 and issues nothing', async () => {
    const d = await newDevice();
    const r = await post('/api/token', { ...d, language: 'es-mx' });
    expect(r.status).toBe(200);
    const c = claims(r.body.token as string);
    expect(c.attributes?.[ATTR_LANGUAGE]).toBe('es-MX');
    expect(parseDispatchHint(c.roomConfig?.agents?.[0]?.metadata)).toEqual({ v: 1, identity: d.identity, language: 'es-MX' });
    for (const language of ['español', 'es_MX', 7, 'x'.repeat(40)]) {
      const bad = await post('/api/token', { ...d, language });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ reason: 'language_invalid' });
    }
    expect(claims((await post('/api/token', d)).body.token as string).attributes?.[ATTR_LANGUAGE]).toBeUndefined();
    expect(c.attributes?.[ATTR_LANGUAGE_CHOSEN]).toBeUndefined();
  });

  it('marks a language the participant picked as chosen, in the token and the dispatch hint; a mark without a language is refused', async () => {
    const d = await newDevice();
    const r = await post('/api/token', { ...d, language: 'fr', languageChosen: true });
    expect(r.status).toBe(200);
    const c = claims(r.body.token as string);
    expect(c.attributes?.[ATTR_LANGUAGE]).toBe('fr');
    expect(c.attributes?.[ATTR_LANGUAGE_CHOSEN]).toBe('true');
    expect(parseDispatchHint(c.roomConfig?.agents?.[0]?.metadata)).toEqual({ v: 1, identity: d.identity, language: 'fr', languageChosen: true });
    const bad = await post('/api/token', { ...d, languageChosen: true });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ reason: 'language_chosen_invalid' });
  });

  it('without a requested policy the token carries none (the worker default)', async () => {
    const d = await newDevice();
    const r = await post('/api/token', d);
    expect(r.body.policy).toBeNull();
    expect(claims(r.body.token as string).attributes?.[ATTR_RESUME_POLICY]).toBeUndefined();
  });

  it('refuses a forged identity, a wrong secret and someone else’s identity with 403 invalid_credentials', async () => {
    const a = await newDevice();
    const b = await newDevice();
    for (const body of [
      { identity: 'alice', deviceSecret: 'guess' },
      { identity: a.identity, deviceSecret: 'guess' },
      { identity: a.identity, deviceSecret: b.deviceSecret },
      { identity: `${a.identity}x`, deviceSecret: a.deviceSecret },
    ]) {
      const r = await post('/api/token', body);
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ error: 'forbidden', reason: 'invalid_credentials' });
    }
  });

  it('reuses a room only for the identity it was issued to, and only within its window', async () => {
    const a = await newDevice();
    const b = await newDevice();
    const first = await post('/api/token', a);
    const room = first.body.room as string;
    expect(spawnedInto).not.toContain(room); // a new room: the token's own dispatch applies
    const again = await post('/api/token', { ...a, room });
    expect(again.body).toMatchObject({ room, reused: true });
    expect(spawnedInto).toContain(room); // a rejoined room gets its agent back if it has none
    expect(spawnHints).toContainEqual({ room, identity: a.identity }); // with the rejoining participant as its dispatch hint
    const theirs = await post('/api/token', { ...b, room });
    expect(theirs.status).toBe(403);
    expect(theirs.body.reason).toBe('room_not_issued');
    now += 60_001;
    const late = await post('/api/token', { ...a, room });
    expect(late.status).toBe(403);
    expect(late.body.reason).toBe('room_not_issued');
  });

  it('sends the agent into an issued room on request, with the participant as its hint; never into a room not issued to them', async () => {
    const a = await newDevice();
    const b = await newDevice();
    const room = (await post('/api/token', a)).body.room as string;
    const asked = await post('/api/agent', { ...a, room });
    expect(asked).toEqual({ status: 200, body: { agent: 'dispatched' } });
    expect(spawnHints).toContainEqual({ room, identity: a.identity });
    const before = spawnedInto.length;
    const theirs = await post('/api/agent', { ...b, room });
    expect(theirs.status).toBe(403);
    expect(theirs.body.reason).toBe('room_not_issued');
    const forged = await post('/api/agent', { ...a, deviceSecret: 'wrong', room });
    expect(forged.status).toBe(403);
    expect(forged.body.reason).toBe('invalid_credentials');
    const bad = await post('/api/agent', { ...a, room: '../x' });
    expect(bad.status).toBe(400);
    expect(bad.body.reason).toBe('room_invalid');
    expect(spawnedInto.length).toBe(before); // refused requests dispatched nothing
  });

  it('honours only the policies it allows', async () => {
    const d = await newDevice();
    const r = await post('/api/token', { ...d, policy: 'AlwaysResume' });
    expect(r.status).toBe(403);
    expect(r.body.reason).toBe('policy_not_allowed');
  });

  it('forget erases the sessions, closes the rooms and the credential', async () => {
    const d = await newDevice();
    const t = await post('/api/token', d);
    await storedConversation(d.identity);
    const f = await post('/api/forget', d);
    expect(f.status).toBe(200);
    expect(f.body).toMatchObject({ forgotten: true, roomsClosed: 1 });
    expect(f.body.sessionKeysErased).toBeGreaterThan(0);
    expect(await sessions.exportIdentity(d.identity)).toEqual([]);
    expect(deletedRooms).toContain(t.body.room);
    expect((await post('/api/token', d)).status).toBe(403);
    expect((await post('/api/forget', d)).status).toBe(403);
    expect(await store.get(d.identity)).toBeNull();
  });

  it('a forget the session store could not complete answers 503, keeps the credential, and succeeds when asked again', async () => {
    const d = await newDevice();
    const t = await post('/api/token', d);
    await storedConversation(d.identity);
    eraserFailsFor.add(d.identity);
    const failed = await post('/api/forget', d);
    expect(failed.status).toBe(503);
    expect(failed.body.reason).toBe('store_unavailable');
    expect((await sessions.exportIdentity(d.identity)).length).toBe(1);
    expect(await store.get(d.identity)).not.toBeNull();
    const again = await post('/api/forget', d);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ forgotten: true, roomsClosed: 1 });
    expect(again.body.sessionKeysErased).toBeGreaterThan(0);
    expect(await sessions.exportIdentity(d.identity)).toEqual([]);
    expect(deletedRooms).toContain(t.body.room);
    expect(await store.get(d.identity)).toBeNull();
  });

  it('with no shared store there is nothing to export: an empty export that says so', async () => {
    const d = await newDevice();
    const r = await post('/api/export', d);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ v: 1, identity: d.identity, sharedStore: false, rooms: [], agents: [] });
    // The rooms issued to it are part of what the service keeps.
    const t = await post('/api/token', d);
    expect((await post('/api/export', d)).body.rooms).toEqual([t.body.room]);
  });

  it('answers bad requests with a clear 4xx and reason', async () => {
    const d = await newDevice();
    expect((await post('/api/token', '{oops')).body).toMatchObject({ error: 'bad_request', reason: 'malformed_json' });
    expect((await post('/api/token', { identity: d.identity })).body.reason).toBe('secret_missing');
    expect((await post('/api/token', { ...d, room: 'a/b' })).body.reason).toBe('room_invalid');
    expect((await post('/api/token', { ...d, contextPublisher: true })).body.reason).toBe('unknown_field');
    const big = await post('/api/token', JSON.stringify({ identity: 'x'.repeat(MAX_BODY_BYTES) }));
    expect(big.status).toBe(413);
    expect(big.body.reason).toBe('body_too_large');
    const form = await post('/api/token', 'identity=a', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    const get = await fetch(`${svc.url}/api/token`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const missing = await fetch(`${svc.url}/api/nothing`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { reason: string }).reason).toBe('no_such_route');
    expect((await fetch(`${svc.url}/..%2Fpackage.json`)).status).toBe(404);
  });

  it('answers a request target that is no URL with 400 and goes on serving: one request never ends the service', async () => {
    // Node's parser accepts these targets; `new URL` refuses them (a port out of range).
    for (const target of ['//a:99999/', 'http://a:99999/']) {
      const head = await rawRequest(svc.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(head).toContain('"reason":"target_invalid"');
    }
    expect((await fetch(`${svc.url}/api/config`)).status).toBe(200);
  });

  it('serves its public settings', async () => {
    const r = await fetch(`${svc.url}/api/config`);
    expect(await r.json()).toEqual({ rejoinTtlMs: 45_500, policies: ['AlwaysFresh', 'ResumeIfPossible'], defaultPolicy: null });
  });

  it('logs identities only under pii and never a secret', async () => {
    const d = await newDevice();
    await post('/api/token', d);
    await post('/api/token', { identity: d.identity, deviceSecret: 'wrong-secret' });
    const lines = JSON.stringify(logger.lines);
    expect(lines).not.toContain(d.deviceSecret);
    expect(lines).not.toContain('wrong-secret');
    for (const line of logger.lines) {
      const { pii: _pii, ...rest } = line.fields;
      expect(JSON.stringify(rest)).not.toContain(d.identity);
    }
  });
});

describe('Redis device store', () => {
  it('stores only a hash of the secret, under the prefix, with a TTL', async () => {
    const svcPrefix = `${prefix}svc:`;
    const svc = await startTokenService({
      livekitUrl: 'ws://127.0.0.1:1',
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      port: 0,
      deviceStore: new RedisDeviceStore({ client: redis as Redis, prefix: svcPrefix }),
      sessionEraser: null,
    });
    try {
      const res = await fetch(`${svc.url}/api/identity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      const d = (await res.json()) as { identity: string; deviceSecret: string };
      // Besides the device record, only the per-address rate-limit counter (shared by every
      // service process; its name holds a hash, never the address).
      const all = await scanAll(redis as Redis, `${svcPrefix}*`);
      expect(all.filter((k) => k.startsWith(`${svcPrefix}{r.`))).toEqual([expect.stringMatching(/\{r\.identity\.[A-Za-z0-9_-]{22}\}$/)]);
      const keys = all.filter((k) => !k.startsWith(`${svcPrefix}{r.`));
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(/^pva-test:web:[a-z0-9]+:svc:\{d\.[A-Za-z0-9_-]+\}:device$/);
      const raw = await (redis as Redis).get(keys[0] as string);
      expect(raw).not.toContain(d.deviceSecret);
      expect(JSON.parse(raw as string)).toMatchObject({ v: 1, secretHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(await (redis as Redis).pttl(keys[0] as string)).toBeGreaterThan(24 * 3600 * 1000);
    } finally {
      await svc.close();
    }
  });
});

describe('"Download my data" (POST /api/export) on a real Redis, with the worker\'s keyring', () => {
  const keys = parseKeyring(`k1:${Buffer.alloc(32, 7).toString('base64')}`, 'STORE_ENCRYPTION_KEYS');
  const exportPrefix = randomPrefix('export');
  let svc: TokenService;
  let worker: RedisSessionStore;
  const logger = new RecordingLogger();

  beforeAll(async () => {
    svc = await startTokenService({ livekitUrl: 'ws://127.0.0.1:1', apiKey: API_KEY, apiSecret: API_SECRET, port: 0, redisUrl: testRedisUrl(), redisKeyPrefix: exportPrefix, encryptionKeys: keys, roomCloser: { deleteRoom: async () => {} }, agentSpawner: null, logger });
    // What a worker writes: sealed with the same keyring, under the same prefix.
    worker = new RedisSessionStore({ client: redis, prefix: exportPrefix, cipher: new PayloadCipher(keys) });
  });
  afterAll(async () => {
    await svc?.close();
    await unlinkPrefix(redis, `${exportPrefix}*`);
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${svc.url}/api/export`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const newDevice = async () => {
    const res = await fetch(`${svc.url}/api/identity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    return (await res.json()) as { identity: string; deviceSecret: string };
  };
  /** A conversation of `identity` with `agentName`, as a worker leaves it: saved turns, then suspended or ended. */
  const converse = async (agentName: string, identity: string, texts: string[], then: 'suspend' | 'end') => {
    const key = { agentName, identity };
    const nowMs = Date.now();
    const claim = await worker.resumeAndClaim(key, 'job-1', nowMs, 30_000);
    if (claim.status !== 'claimed') throw new Error('claim');
    let record = newSessionRecord({ ...key, sessionId: `s-${agentName}`, nowMs, profile: claim.profile, participantName: 'Ada' });
    texts.forEach((text, i) => (record = recordWithTurn(record, { id: `t${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text, createdAtMs: nowMs + i })));
    const version = await worker.save(record, claim.version, claim.lease);
    if (then === 'suspend') await worker.suspend(suspendedRecord(record, nowMs + 10, 'client_initiated'), version, claim.lease, nowMs + 10);
    else await worker.end(suspendedRecord(record, nowMs + 10, 'ended'), version, claim.lease, nowMs + 10);
  };

  it('gives the participant every conversation, profile and archived conversation kept about them, opened, and nothing of anyone else', async () => {
    const d = await newDevice();
    const other = await newDevice();
    await converse('concierge', d.identity, ['Book a table for two at eight.', 'Done: eight o\'clock, two people.'], 'suspend');
    await converse('support', d.identity, ['My router drops every few minutes.'], 'end');
    await converse('concierge', other.identity, ['Someone else\'s secret.'], 'suspend');

    const r = await post(d);
    expect(r.status).toBe(200);
    const x = r.body as unknown as IdentityExport;
    expect(x).toMatchObject({ v: 1, identity: d.identity, sharedStore: true });
    expect(x.agents.map((a) => a.agentName)).toEqual(['concierge', 'support']);
    const [concierge, support] = x.agents;
    expect(concierge?.current?.history.turns.map((t) => t.text)).toEqual(['Book a table for two at eight.', 'Done: eight o\'clock, two people.']);
    expect(concierge?.current?.participantName).toBe('Ada');
    expect(concierge?.current).not.toHaveProperty('owner'); // the lease is bookkeeping, not their data
    expect(concierge?.profile?.identity).toBe(d.identity);
    // The ended conversation: none current, the archived one with its turns and when.
    expect(support?.current).toBeNull();
    expect(support?.archived.map((a) => a.conversation?.history.turns.map((t) => t.text))).toEqual([['My router drops every few minutes.']]);
    expect(Number.isNaN(Date.parse(support?.archived[0]?.archivedAt ?? ''))).toBe(false);
    expect(JSON.stringify(x)).not.toContain('Someone else');
    // Logged without the identity outside pii.
    const line = logger.lines.find((l) => l.msg === 'identity exported');
    expect(line?.fields).toMatchObject({ agents: 2, pii: { identity: d.identity } });
  });

  it('an identity with nothing stored gets an empty export; after "Forget me" there is nothing either', async () => {
    const d = await newDevice();
    expect((await post(d)).body).toMatchObject({ identity: d.identity, agents: [] });
    const f = await newDevice();
    await converse('concierge', f.identity, ['Remember me.'], 'suspend');
    expect(((await post(f)).body as unknown as IdentityExport).agents).toHaveLength(1);
    // The credential goes with the forget, so the export itself is refused; the store holds nothing.
    const forgot = await fetch(`${svc.url}/api/forget`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(f) });
    expect(forgot.status).toBe(200);
    expect((await post(f)).status).toBe(403);
    expect(await worker.exportIdentity(f.identity)).toEqual([]);
  });

  it('refuses a wrong secret or someone else\'s identity with 403, and limits exports per identity', async () => {
    const d = await newDevice();
    const other = await newDevice();
    expect((await post({ identity: d.identity, deviceSecret: other.deviceSecret })).status).toBe(403);
    expect((await post({ identity: d.identity })).status).toBe(400);
    for (let i = 0; i < EXPORTS_PER_MIN; i++) expect((await post(d)).status).toBe(200);
    const limited = await post(d);
    expect(limited.status).toBe(429);
    expect(limited.body.reason).toBe('rate_limited');
    // Another identity is not held back by it.
    expect((await post(other)).status).toBe(200);
  });

  it('an export the session store could not answer is 503 and does not count against the limit', async () => {
    let failing = true;
    const flaky = await startTokenService({
      livekitUrl: 'ws://127.0.0.1:1',
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      port: 0,
      roomCloser: { deleteRoom: async () => {} },
      agentSpawner: null,
      sessionExporter: {
        exportIdentity: async (identity) => {
          if (failing) throw new Error('Command timed out');
          return worker.exportIdentity(identity);
        },
      },
    });
    try {
      const call = async (path: string, body: unknown) => {
        const res = await fetch(`${flaky.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const d = (await call('/api/identity', {})).body;
      for (let i = 0; i < EXPORTS_PER_MIN + 2; i++) expect(await call('/api/export', d)).toMatchObject({ status: 503, body: { reason: 'store_unavailable' } });
      failing = false;
      expect((await call('/api/export', d)).status).toBe(200);
    } finally {
      await flaky.close();
    }
  });

  it('a service without the keyring exports a sealed conversation as unreadable, never as ciphertext', async () => {
    const keyless = await startTokenService({ livekitUrl: 'ws://127.0.0.1:1', apiKey: API_KEY, apiSecret: API_SECRET, port: 0, redisUrl: testRedisUrl(), redisKeyPrefix: exportPrefix, roomCloser: { deleteRoom: async () => {} }, agentSpawner: null });
    try {
      const res = await fetch(`${keyless.url}/api/identity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      const d = (await res.json()) as { identity: string; deviceSecret: string };
      await converse('concierge', d.identity, ['Sealed words.'], 'suspend');
      const r = await fetch(`${keyless.url}/api/export`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(d) });
      const x = (await r.json()) as IdentityExport;
      expect(x.agents[0]).toMatchObject({ agentName: 'concierge', current: null, currentUnreadable: 'record_invalid' });
      expect(JSON.stringify(x)).not.toContain('Sealed words');
      // Only the profile is left (the conversation and its archive have expired; the profile lives
      // 30 days): still named as kept and unreadable, never left out as if nothing were stored.
      const profileOnly = (await (await fetch(`${keyless.url}/api/identity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { identity: string; deviceSecret: string };
      await converse('concierge', profileOnly.identity, ['My PIN is in the drawer.'], 'suspend');
      const k = new KeyBuilder(exportPrefix).session({ agentName: 'concierge', identity: profileOnly.identity });
      await redis.unlink(k.rec, k.meta, k.turns, k.archive, k.archiveData, k.archiveTail);
      const y = (await (await fetch(`${keyless.url}/api/export`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(profileOnly) })).json()) as IdentityExport;
      expect(y.agents).toEqual([{ agentName: 'concierge', current: null, profile: null, profileUnreadable: 'record_invalid', archived: [] }]);
      // With the keyring, the same profile is given whole.
      const z = (await post(profileOnly)).body as unknown as IdentityExport;
      expect(z.agents[0]?.profile).toMatchObject({ identity: profileOnly.identity, lastTopic: 'My PIN is in the drawer.' });
    } finally {
      await keyless.close();
    }
  });
});

describe('a token service on a Redis that evicts keys when full', () => {
  it('warns at start, naming the server and its policy: issued identities and conversations could vanish', async () => {
    const server = new PrivateRedis(await freePort(), ['--maxmemory', '32mb', '--maxmemory-policy', 'allkeys-lru']);
    await server.start();
    const logger = new RecordingLogger();
    const svc = await startTokenService({ livekitUrl: 'ws://127.0.0.1:1', apiKey: API_KEY, apiSecret: API_SECRET, port: 0, redisUrl: server.url, logger });
    try {
      const warning = await waitFor('the eviction warning', () => logger.lines.find((l) => l.msg === EVICTION_WARNING));
      expect(warning).toMatchObject({ level: 'warn', fields: { redisMasters: [{ node: `127.0.0.1:${server.port}`, policy: 'allkeys-lru', maxmemoryBytes: 32 * 1024 * 1024 }] } });
    } finally {
      await svc.close();
      await server.kill();
    }
  });
});

/** Sends `text` as it is (no URL normalising, unlike fetch) and resolves with the whole answer. */
function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(text));
    let answer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer within 5 s to ${JSON.stringify(text.split('\r\n')[0])}`)));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}
