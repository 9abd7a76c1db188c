/**
 * `npm run sessions` run as an operator runs it (a child process, configuration from the
 * environment) with the Sentinel variables, against a real private Sentinel deployment: it lists,
 * shows and forgets sessions a worker wrote through the same sentinels, and opens sealed ones
 * with the worker's keyring (`STORE_ENCRYPTION_KEYS`).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { recordWithTurn } from '../../lib/session/history.js';
import { newSessionRecord } from '../../lib/session/record.js';
import { PayloadCipher, parseKeyring } from '../../lib/store/crypto.js';
import { EVICTION_WARNING } from '../../lib/store/eviction.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { SessionNotices, type SessionNotice } from '../../lib/store/session_notices.js';
import { until } from '../lib/store/contract.js';
import { PrivateRedis, canStartRedis, freePort } from '../lib/store/private_redis.js';
import { PrivateSentinel, SENTINEL_FIXTURE_TIMEOUT_MS } from '../lib/store/private_sentinel.js';
import { randomPrefix } from '../support/env.js';
import { RedisDeviceStore } from '../../web/server/device_store.js';
import type { IdentityExport } from '../../lib/identity_export.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the sessions CLI Sentinel test needs the redis-server binary (apt-get install redis-server)');

const DATA_PASSWORD = 'cli-data-pass';
const SENTINEL_PASSWORD = 'cli-sentinel-pass';
const LEASE_MS = 30_000;
/** Bound of one CLI run (tsx compiles the script on a cold start), ms. */
const CLI_DEADLINE_MS = 30_000;
const root = fileURLToPath(new URL('../..', import.meta.url));

