import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../../lib/errors.js';
import { newSessionRecord, profileFromRecord, suspendedRecord } from '../../../lib/session/record.js';
import type { SessionRecord, Turn } from '../../../lib/session/record.js';
import { recordWithTurn } from '../../../lib/session/history.js';
import { forkArchiveId } from '../../../lib/store/codec.js';
import { PayloadCipher } from '../../../lib/store/crypto.js';
import type { Keyring } from '../../../lib/store/crypto.js';
import type { LeaseToken, SessionKey, SessionStore, StoreOptions } from '../../../lib/store/session_store.js';

/** What a contract run needs from an adapter. */
export interface StoreHarness {
  name: string;
  /** A fresh, empty store (own key space). */
  make(opts?: StoreOptions): Promise<SessionStore>;
  /** Replaces the stored record payload of `key` with `mutate(payload)`. */
  tamper(store: SessionStore, key: SessionKey, mutate: (payload: string) => string): Promise<void>;
  /** Frees everything the harness made. */
  cleanup(): Promise<void>;
}

const LEASE_MS = 30_000;
/**
 * Session TTL of the tests that wait for a session to expire, ms: short enough to wait out, long
 * enough that the steps before the expiry run well inside it (300 ms was once exceeded between two
 * steps on a 2-core VM with heavy steal time, which expired the session early).
 */
const SHORT_SESSION_TTL_MS = 1_000;

/** Polls `cond` until true or the deadline passes (no sleeping to wait). */
export async function until(cond: () => Promise<boolean>, deadlineMs = 5_000, stepMs = 25): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

let seq = 0;
function turn(text: string, role: Turn['role'] = 'user', atMs = Date.now()): Turn {
  return { id: `t${++seq}-${randomBytes(3).toString('hex')}`, role, text, createdAtMs: atMs };
}

function keyring(byte: number, id = 'k1'): Keyring {
  return { currentKeyId: id, keys: { [id]: Buffer.alloc(32, byte) } };
}

/** Claims `key` and saves a new record; returns lease, record and version. */
async function start(store: SessionStore, key: SessionKey, owner = 'job-a', text?: string): Promise<{ lease: LeaseToken; record: SessionRecord; version: number }> {
  const nowMs = Date.now();
  const claim = await store.resumeAndClaim(key, owner, nowMs, LEASE_MS);
  if (claim.status !== 'claimed') throw new Error('claim failed');
  let record = newSessionRecord({ ...key, sessionId: `s-${randomBytes(4).toString('hex')}`, nowMs, profile: claim.profile });
  if (text !== undefined) record = recordWithTurn(record, turn(text));
  const version = await store.save(record, claim.version, claim.lease);
  return { lease: claim.lease, record, version };
}

