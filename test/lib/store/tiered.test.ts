import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { newSessionRecord } from '../../../lib/session/record.js';
import { MemorySessionStore } from '../../../lib/store/memory_session_store.js';
import { RedisSessionStore } from '../../../lib/store/redis_session_store.js';
import { TieredSessionStore } from '../../../lib/store/tiered_session_store.js';

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
async function blackHole(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr !== null ? addr.port : 0, sockets };
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
    const claim = await tiered.resumeAndClaim(key, 'job', Date.now(), 1_000);
    expect(claim.status === 'claimed' && claim.storeAvailable).toBe(false);
    expect(tiered.isDegraded).toBe(true);
    if (claim.status !== 'claimed') return;
    // Writes keep working from memory and wait for replay.
    await tiered.save(newSessionRecord({ ...key, sessionId: 's', nowMs: Date.now(), profile: null }), claim.version, claim.lease);
    expect(tiered.pendingReplayCount).toBeGreaterThan(0);
    // A second claim by the same job within the rejoin window resumes from memory.
    const again = await tiered.resumeAndClaim(key, 'job', Date.now(), 1_000);
    expect(again.status === 'claimed' && again.record.status).toBe('found');
    expect(again.status === 'claimed' && again.storeAvailable).toBe(true);
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
});