const deployment = new PrivateSentinel({ sentinelCount: 1, masterName: 'pva-cli', password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
await deployment.start();
const opened: Array<RedisSessionStore | SessionNotices> = [];

afterAll(async () => {
  for (const o of opened) await (o instanceof RedisSessionStore ? o.dispose() : o.close());
  await deployment.stop(); // the deployment is private: its keys go with it
});

/** The variables an operator sets for a Sentinel deployment, with its own key prefix. */
function sentinelEnv(prefix: string): Record<string, string> {
  return {
    REDIS_SENTINELS: deployment.sentinelAddresses.map((a) => `${a.host}:${a.port}`).join(','),
    REDIS_SENTINEL_MASTER: deployment.masterName,
    REDIS_PASSWORD: DATA_PASSWORD,
    REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD,
    REDIS_KEY_PREFIX: prefix,
  };
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's JSON lines. */
  lines: Array<Record<string, unknown>>;
}

/** Runs `npm run sessions -- <args>` (tsx scripts/sessions.ts) with only `env` (no `.env`). */
async function sessions(args: string[], env: Record<string, string>): Promise<CliRun> {
  const fullEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PVA_ENV_FILE: '', ...env };
  const r = await promisify(execFile)(`${root}/node_modules/.bin/tsx`, ['scripts/sessions.ts', ...args], { cwd: root, env: fullEnv, encoding: 'utf8', timeout: CLI_DEADLINE_MS }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { ...r, lines };
}

/** A worker's store on the same deployment, through the sentinels (sealing with `keys`, a keyring's text, when given). */
function workerStore(prefix: string, keys?: string): RedisSessionStore {
  const cipher = keys === undefined ? {} : { cipher: new PayloadCipher(parseKeyring(keys, 'STORE_ENCRYPTION_KEYS')) };
  const store = new RedisSessionStore({ sentinel: deployment.target, prefix, commandTimeoutMs: SENTINEL_FIXTURE_TIMEOUT_MS, ...cipher });
  opened.push(store);
  return store;
}

/** Writes a session with `texts` as its turns, as a worker's job would. */
async function seed(store: RedisSessionStore, identity: string, texts: string[]): Promise<void> {
  const key = { agentName: 'agent', identity };
  const claim = await store.resumeAndClaim(key, `job-${identity}`, Date.now(), LEASE_MS);
  if (claim.status !== 'claimed') throw new Error('claim failed');
  let record = newSessionRecord({ ...key, sessionId: `s-${identity}`, nowMs: Date.now(), profile: null });
  texts.forEach((text, i) => {
    record = recordWithTurn(record, { id: `t${i}`, role: i % 2 ? 'assistant' : 'user', text, createdAtMs: Date.now() + i });
  });
  await store.save(record, claim.version, claim.lease);
}

describe('npm run sessions with REDIS_SENTINELS', () => {
  it('list prints every session on the master, one JSON line each', async () => {
    const prefix = randomPrefix('cli-list');
    const store = workerStore(prefix);
    await seed(store, 'alice', ['My router keeps dropping.', 'Which model is it?']);
    await seed(store, 'bob', ['Hello.']);

    const r = await sessions(['list'], sentinelEnv(prefix));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const byIdentity = [...r.lines].sort((a, b) => String(a.identity).localeCompare(String(b.identity)));
    expect(byIdentity).toMatchObject([
      { agentName: 'agent', identity: 'alice', sessionId: 's-alice', turns: 2 },
      { agentName: 'agent', identity: 'bob', sessionId: 's-bob', turns: 1 },
    ]);
  });

  it('show prints the record of one identity with its turns', async () => {
    const prefix = randomPrefix('cli-show');
    await seed(workerStore(prefix), 'alice', ['My router keeps dropping.', 'Which model is it?']);

    const r = await sessions(['show', '--identity', 'alice', '--agent', 'agent'], sentinelEnv(prefix));
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(1);
    const shown = r.lines[0] as { record: { status: string; record?: { history: { turns: Array<{ text: string }> } } } };
    expect(shown.record.status).toBe('found');
    expect(shown.record.record?.history.turns.map((t) => t.text)).toEqual(['My router keeps dropping.', 'Which model is it?']);
  });

  it('with STORE_ENCRYPTION_KEYS, list and show open sealed sessions; without it they show no text and say which variable is missing', async () => {
    const prefix = randomPrefix('cli-sealed');
    const keys = `k2:${Buffer.alloc(32, 2).toString('base64')},k1:${Buffer.alloc(32, 1).toString('base64')}`;
    await seed(workerStore(prefix, keys), 'alice', ['My PIN is in the drawer.', 'Noted.']);
    const show = ['show', '--identity', 'alice', '--agent', 'agent'];

    const opened = await sessions(show, { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: keys });
    expect(opened.code).toBe(0);
    const shown = opened.lines[0] as { record: { status: string; record?: { history: { turns: Array<{ text: string }> } } }; profile: { visitCount: number } | null };
    expect(shown.record.status).toBe('found');
    expect(shown.record.record?.history.turns.map((t) => t.text)).toEqual(['My PIN is in the drawer.', 'Noted.']);
    expect(shown.profile?.visitCount).toBe(1);
    expect(shown).not.toHaveProperty('profileUnreadable');
    const listed = await sessions(['list'], { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: keys });
    expect(listed.lines).toMatchObject([{ identity: 'alice', sessionId: 's-alice', turns: 2 }]);

    const keyless = await sessions(show, sentinelEnv(prefix));
    expect(keyless.code).toBe(0);
    expect(keyless.lines[0]).toMatchObject({ record: { status: 'invalid', hint: expect.stringContaining('STORE_ENCRYPTION_KEYS') }, profile: null, profileUnreadable: 'record_invalid' });
    expect(keyless.stdout).not.toContain('PIN');
    expect((await sessions(['list'], sentinelEnv(prefix))).lines).toMatchObject([{ identity: 'alice', status: 'invalid', hint: expect.stringContaining('STORE_ENCRYPTION_KEYS') }]);

    // A keyring without the key that sealed it reads as tampered, never as text.
    const other = await sessions(show, { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: `k9:${Buffer.alloc(32, 9).toString('base64')}` });
    expect(other.lines[0]).toMatchObject({ record: { status: 'invalid', why: 'record_tampered' } });
    expect(other.stdout).not.toContain('PIN');
  });

  it('rekey seals every session under the current key: a dry run counts payloads by key id, the run reseals them, and then the old key can leave the keyring', async () => {
    const prefix = randomPrefix('cli-rekey');
    const k1 = `k1:${Buffer.alloc(32, 1).toString('base64')}`;
    const k2 = `k2:${Buffer.alloc(32, 2).toString('base64')}`;
    await seed(workerStore(prefix, k1), 'alice', ['My PIN is in the drawer.', 'Noted.']);
    await seed(workerStore(prefix, k1), 'bob', ['Hello.']);
    const rotating = { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: `${k2},${k1}` };

    const dry = await sessions(['rekey', '--dry-run'], rotating);
    expect(dry.code).toBe(0);
    // Per session: the record, its archive copy and the profile.
    expect(dry.lines).toEqual([{ rekey: 'dry_run', currentKeyId: 'k2', sessions: 2, payloads: 6, resealed: 6, current: 0, unreadable: 0, conflicts: 0, byKeyId: { k1: 6 } }]);

    const run = await sessions(['rekey'], rotating);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.lines).toMatchObject([{ rekey: 'done', sessions: 2, payloads: 6, resealed: 6, unreadable: 0, conflicts: 0 }]);
    expect(run.stdout).not.toMatch(/alice|bob|PIN/);

    const show = await sessions(['show', '--identity', 'alice', '--agent', 'agent'], { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: k2 });
    const shown = show.lines[0] as { record: { status: string; record?: { history: { turns: Array<{ text: string }> } } } };
    expect(shown.record.record?.history.turns.map((t) => t.text)).toEqual(['My PIN is in the drawer.', 'Noted.']);
    expect((await sessions(['rekey', '--dry-run'], { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: k2 })).lines).toMatchObject([{ payloads: 6, current: 6, byKeyId: { k2: 6 } }]);

    // Without the old key, what it sealed stays unreadable: counted (never named), exit 1.
    await seed(workerStore(prefix, k1), 'carol', ['Hi.']);
    const lost = await sessions(['rekey'], { ...sentinelEnv(prefix), STORE_ENCRYPTION_KEYS: k2 });
    expect(lost.code).toBe(1);
    expect(lost.lines).toMatchObject([{ rekey: 'done', unreadable: 3 }]);
    expect(lost.stderr.trim()).toBe('sessions: rekey incomplete: 3 payloads do not open (tampered, or under a key not in STORE_ENCRYPTION_KEYS) and were left as they are');
  });

  it('rekey without STORE_ENCRYPTION_KEYS is one usage error, exit 2', async () => {
    const r = await sessions(['rekey'], sentinelEnv(randomPrefix('cli-rekey-none')));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('sessions: rekey needs STORE_ENCRYPTION_KEYS: the first key seals, every key listed opens');
  });

  it('usage errors are one line and exit 2, never a stack trace or a "forgotten" that erased nothing: an empty --identity, a mistyped option, a malformed REDIS_URL (without its password)', async () => {
    const env = sentinelEnv(randomPrefix('cli-usage'));
    const empty = await sessions(['forget', '--identity', ''], env);
    expect(empty.code).toBe(2);
    expect(empty.stdout).toBe('');
    expect(empty.stderr.trim()).toBe('sessions: --identity is required and must not be empty');
    const typo = await sessions(['forget', '--identiy', 'alice'], env);
    expect(typo.code).toBe(2);
    expect(typo.stdout).toBe('');
    expect(typo.stderr).toMatch(/^sessions: Unknown option '--identiy'/);
    expect(typo.stderr).not.toMatch(/\n\s+at /);
    const url = await sessions(['show', '--identity', 'alice'], { REDIS_URL: 'redis://:s3cret-pass@127.0.0.1:notaport' });
    expect(url.code).toBe(2);
    expect(url.stderr.trim()).toBe('sessions: configuration error: REDIS_URL must be a redis:// or rediss:// URL (host, optional port 1-65535)');
  });

  it('with a malformed STORE_ENCRYPTION_KEYS prints one error naming it, without the key, and exits 2', async () => {
    const r = await sessions(['list'], { ...sentinelEnv(randomPrefix('cli-badkey')), STORE_ENCRYPTION_KEYS: 'k1:c2VjcmV0LWJ1dC1zaG9ydA==' });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^sessions: configuration error: STORE_ENCRYPTION_KEYS: key k1 must decode to 32 bytes, got 16$/);
    expect(r.stderr).not.toContain('c2VjcmV0LWJ1dC1zaG9ydA');
  });

  it('export prints everything kept about one identity, as "Download my data" gives it: the conversation with its turns, the profile, the rooms issued to it', async () => {
    const prefix = randomPrefix('cli-export');
    const store = workerStore(prefix);
    await seed(store, 'alice', ['My router keeps dropping.', 'Which model is it?']);
    await seed(store, 'bob', ['Not alice.']);
    const devices = new RedisDeviceStore({ sentinel: deployment.target, prefix });
    try {
      await devices.create('alice', { v: 1, secretHash: 'ab'.repeat(32), createdAtMs: Date.now() }, 60_000);
      await devices.addRoom('alice', 'room-alice-1', Date.now(), Date.now() + 60_000, 60_000);
    } finally {
      await devices.close();
    }

    const r = await sessions(['export', '--identity', 'alice'], sentinelEnv(prefix));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(1);
    const x = r.lines[0] as unknown as IdentityExport;
    expect(x).toMatchObject({ v: 1, identity: 'alice', sharedStore: true, rooms: ['room-alice-1'] });
    expect(x.agents.map((a) => a.agentName)).toEqual(['agent']);
    expect(x.agents[0]?.current?.history.turns.map((t) => t.text)).toEqual(['My router keeps dropping.', 'Which model is it?']);
    expect(r.stdout).not.toContain('Not alice');
    // Nobody stored: an empty export, not an error.
    expect((await sessions(['export', '--identity', 'nobody'], sentinelEnv(prefix))).lines[0]).toMatchObject({ identity: 'nobody', rooms: [], agents: [] });
  });

  it('forget erases the identity on the master, tells the job holding it, and leaves the others', async () => {
    const prefix = randomPrefix('cli-forget');
    const store = workerStore(prefix);
    await seed(store, 'alice', ['Remember my router.']);
    await seed(store, 'bob', ['Hello.']);
    // The web client's credential for alice, as the token service keeps it: it goes too.
    const devices = new RedisDeviceStore({ sentinel: deployment.target, prefix });
    await devices.create('alice', { v: 1, secretHash: 'ab'.repeat(32), createdAtMs: Date.now() }, 60_000);
    await devices.create('bob', { v: 1, secretHash: 'cd'.repeat(32), createdAtMs: Date.now() }, 60_000);
    const notices = new SessionNotices({ sentinel: deployment.target, prefix, commandTimeoutMs: SENTINEL_FIXTURE_TIMEOUT_MS });
    opened.push(notices);
    const seen: SessionNotice[] = [];
    await notices.watch('alice', (n) => seen.push(n));

    const r = await sessions(['forget', '--identity', 'alice'], sentinelEnv(prefix));
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatchObject({ forgotten: true });
    expect(r.lines[0]?.sessionKeysErased).toBeGreaterThan(0);

    expect(r.lines[0]).toMatchObject({ credentialErased: true });
    expect(await store.readRecord({ agentName: 'agent', identity: 'alice' })).toEqual({ status: 'missing' });
    expect((await store.readRecord({ agentName: 'agent', identity: 'bob' })).status).toBe('found');
    try {
      expect(await devices.get('alice')).toBeNull();
      expect(await devices.get('bob')).not.toBeNull();
    } finally {
      await devices.close();
    }
    await until(async () => seen.length > 0);
    expect(seen).toEqual([{ v: 1, kind: 'forget' }]);
  });

  it('with REDIS_SENTINELS but no master prints one error naming REDIS_SENTINEL_MASTER, without the passwords, and exits 2', async () => {
    const { REDIS_SENTINEL_MASTER: _omitted, ...env } = sentinelEnv(randomPrefix('cli-config'));
    const r = await sessions(['list'], env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sessions: configuration error: REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set/);
    expect(r.stderr).not.toMatch(new RegExp(`${DATA_PASSWORD}|${SENTINEL_PASSWORD}`));
  });

  it('forget keeps the mark of the erasure for the worker\'s SESSION_TTL_MS, so a job cut off that long cannot write the identity back', async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    try {
      const hours2 = 7_200_000;
      const r = await sessions(['forget', '--identity', 'carol'], { REDIS_URL: redis.url, SESSION_TTL_MS: String(hours2) });
      expect(r.code).toBe(0);
      const store = new RedisSessionStore({ url: redis.url });
      opened.push(store);
      const client = new Redis(redis.url);
      try {
        const ttl = await client.pttl(store.keys.forgetMark('carol'));
        expect(ttl).toBeGreaterThan(hours2 - 60_000);
        expect(ttl).toBeLessThanOrEqual(hours2);
      } finally {
        client.disconnect();
      }
    } finally {
      await redis.kill();
    }
  });

  it('with Redis unreachable prints one line naming the failure, not the identity, and exits 1', async () => {
    const r = await sessions(['forget', '--identity', 'alice-unreachable'], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sessions: store_unavailable \(retryable\): /);
    expect(r.stderr).not.toContain('alice-unreachable');
  });

  it('reads REDIS_REPLICA_ACKS as the worker does: a bad value is one clear error and exit 2', async () => {
    const r = await sessions(['list'], { ...sentinelEnv(randomPrefix('cli-acks')), REDIS_REPLICA_ACKS: 'two' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^sessions: configuration error: REDIS_REPLICA_ACKS must be a non-negative integer, got "two"$/);
  });
});