/** The store contract: every adapter must pass it. */
export function sessionStoreContract(h: StoreHarness): void {
  describe(`SessionStore contract: ${h.name}`, () => {
    afterAll(() => h.cleanup());

    it('claims a new key, saves and reads back a copy', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'alice' };
      const claim = await store.resumeAndClaim(key, 'job-a', Date.now(), LEASE_MS);
      expect(claim.status).toBe('claimed');
      if (claim.status !== 'claimed') return;
      expect(claim.record).toEqual({ status: 'missing' });
      expect(claim.profile).toBeNull();
      expect(claim.lease.fence).toBeGreaterThan(0);
      const record = newSessionRecord({ ...key, sessionId: 's1', nowMs: 1000, profile: null, participantName: 'Alice' });
      const v = await store.save(record, claim.version, claim.lease);
      expect(v).toBe(claim.version + 1);
      record.participantName = 'mutated after save';
      const read = await store.readRecord(key);
      expect(read.status).toBe('found');
      if (read.status !== 'found') return;
      expect(read.record.participantName).toBe('Alice');
      expect(read.record.version).toBe(v);
      read.record.history.turns.push(turn('not stored'));
      const again = await store.readRecord(key);
      expect(again.status === 'found' && again.record.history.turns.length).toBe(0);
      expect((await store.readProfile(key))?.visitCount).toBe(1);
    });

    it('resume + claim returns record with appended turns, profile and a new fence', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'bob' };
      const s = await start(store, key, 'job-a', 'I need help with my router.');
      const v2 = await store.appendTurn(key, turn('Sure, what model?', 'assistant'), s.lease);
      expect(v2).toBe(s.version + 1);
      const claim = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
      expect(claim.status).toBe('claimed');
      if (claim.status !== 'claimed' || claim.record.status !== 'found') throw new Error('expected a record');
      expect(claim.record.record.history.turns.map((t) => t.text)).toEqual(['I need help with my router.', 'Sure, what model?']);
      expect(claim.record.record.lastTopic).toBe('I need help with my router.');
      expect(claim.version).toBe(v2);
      expect(claim.previousOwner).toBe('job-a');
      expect(claim.lease.fence).toBe(s.lease.fence + 1);
      expect(claim.profile?.identity).toBe('bob');
      await expect(store.appendTurn(key, turn('late'), s.lease)).rejects.toMatchObject({ code: 'lease_lost' });
    });

    it('keeps at most maxPendingTurns appended turns between saves, dropping the oldest', async () => {
      const store = await h.make({ maxPendingTurns: 3 });
      const key = { agentName: 'agent', identity: 'pending' };
      const s = await start(store, key, 'job-a', 'saved turn');
      for (const text of ['p1', 'p2', 'p3']) await store.appendTurn(key, turn(text), s.lease);
      const full = await store.readRecord(key);
      expect(full.status === 'found' && full.record.history.turns.map((t) => t.text)).toEqual(['saved turn', 'p1', 'p2', 'p3']);
      for (const text of ['p4', 'p5']) await store.appendTurn(key, turn(text), s.lease);
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['saved turn', 'p3', 'p4', 'p5']);
    });

    it('20 concurrent takeover claims: distinct fences, only the newest may write', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'race' };
      const s = await start(store, key);
      const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => store.resumeAndClaim(key, `job-${i}`, Date.now(), LEASE_MS)));
      const leases = claims.map((c) => (c.status === 'claimed' ? c.lease : null)).filter((l): l is LeaseToken => l !== null);
      expect(leases).toHaveLength(20);
      const fences = leases.map((l) => l.fence).sort((a, b) => a - b);
      expect(fences).toEqual(Array.from({ length: 20 }, (_, i) => s.lease.fence + 1 + i));
      const results = await Promise.allSettled(leases.map((l) => store.appendTurn(key, turn(`from ${l.owner}`), l)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const winner = leases[results.findIndex((r) => r.status === 'fulfilled')];
      expect(winner?.fence).toBe(Math.max(...fences));
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
    });

    it('20 concurrent exclusive claims: exactly one wins', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'exclusive' };
      const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => store.resumeAndClaim(key, `job-${i}`, Date.now(), LEASE_MS, 'exclusive')));
      expect(claims.filter((c) => c.status === 'claimed')).toHaveLength(1);
      expect(claims.filter((c) => c.status === 'busy')).toHaveLength(19);
    });

    it('compare-and-set: a stale version conflicts, the current one wins', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'cas' };
      const s = await start(store, key);
      const v2 = await store.appendTurn(key, turn('hello'), s.lease);
      await expect(store.save(s.record, s.version, s.lease)).rejects.toMatchObject({ code: 'version_conflict' });
      const withTurn = recordWithTurn(s.record, turn('hello again'));
      const v3 = await store.save(withTurn, v2, s.lease);
      expect(v3).toBe(v2 + 1);
      await expect(store.save(withTurn, v2, s.lease)).rejects.toMatchObject({ code: 'version_conflict' });
    });

    it('expires a session after sessionTtlMs while the profile stays', async () => {
      const store = await h.make({ sessionTtlMs: SHORT_SESSION_TTL_MS, profileTtlMs: 60_000 });
      const key = { agentName: 'agent', identity: 'ttl' };
      await start(store, key, 'job-a', 'remember me');
      expect((await store.readRecord(key)).status).toBe('found');
      await until(async () => (await store.readRecord(key)).status === 'missing');
      expect((await store.readProfile(key))?.visitCount).toBe(1);
      const claim = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
      expect(claim.status === 'claimed' && claim.record.status).toBe('missing');
      expect(claim.status === 'claimed' && claim.profile?.lastTopic).toBe('remember me');
    });

    it('an owner that crashes (no suspend, no end) leaves every turn in the archive after expiry, and the next conversation does not take them', async () => {
      const store = await h.make({ sessionTtlMs: SHORT_SESSION_TTL_MS, profileTtlMs: 60_000 });
      const key = { agentName: 'agent', identity: 'crashed' };
      const s = await start(store, key, 'job-a', 'said before the crash');
      await store.appendTurn(key, turn('said after the last save'), s.lease);
      await store.appendTurn(key, turn('the last words', 'assistant'), s.lease);
      // The job dies here: its lease lapses and the live record expires.
      await until(async () => (await store.readRecord(key)).status === 'missing');
      const texts = async () => (await store.readArchive(key, Date.now())).map((a) => [a.sessionId, a.problem ?? null, a.record?.history.turns.map((t) => t.text)]);
      const crashed = [s.record.sessionId, null, ['said before the crash', 'said after the last save', 'the last words']];
      expect(await texts()).toEqual([crashed]);
      // The identity comes back after the session expired: a new conversation, with none of the
      // crashed one's turns, and the crashed one's archive copy keeps all of its own.
      const next = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
      expect(next.status === 'claimed' && next.record).toEqual({ status: 'missing' });
      if (next.status !== 'claimed') return;
      const record = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-next', nowMs: Date.now() + 1, profile: next.profile }), turn('a new conversation'));
      const v = await store.save(record, next.version, next.lease);
      await store.appendTurn(key, turn('and its second turn'), next.lease);
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['a new conversation', 'and its second turn']);
      expect(await texts()).toEqual([['s-next', null, ['a new conversation']], crashed]);
      await store.end(read.status === 'found' ? read.record : record, v + 1, next.lease, Date.now() + 2);
      expect(await texts()).toEqual([['s-next', null, ['a new conversation', 'and its second turn']], crashed]);
      // forget erases the kept turns with the rest.
      await store.forget('crashed');
      expect(await store.readArchive(key, Date.now())).toEqual([]);
    });

    it('suspend archives and releases; end deletes the live record, keeps profile and archive', async () => {
      const store = await h.make({ archiveMaxCount: 2 });
      const key = { agentName: 'agent', identity: 'arch' };
      const nowMs = Date.now();
      const s = await start(store, key, 'job-a', 'first');
      const v = await store.suspend(suspendedRecord(s.record, nowMs, 'network'), s.version, s.lease, nowMs);
      const excl = await store.resumeAndClaim(key, 'job-b', nowMs + 1, LEASE_MS, 'exclusive');
      expect(excl.status).toBe('claimed');
      if (excl.status !== 'claimed' || excl.record.status !== 'found') throw new Error('expected record');
      expect(excl.record.record.state).toBe('Disconnected');
      expect(excl.version).toBe(v);
      await store.end(excl.record.record, excl.version, excl.lease, nowMs + 2);
      expect((await store.readRecord(key)).status).toBe('missing');
      expect(await store.readProfile(key)).not.toBeNull();
      const archive = await store.readArchive(key, nowMs + 3);
      expect(archive).toHaveLength(1);
      expect(archive[0]?.record?.history.turns[0]?.text).toBe('first');
      for (let i = 0; i < 3; i++) {
        const n = await start(store, key, `job-${i}`);
        await store.end(n.record, n.version, n.lease, nowMs + 10 + i);
      }
      const capped = await store.readArchive(key, nowMs + 20);
      expect(capped).toHaveLength(2);
      expect(capped[0]?.archivedAtMs).toBe(nowMs + 12);
    });

    it('forget erases sessions, profiles and archive under every agent, and nothing else', async () => {
      const store = await h.make();
      const nowMs = Date.now();
      for (const agentName of ['agent-1', 'agent-2']) {
        const s = await start(store, { agentName, identity: 'gdpr' }, 'job', 'secret');
        await store.suspend(suspendedRecord(s.record, nowMs, 'ended'), s.version, s.lease, nowMs);
      }
      await start(store, { agentName: 'agent-1', identity: 'keep' }, 'job', 'mine');
      const out = await store.forget('gdpr');
      expect(out.sessionKeysErased).toBe(2);
      for (const agentName of ['agent-1', 'agent-2']) {
        const key = { agentName, identity: 'gdpr' };
        expect(await store.readRecord(key)).toEqual({ status: 'missing' });
        expect(await store.readProfile(key)).toBeNull();
        expect(await store.readArchive(key, nowMs)).toEqual([]);
        expect(await store.exportSession(key)).toBeNull();
      }
      expect((await store.readRecord({ agentName: 'agent-1', identity: 'keep' })).status).toBe('found');
    });

    it('forget still finds an archive kept longer than the profile, after the profile expired', async () => {
      const store = await h.make({ sessionTtlMs: SHORT_SESSION_TTL_MS, profileTtlMs: SHORT_SESSION_TTL_MS, archiveTtlMs: 60_000 });
      const key = { agentName: 'agent', identity: 'archived-longer' };
      const nowMs = Date.now();
      const s = await start(store, key, 'job', 'kept for the audit');
      await store.end(suspendedRecord(s.record, nowMs, 'ended'), s.version, s.lease, nowMs);
      await until(async () => (await store.readProfile(key)) === null && (await store.readRecord(key)).status === 'missing');
      expect((await store.readArchive(key, Date.now())).map((a) => a.sessionId)).toEqual([s.record.sessionId]);
      expect(await store.forget('archived-longer')).toEqual({ sessionKeysErased: 1 });
      expect(await store.readArchive(key, Date.now())).toEqual([]);
      expect(await store.exportIdentity('archived-longer')).toEqual([]);
    });

    it('exportIdentity gives everything stored for one identity under every agent, turns said after the last save included, and nothing of another identity', async () => {
      const store = await h.make();
      const nowMs = Date.now();
      const ended = await start(store, { agentName: 'agent-1', identity: 'access' }, 'job', 'an ended conversation');
      await store.end(suspendedRecord(ended.record, nowMs, 'ended'), ended.version, ended.lease, nowMs);
      const live = await start(store, { agentName: 'agent-2', identity: 'access' }, 'job', 'saved');
      await store.appendTurn({ agentName: 'agent-2', identity: 'access' }, turn('said after the save'), live.lease);
      await start(store, { agentName: 'agent-1', identity: 'someone-else' }, 'job', 'not theirs');
      const out = await store.exportIdentity('access');
      const byAgent = new Map(out.map((snap) => [snap.key.agentName, snap]));
      expect([...byAgent.keys()].sort()).toEqual(['agent-1', 'agent-2']);
      expect(out.every((snap) => snap.key.identity === 'access')).toBe(true);
      // agent-1: no live conversation, its ended one in the archive, the profile kept.
      expect(byAgent.get('agent-1')?.record).toBeNull();
      expect(byAgent.get('agent-1')?.archive.map((a) => a.record?.history.turns.map((t) => t.text))).toEqual([['an ended conversation']]);
      expect(byAgent.get('agent-1')?.profile?.identity).toBe('access');
      // agent-2: the live record with every turn.
      expect(byAgent.get('agent-2')?.record?.history.turns.map((t) => t.text)).toEqual(['saved', 'said after the save']);
      expect(JSON.stringify(out)).not.toContain('not theirs');
      expect(await store.exportIdentity('nobody')).toEqual([]);
      // After forget there is nothing to export.
      await store.forget('access');
      expect(await store.exportIdentity('access')).toEqual([]);
    });

    it('a set_aside claim of an unreadable record keeps that conversation whole in the archive (as last saved, plus the turns said after) while a new one starts', async () => {
      const store = await h.make({ cipher: new PayloadCipher(keyring(5)) });
      const key = { agentName: 'agent', identity: 'unreadable' };
      const s = await start(store, key, 'job-a', 'saved');
      await store.appendTurn(key, turn('pending one'), s.lease);
      await store.appendTurn(key, turn('pending two', 'assistant'), s.lease);
      await h.tamper(store, key, (p) => p.slice(0, -4) + (p.endsWith('AAAA') ? 'BBBB' : 'AAAA'));
      const seen = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
      expect(seen.status === 'claimed' && seen.record).toEqual({ status: 'invalid', why: 'record_tampered' });
      const aside = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS, 'set_aside');
      expect(aside.status === 'claimed' && aside.record).toEqual({ status: 'missing' });
      if (aside.status !== 'claimed') return;
      // The new conversation's first save does not take the old one's unsaved turns with it.
      const next = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-after', nowMs: Date.now() + 1, profile: aside.profile }), turn('a new start'));
      await store.save(next, aside.version, aside.lease);
      const archive = await store.readArchive(key, Date.now() + 2);
      expect(archive.map((a) => [a.sessionId, a.problem ?? null, a.record?.history.turns.map((t) => t.text)])).toEqual([
        ['s-after', null, ['a new start']],
        [s.record.sessionId, null, ['saved', 'pending one', 'pending two']],
      ]);
    });

    it('sealed payloads: tampering, a wrong key or a swapped slot is refused; rotation keeps old keys readable', async () => {
      const old = new PayloadCipher(keyring(7, 'old'));
      const store = await h.make({ cipher: old });
      const key = { agentName: 'agent', identity: 'sealed' };
      await start(store, key, 'job-a', 'classified');
      expect((await store.readRecord(key)).status).toBe('found');
      await h.tamper(store, key, (p) => {
        expect(p).not.toContain('classified');
        return p.slice(0, -4) + (p.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      });
      expect(await store.readRecord(key)).toEqual({ status: 'invalid', why: 'record_tampered' });
      const claim = await store.resumeAndClaim(key, 'job-b', Date.now(), LEASE_MS);
      expect(claim.status === 'claimed' && claim.record).toEqual({ status: 'invalid', why: 'record_tampered' });

      const plain = await h.make();
      const k2 = { agentName: 'agent', identity: 'plain' };
      await start(plain, k2, 'job-a', 'hello');
      const json = { value: '' };
      await h.tamper(plain, k2, (p) => (json.value = p));
      const sealedStore = await h.make({ cipher: new PayloadCipher(keyring(9)) });
      await start(sealedStore, k2, 'job-a', 'x');
      await h.tamper(sealedStore, k2, () => json.value);
      expect(await sealedStore.readRecord(k2)).toEqual({ status: 'invalid', why: 'record_tampered' });

      // Rotation: a store whose keyring has a new current key still reads payloads of the old one.
      const rotated = { currentKeyId: 'new', keys: { new: Buffer.alloc(32, 8), old: Buffer.alloc(32, 7) } };
      const s3 = await h.make({ cipher: old });
      const k3 = { agentName: 'agent', identity: 'rotate' };
      await start(s3, k3, 'job-a', 'before rotation');
      let sealedOld = '';
      await h.tamper(s3, k3, (p) => (sealedOld = p));
      const s4 = await h.make({ cipher: new PayloadCipher(rotated) });
      await start(s4, k3, 'job-a', 'x');
      await h.tamper(s4, k3, () => sealedOld);
      const readOld = await s4.readRecord(k3);
      expect(readOld.status === 'found' && readOld.record.history.turns[0]?.text).toBe('before rotation');
      const other = { agentName: 'agent', identity: 'rotate-swap' };
      await start(s4, other, 'job-a', 'x');
      await h.tamper(s4, other, () => sealedOld);
      expect(await s4.readRecord(other)).toEqual({ status: 'invalid', why: 'record_tampered' });
    });

    it('hostile identities never collide and forget only their own', async () => {
      const store = await h.make();
      const hostile = ['a}:{b', 'a', 'b', '*', '\u0000', '\u0000\u0000', 'x'.repeat(10_240), '🦊 émoji 👩‍👩‍👧', '{s.YQ.YQ}', 'a:b', 'a}', '{a', ''];
      for (const identity of hostile) await start(store, { agentName: 'agent', identity }, 'job', `said by ${identity.slice(0, 40)}`);
      for (const identity of hostile) {
        const r = await store.readRecord({ agentName: 'agent', identity });
        expect(r.status).toBe('found');
        if (r.status !== 'found') continue;
        expect(r.record.identity).toBe(identity);
        expect(r.record.history.turns[0]?.text).toBe(`said by ${identity.slice(0, 40)}`);
      }
      await store.forget('a}:{b');
      expect((await store.readRecord({ agentName: 'agent', identity: 'a}:{b' })).status).toBe('missing');
      for (const identity of hostile.filter((i) => i !== 'a}:{b')) {
        expect((await store.readRecord({ agentName: 'agent', identity })).status).toBe('found');
      }
      const listed: SessionKey[] = [];
      let cursor: string | null = null;
      do {
        const page = await store.listSessions({ cursor, count: 50 });
        listed.push(...page.items);
        cursor = page.cursor;
      } while (cursor !== null);
      expect(new Set(listed.map((k) => k.identity))).toEqual(new Set(hostile.filter((i) => i !== 'a}:{b')));
    });

    it('a crashed owner\'s last turns survive a tier replay of a later conversation, and travel with an export', async () => {
      const store = await h.make({ sessionTtlMs: SHORT_SESSION_TTL_MS, profileTtlMs: 60_000 });
      const key = { agentName: 'agent', identity: 'replayed' };
      const s = await start(store, key, 'job-a', 'saved');
      await store.appendTurn(key, turn('unsaved'), s.lease);
      await until(async () => (await store.readRecord(key)).status === 'missing');
      // Another job ran the next conversation from its memory tier (Redis was down) and
      // replays it now: the snapshot replaces the live session, not the crashed one's turns.
      const nowMs = Date.now();
      const next = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-replayed', nowMs, profile: null }), turn('from the tier'));
      const out = await store.restore({ key, version: 1, lease: { owner: 'job-b', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs }, record: next, profile: null, archive: [] }, 'job-b', nowMs);
      expect(out.status).toBe('restored');
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['from the tier']);
      const archive = await store.readArchive(key, Date.now());
      expect(archive.map((a) => [a.sessionId, a.record?.history.turns.map((t) => t.text)])).toEqual([[s.record.sessionId, ['saved', 'unsaved']]]);
      // An export carries the archive with those turns into another store.
      const other = await h.make();
      const snap = await store.exportSession(key);
      if (snap === null) throw new Error('nothing exported');
      await other.restore({ ...snap, lease: null }, 'job-b', Date.now());
      const moved = await other.readArchive(key, Date.now());
      expect(moved.map((a) => [a.sessionId, a.record?.history.turns.map((t) => t.text)])).toEqual([[s.record.sessionId, ['saved', 'unsaved']]]);
    });

    it('a refused restore leaves the live session and profile alone and keeps its conversations in the archive', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'two-jobs' };
      const live = await start(store, key, 'job-a', 'said in the live job');
      const profileBefore = await store.readProfile(key);
      // Another job's memory tier: its own conversation of this identity (said while it could not
      // reach the store; the participant arrived there before arriving in the live job), an
      // older archived one, and a profile that would count an extra visit.
      const nowMs = Date.now();
      const cutOff = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-cut-off', nowMs, profile: null }), turn('said while cut off'));
      const older = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-older', nowMs: nowMs - 60_000, profile: null }), turn('an older talk'));
      const profile = { ...profileFromRecord(cutOff), visitCount: 99 };
      const out = await store.restore(
        { key, version: 3, lease: { owner: 'job-z', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs - 60_000 }, record: cutOff, profile, archive: [{ sessionId: 's-older', archivedAtMs: nowMs - 60_000, record: older }] },
        'job-z',
        nowMs,
      );
      expect(out).toEqual({ status: 'skipped', why: 'newer_arrival' });
      // The live job keeps its session, its lease and its profile.
      await store.appendTurn(key, turn('still mine'), live.lease);
      const read = await store.readRecord(key);
      expect(read.status === 'found' && [read.record.sessionId, read.record.history.turns.map((t) => t.text)]).toEqual([live.record.sessionId, ['said in the live job', 'still mine']]);
      expect(await store.readProfile(key)).toEqual(profileBefore);
      // Nothing the other job said is lost: its conversation is archived beside the live one's.
      const archive = await store.readArchive(key, Date.now());
      const texts = new Map(archive.map((a) => [a.sessionId, a.record?.history.turns.map((t) => t.text)]));
      expect(texts.get(forkArchiveId('s-cut-off', 'job-z'))).toEqual(['said while cut off']);
      expect(texts.get('s-older')).toEqual(['an older talk']);
      expect(texts.get(live.record.sessionId)).toEqual(['said in the live job']);
    });

    it('a restore against a live lease goes to the newest arrival, whatever the fences (they restart when a Redis loses its data)', async () => {
      const store = await h.make();
      const turnTexts = async (k: SessionKey) => {
        const r = await store.readRecord(k);
        return r.status === 'found' ? [r.record.sessionId, r.record.history.turns.map((t) => t.text)] : r.status;
      };
      // A job whose participant rejoined often (fence 7 in its memory tier) arrived a minute
      // before the live job, which claimed from a store that counts from 1 again: refused.
      const older = { agentName: 'agent', identity: 'arrived-first' };
      const live = await start(store, older, 'job-live', 'the live talk');
      const nowMs = Date.now();
      const stale = recordWithTurn(newSessionRecord({ ...older, sessionId: 's-stale', nowMs: nowMs - 60_000, profile: null }), turn('said before the outage'));
      const refused = await store.restore({ key: older, version: 9, lease: { owner: 'job-stale', fence: 7, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs - 60_000 }, record: stale, profile: null, archive: [] }, 'job-stale', nowMs);
      expect(refused).toEqual({ status: 'skipped', why: 'newer_arrival' });
      await store.appendTurn(older, turn('still live'), live.lease);
      expect(await turnTexts(older)).toEqual([live.record.sessionId, ['the live talk', 'still live']]);
      expect((await store.readArchive(older, Date.now())).map((a) => a.sessionId)).toContain(forkArchiveId('s-stale', 'job-stale'));

      // A job whose participant arrived after the live claim wins with a lower fence: the old
      // owner's next write fails as after any takeover, and the fence stored never goes back.
      const newer = { agentName: 'agent', identity: 'arrived-last' };
      const held = await store.resumeAndClaim(newer, 'job-held', nowMs - 60_000, 10 * LEASE_MS);
      if (held.status !== 'claimed') throw new Error('claim');
      await store.resumeAndClaim(newer, 'job-held', nowMs - 30_000, 10 * LEASE_MS);
      const heldLease = { owner: 'job-held', fence: held.lease.fence + 1 };
      const fresh = recordWithTurn(newSessionRecord({ ...newer, sessionId: 's-fresh', nowMs, profile: null }), turn('said in the newest job'));
      const won = await store.restore({ key: newer, version: 1, lease: { owner: 'job-new', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs }, record: fresh, profile: null, archive: [] }, 'job-new', nowMs);
      expect(won).toMatchObject({ status: 'restored', fence: heldLease.fence });
      await expect(store.appendTurn(newer, turn('too late'), heldLease)).rejects.toMatchObject({ code: 'lease_lost' });
      if (won.status !== 'restored') return;
      await store.appendTurn(newer, turn('mine now'), { owner: 'job-new', fence: won.fence });
      expect(await turnTexts(newer)).toEqual(['s-fresh', ['said in the newest job', 'mine now']]);
    });

    it('a restore against a live lease of unknown arrival time falls back to the fences', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'unknown-arrival' };
      const nowMs = Date.now();
      const record = (sessionId: string) => recordWithTurn(newSessionRecord({ ...key, sessionId, nowMs, profile: null }), turn(sessionId));
      // A lease stored without its claim time (claimedAtMs 0), fence 5.
      const first = await store.restore({ key, version: 1, lease: { owner: 'job-old', fence: 5, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: 0 }, record: record('s-old'), profile: null, archive: [] }, 'job-old', nowMs);
      expect(first.status).toBe('restored');
      const lower = await store.restore({ key, version: 1, lease: { owner: 'job-low', fence: 4, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs }, record: record('s-low'), profile: null, archive: [] }, 'job-low', nowMs);
      expect(lower).toEqual({ status: 'skipped', why: 'newer_arrival' });
      const higher = await store.restore({ key, version: 1, lease: { owner: 'job-high', fence: 6, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs }, record: record('s-high'), profile: null, archive: [] }, 'job-high', nowMs);
      expect(higher).toMatchObject({ status: 'restored', fence: 6 });
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.sessionId).toBe('s-high');
    });

    it('a restore that replaces an older arrival\'s live session keeps the turns said after its last save in the archive', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'replaced-live' };
      // An older arrival's job: a saved turn, then one not saved yet (it crashes or is cut off).
      const b = await start(store, key, 'job-older', 'saved by the older job');
      await store.appendTurn(key, turn('said after its last save'), b.lease);
      // A later arrival ran in a job cut off from the store and replays its conversation now.
      const nowMs = Date.now();
      const later = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-later', nowMs, profile: null }), turn('the later talk'));
      const out = await store.restore({ key, version: 1, lease: { owner: 'job-later', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs + 1_000 }, record: later, profile: null, archive: [] }, 'job-later', nowMs);
      expect(out.status).toBe('restored');
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['the later talk']);
      const archive = await store.readArchive(key, Date.now());
      expect(archive.find((a) => a.sessionId === b.record.sessionId)?.record?.history.turns.map((t) => t.text)).toEqual(['saved by the older job', 'said after its last save']);
    });

    it('a replayed claim that was dropped before anything was said leaves the stored conversation alone; one that ended a conversation removes it', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'dropped-claim' };
      const b = await start(store, key, 'job-b', 'a conversation to resume');
      await store.suspend(suspendedRecord(b.record, Date.now(), 'network'), b.version, b.lease, Date.now());
      // A dispatch hint's speculative claim in a job cut off from the store: released when its
      // participant never came, with nothing saved.
      const nowMs = Date.now();
      const dropped = { key, version: 1, lease: { owner: null, fence: 1, expiresAtMs: 0, claimedAtMs: nowMs + 1_000 }, record: null, profile: null, archive: [] };
      expect(await store.restore(dropped, 'job-hint', nowMs + 2_000)).toMatchObject({ status: 'restored' });
      const kept = await store.resumeAndClaim(key, 'job-c', nowMs + 3_000, LEASE_MS);
      expect(kept.status === 'claimed' && kept.record.status === 'found' && kept.record.record.history.turns.map((t) => t.text)).toEqual(['a conversation to resume']);
      if (kept.status !== 'claimed') throw new Error('claim');
      expect(await store.release(key, kept.lease)).toBe(true);
      // A claim whose job ended a conversation while cut off (archived after the claim): the
      // stored one goes, as the end would have removed it.
      const ended = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-ended', nowMs, profile: null }), turn('ended while cut off'));
      const endedSnap = { key, version: 3, lease: { owner: null, fence: 2, expiresAtMs: 0, claimedAtMs: nowMs + 4_000 }, record: null, profile: null, archive: [{ sessionId: 's-ended', archivedAtMs: nowMs + 5_000, record: ended }] };
      expect(await store.restore(endedSnap, 'job-end', nowMs + 6_000)).toMatchObject({ status: 'restored' });
      expect((await store.readRecord(key)).status).toBe('missing');
    });

    it('a restore leaves a newer arrival\'s conversation alone once it has paused or its job has died, turns said after its last save included', async () => {
      const store = await h.make();
      const text = async (k: SessionKey) => {
        const r = await store.readRecord(k);
        return r.status === 'found' ? [r.record.sessionId, r.record.history.turns.map((t) => t.text)] : r.status;
      };
      const nowMs = Date.now();
      // The snapshot of a job cut off from the store: its participant arrived a minute before
      // the conversations below, which other jobs held in the store meanwhile.
      const cutOff = (key: SessionKey) => ({
        key,
        version: 7,
        lease: { owner: 'job-cut-off', fence: 9, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs - 60_000 },
        record: recordWithTurn(newSessionRecord({ ...key, sessionId: 's-cut-off', nowMs: nowMs - 60_000, profile: null }), turn('said while cut off')),
        profile: null,
        archive: [],
      });

      // A newer conversation that paused (its participant left: the lease is released).
      const paused = { agentName: 'agent', identity: 'paused-newer' };
      const p = await start(store, paused, 'job-newer', 'the newer talk');
      await store.suspend(suspendedRecord(p.record, nowMs, 'network'), p.version, p.lease, nowMs);
      const profile = await store.readProfile(paused);
      expect(await store.restore(cutOff(paused), 'job-cut-off', nowMs)).toEqual({ status: 'skipped', why: 'newer_arrival' });
      expect(await text(paused)).toEqual([p.record.sessionId, ['the newer talk']]);
      expect(await store.readProfile(paused)).toEqual(profile);
      const archived = await store.readArchive(paused, Date.now());
      expect(archived.find((a) => a.sessionId === forkArchiveId('s-cut-off', 'job-cut-off'))?.record?.history.turns.map((t) => t.text)).toEqual(['said while cut off']);

      // A newer conversation whose job died with a turn not yet saved (its lease lapsed).
      const died = { agentName: 'agent', identity: 'died-newer' };
      const d = await store.resumeAndClaim(died, 'job-died', nowMs, 1);
      if (d.status !== 'claimed') throw new Error('claim');
      const v = await store.save(recordWithTurn(newSessionRecord({ ...died, sessionId: 's-died', nowMs, profile: null }), turn('saved')), d.version, d.lease);
      await store.appendTurn(died, turn('not saved yet'), d.lease);
      expect(v).toBeGreaterThan(0);
      const later = Date.now() + 5;
      expect(await store.restore(cutOff(died), 'job-cut-off', later)).toEqual({ status: 'skipped', why: 'newer_arrival' });
      // The next claim finds that conversation whole, its last turn included.
      const next = await store.resumeAndClaim(died, 'job-next', later, LEASE_MS);
      expect(next.status === 'claimed' && next.record.status === 'found' && next.record.record.history.turns.map((t) => t.text)).toEqual(['saved', 'not saved yet']);

      // The snapshot's own claim, released before the store was lost (a tie): restored.
      const own = { agentName: 'agent', identity: 'own-release' };
      const o = await store.resumeAndClaim(own, 'job-own', nowMs - 60_000, LEASE_MS);
      if (o.status !== 'claimed') throw new Error('claim');
      expect(await store.release(own, o.lease)).toBe(true);
      expect(await store.restore(cutOff(own), '', nowMs)).toMatchObject({ status: 'restored' });
      expect(await text(own)).toEqual(['s-cut-off', ['said while cut off']]);
    });

    it('an erased identity is not written back by a replay of a claim made before the erasure; a later claim is', async () => {
      const store = await h.make();
      const key = { agentName: 'agent', identity: 'erase-me' };
      const s = await start(store, key, 'job-cut-off', 'something personal');
      const snap = await store.exportSession(key);
      if (snap === null) throw new Error('nothing exported');
      await until(async () => Date.now() > (snap.lease?.claimedAtMs ?? 0));
      expect(await store.forget('erase-me')).toEqual({ sessionKeysErased: 1 });
      // The job that held it was cut off from the store and replays its memory copy now.
      expect(await store.restore(snap, 'job-cut-off', Date.now())).toEqual({ status: 'skipped', why: 'forgotten' });
      expect(await store.restore({ ...snap, lease: null }, 'job-cut-off', Date.now())).toEqual({ status: 'skipped', why: 'forgotten' });
      expect((await store.readRecord(key)).status).toBe('missing');
      expect(await store.readProfile(key)).toBeNull();
      expect(await store.readArchive(key, Date.now())).toEqual([]);
      expect(await store.exportIdentity('erase-me')).toEqual([]);
      await expect(store.appendTurn(key, turn('after the erasure'), s.lease)).rejects.toMatchObject({ code: 'lease_lost' });
      // The participant comes back after the erasure: that conversation is theirs to keep.
      const nowMs = Date.now() + 1;
      const fresh = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-after', nowMs, profile: null }), turn('a new start'));
      const out = await store.restore({ key, version: 1, lease: { owner: 'job-new', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs }, record: fresh, profile: null, archive: [] }, 'job-new', nowMs);
      expect(out.status).toBe('restored');
      const read = await store.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['a new start']);
    });

    it('a restore bounds the archive as a save does: the newest archiveMaxCount conversations are kept, whether it is written or refused', async () => {
      const store = await h.make({ archiveMaxCount: 2 });
      const nowMs = Date.now();
      const archived = (key: SessionKey) =>
        [1, 2, 3].map((n) => ({ sessionId: `s-${n}`, archivedAtMs: nowMs - 4_000 + n * 1_000, record: recordWithTurn(newSessionRecord({ ...key, sessionId: `s-${n}`, nowMs: nowMs - 4_000 + n * 1_000, profile: null }), turn(`talk ${n}`)) }));
      const ids = async (key: SessionKey) => (await store.readArchive(key, Date.now())).map((a) => a.sessionId);

      const written = { agentName: 'agent', identity: 'bounded-written' };
      const out = await store.restore({ key: written, version: 1, lease: null, record: null, profile: null, archive: archived(written) }, 'job', nowMs);
      expect(out.status).toBe('restored');
      expect(await ids(written)).toEqual(['s-3', 's-2']);

      const refused = { agentName: 'agent', identity: 'bounded-refused' };
      await start(store, refused, 'job-live', 'the live talk');
      const cutOff = recordWithTurn(newSessionRecord({ ...refused, sessionId: 's-cut-off', nowMs, profile: null }), turn('said while cut off'));
      const skipped = await store.restore({ key: refused, version: 1, lease: { owner: 'job-z', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: nowMs - 60_000 }, record: cutOff, profile: null, archive: archived(refused) }, 'job-z', Date.now());
      expect(skipped).toEqual({ status: 'skipped', why: 'newer_arrival' });
      const kept = await ids(refused);
      expect(kept).toHaveLength(2);
      expect(kept).toContain(forkArchiveId('s-cut-off', 'job-z')); // the newest: archived as the restore ran
    });

    it('export + restore round-trips a session into another store', async () => {
      const a = await h.make();
      const b = await h.make();
      const key = { agentName: 'agent', identity: 'move' };
      const nowMs = Date.now();
      const s = await start(a, key, 'job-a', 'carry me over');
      await a.appendTurn(key, turn('and me', 'assistant'), s.lease);
      const snap = await a.exportSession(key);
      expect(snap).not.toBeNull();
      if (snap === null) return;
      const out = await b.restore(snap, 'job-a', nowMs);
      expect(out.status).toBe('restored');
      const read = await b.readRecord(key);
      expect(read.status === 'found' && read.record.history.turns.map((t) => t.text)).toEqual(['carry me over', 'and me']);
      // The restored lease is live: the owner keeps writing with it, a stranger is refused.
      if (out.status !== 'restored') return;
      await b.appendTurn(key, turn('still mine'), { owner: 'job-a', fence: out.fence });
      // A stranger whose participant arrived before job-a's claim: job-a keeps the session.
      const stranger = await b.restore({ ...snap, lease: { owner: 'job-z', fence: 1, expiresAtMs: nowMs + LEASE_MS, claimedAtMs: (snap.lease?.claimedAtMs ?? nowMs) - 1 } }, 'job-z', nowMs);
      expect(stranger).toEqual({ status: 'skipped', why: 'newer_arrival' });
    });
  });
}
