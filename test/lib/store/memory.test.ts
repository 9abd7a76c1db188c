import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../lib/clock.js';
import { newSessionRecord } from '../../../lib/session/record.js';
import { MemorySessionStore } from '../../../lib/store/memory_session_store.js';
import type { SessionStore } from '../../../lib/store/session_store.js';
import { sessionStoreContract } from './contract.js';

sessionStoreContract({
  name: 'MemorySessionStore',
  make: async (opts) => new MemorySessionStore(opts),
  tamper: async (store: SessionStore, key, mutate) => {
    if (!(store as MemorySessionStore).unsafeMutateStoredRecord(key, mutate)) throw new Error('no record to tamper with');
  },
  cleanup: async () => {},
});

describe('MemorySessionStore expiry', () => {
  it('expires only what is due, without scanning, and keeps refreshed sessions', async () => {
    const clock = new ManualClock(1_000_000);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 1_000, profileTtlMs: 5_000, archiveTtlMs: 10_000 });
    for (let i = 0; i < 50; i++) {
      const key = { agentName: 'a', identity: `u${i}` };
      const c = await store.resumeAndClaim(key, 'job', clock.nowMs(), 100);
      if (c.status !== 'claimed') throw new Error('claim');
      await store.save(newSessionRecord({ ...key, sessionId: `s${i}`, nowMs: clock.nowMs(), profile: null }), c.version, c.lease);
    }
    clock.advance(600);
    await store.resumeAndClaim({ agentName: 'a', identity: 'u0' }, 'job2', clock.nowMs(), 100);
    clock.advance(500);
    expect(store.purgeExpired()).toBe(49);
    expect((await store.readRecord({ agentName: 'a', identity: 'u0' })).status).toBe('found');
    expect((await store.readRecord({ agentName: 'a', identity: 'u1' })).status).toBe('missing');
    expect(await store.readProfile({ agentName: 'a', identity: 'u1' })).not.toBeNull();
    clock.advance(5_000);
    // Only the archive copies (written by every save) remain, until the archive's own retention ends.
    expect(await store.readProfile({ agentName: 'a', identity: 'u1' })).toBeNull();
    expect((await store.readArchive({ agentName: 'a', identity: 'u1' }, clock.nowMs())).map((a) => a.sessionId)).toEqual(['s1']);
    expect(store.size).toBe(50);
    clock.advance(10_000);
    expect(store.size).toBe(0);
  });
});