describe('npm run sessions -- check (does any master evict keys when full?)', () => {
  it('through the sentinels: the master evicts nothing, one JSON line, exit 0', async () => {
    const r = await sessions(['check'], sentinelEnv(randomPrefix('cli-check')));
    expect(r).toMatchObject({ code: 0, lines: [{ evictingMasters: [] }] });
  });

  it('a Redis with maxmemory and an evicting policy: named on stdout, the warning on stderr, exit 1 (a deploy can stop on it)', async () => {
    const redis = new PrivateRedis(await freePort(), ['--maxmemory', '100mb', '--maxmemory-policy', 'volatile-ttl']);
    await redis.start();
    try {
      const r = await sessions(['check'], { REDIS_URL: redis.url });
      expect(r.code).toBe(1);
      expect(r.lines).toEqual([{ evictingMasters: [{ node: `127.0.0.1:${redis.port}`, policy: 'volatile-ttl', maxmemoryBytes: 100 * 1024 * 1024 }] }]);
      expect(r.stderr.trim()).toBe(`sessions: ${EVICTION_WARNING}`);
    } finally {
      await redis.kill();
    }
  });

  it('with Redis unreachable: one store_unavailable line, exit 1, nothing on stdout', async () => {
    const r = await sessions(['check'], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^sessions: store_(unavailable|timeout) \(retryable\): /)]);
  });
});
