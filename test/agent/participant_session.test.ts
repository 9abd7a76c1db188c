import { afterEach, describe, expect, it } from 'vitest';
import { ParticipantSession, type ParticipantSessionOptions } from '../../agent/participant_session.js';
import { historyToChatContext } from '../../agent/chat_history.js';
import { JobMetrics } from '../../agent/metrics.js';
import { renderGreeting } from '../../lib/session/greeting.js';
import { ManualClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/logger.js';
import { ReconnectPolicies, type SessionPolicy } from '../../lib/session/policy.js';
import type { SessionStateChanged } from '../../lib/session/state.js';
import { appendTurn, emptyHistory, recordWithTurn } from '../../lib/session/history.js';
import { condenseDue, DEFAULT_CONDENSE_OPTIONS, MAX_CONDENSE_AT_CHARS } from '../../lib/session/condense.js';
import { newSessionRecord, type Turn } from '../../lib/session/record.js';
import { PayloadCipher } from '../../lib/store/crypto.js';
import { MemorySessionStore } from '../../lib/store/memory_session_store.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import type { SessionStore } from '../../lib/store/session_store.js';
import { randomPrefix } from '../support/env.js';
import { until } from '../lib/store/contract.js';
import { connectTestRedis, unlinkPrefix } from '../lib/store/redis_support.js';

const T0 = 1_700_000_000_000;
const key = { agentName: 'concierge', identity: 'alice' };
const sessions: ParticipantSession[] = [];

function make(store: SessionStore, clock: ManualClock, policy: SessionPolicy = { ...ReconnectPolicies.Default }, ownerId = 'job-1', extra: Partial<ParticipantSessionOptions> = {}) {
  const changes: SessionStateChanged[] = [];
  const closes: string[] = [];
  const ps = new ParticipantSession({
    store,
    key,
    ownerId,
    policy,
    clock,
    logger: silentLogger,
    metrics: new JobMetrics(undefined),
    onStateChanged: (ev) => changes.push(ev),
    onClose: (reason) => closes.push(reason),
    ...extra,
  });
  sessions.push(ps);
  return { ps, changes, closes };
}

const turn = (id: string, role: 'user' | 'assistant', text: string, at: number) => ({ id, role, text, createdAtMs: at });

afterEach(() => {
  for (const s of sessions.splice(0)) s.dispose();
});

describe('ParticipantSession', () => {
  it('a first arrival is fresh, greeted first-time, and persisted as Connected', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps, changes } = make(store, clock);
    const a = await ps.arrive();
    expect(a.decision).toEqual({ kind: 'fresh', why: 'new_identity' });
    expect(a.greeting.kind).toBe('first_time');
    expect(a.speech).toMatch(/glad you're here/);
    expect(changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected']);
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.state).toBe('Connected');
  });

  it('persists every turn as it happens (write-through), in order', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'Book me a table for two.', T0 + 1));
    ps.persistTurn(turn('t2', 'assistant', 'Done: 8 pm.', T0 + 2));
    ps.persistTurn(turn('t2', 'assistant', 'Done: 8 pm.', T0 + 2)); // the same item again
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['Book me a table for two.', 'Done: 8 pm.']);
    expect(r.status === 'found' && r.record.lastTopic).toBe('Book me a table for two.');
  });

  it('holds the arrival\'s writes until released, then writes them; the claim itself is not held', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    const { release } = ps.holdWrites(60_000);
    const a = await ps.arrive();
    // Claimed (a second claim elsewhere sees this job's live lease) but nothing written yet.
    const other = await store.resumeAndClaim(key, 'job-2', clock.nowMs(), 30_000, 'exclusive');
    expect(other).toMatchObject({ status: 'busy', owner: 'job-1' });
    expect((await store.readRecord(key)).status).toBe('missing');
    release();
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.sessionId).toBe(a.record?.sessionId);
    expect(r.status === 'found' && r.record.state).toBe('Connected');
  });

  it('a turn is never held: saying one releases the hold at once', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    ps.holdWrites(60_000);
    await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'Are you there?', T0 + 1));
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['Are you there?']);
  });

  it('a conversation started over in the same millisecond is archived as newer than the one it replaces (the archive lists it first, and a crashed job\'s last turns go with it)', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const fresh = { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' as const };
    const first = make(store, clock, fresh, 'job-1');
    const before = await first.ps.arrive();
    first.ps.persistTurn(turn('t1', 'user', 'I was here first.', T0));
    await first.ps.suspend('client_initiated');
    // The next visitor, in the same millisecond (the clock does not move).
    const { ps } = make(store, clock, fresh, 'job-2');
    const arrived = await ps.arrive();
    await ps.drain();
    const archived = await store.readArchive(key, clock.nowMs());
    expect(archived.map((a) => a.sessionId)).toEqual([arrived.record?.sessionId, before.record?.sessionId]);
  });

  it('starting over a stored conversation (AlwaysFresh) is not held: the greeting is ready at once, and the old one is archived when the writes run', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const fresh = { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' as const };
    const first = make(store, clock, fresh, 'job-1');
    const before = await first.ps.arrive();
    first.ps.persistTurn(turn('t1', 'user', 'I was here first.', T0 + 1));
    await first.ps.suspend('client_initiated');
    clock.advance(5_000);

    const { ps } = make(store, clock, fresh, 'job-2');
    const { release } = ps.holdWrites(60_000);
    const arrived = await Promise.race([ps.arrive(), new Promise<'held'>((r) => setTimeout(() => r('held'), 2_000))]);
    if (arrived === 'held') throw new Error('the arrival waited for the held writes');
    expect(arrived.decision).toEqual({ kind: 'fresh', why: 'policy_fresh' });
    expect(arrived.greeting.kind).not.toBe('none');
    // Nothing written while held: the stored conversation is still the first one.
    const held = await store.readRecord(key);
    expect(held.status === 'found' && held.record.sessionId).toBe(before.record?.sessionId);
    release();
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.sessionId).toBe(arrived.record?.sessionId);
    expect(r.status === 'found' && r.record.history.turns).toEqual([]);
    const archived = await store.readArchive(key, clock.nowMs());
    expect(archived.map((a) => a.record?.history.turns.map((t) => t.text))).toContainEqual(['I was here first.']);
    // The new conversation's writes run under the second claim's lease: a turn still lands.
    ps.persistTurn(turn('t2', 'user', 'I am someone new.', clock.nowMs()));
    await ps.drain();
    const after = await store.readRecord(key);
    expect(after.status === 'found' && after.record.history.turns.map((t) => t.text)).toEqual(['I am someone new.']);
  });

  it('abandoning an arrival whose participant never linked saves nothing, releases the lease and fires nothing more', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps, changes, closes } = make(store, clock);
    // As a dispatch hint's speculative arrival: held with no bound until the participant links.
    ps.holdWrites(null);
    await ps.arrive();
    const fired = changes.length;
    await new Promise((r) => setTimeout(r, 50)); // the held save has no bound: still held
    expect((await store.readRecord(key)).status).toBe('missing');
    await ps.abandon();
    expect((await store.readRecord(key)).status).toBe('missing');
    expect(await store.readProfile(key)).toBeNull();
    // The lease is free: an exclusive claim (which refuses a live lease) gets it.
    const other = await store.resumeAndClaim(key, 'job-2', clock.nowMs(), 30_000, 'exclusive');
    expect(other.status).toBe('claimed');
    // Its later loss of the (released) lease is not a takeover of anything: no event, no close.
    ps.takenOver();
    expect(changes).toHaveLength(fired);
    expect(closes).toEqual([]);
  });

  it('a speculative arrival takes nothing from a conversation live in another job; on a free session it is an arrival', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const live = make(store, clock, { ...ReconnectPolicies.Default }, 'job-live');
    await live.ps.arrive();
    live.ps.persistTurn(turn('t1', 'user', 'I am talking in another room.', T0 + 1));
    await live.ps.drain();
    const spec = make(store, clock, { ...ReconnectPolicies.Default }, 'job-hinted');
    spec.ps.holdWrites(null);
    expect(await spec.ps.arriveIfFree()).toBeNull();
    await spec.ps.drain();
    // The live conversation keeps its lease: its next turn lands, it is not taken over.
    live.ps.persistTurn(turn('t2', 'user', 'Still here.', T0 + 2));
    await live.ps.drain();
    expect(live.ps.isTakenOver).toBe(false);
    expect(live.closes).toEqual([]);
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.owner?.ownerId).toBe('job-live');
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['I am talking in another room.', 'Still here.']);
    // The yielded speculation is closed: it fires nothing and writes nothing.
    spec.ps.persistTurn(turn('t3', 'user', 'never written', T0 + 3));
    await spec.ps.drain();
    expect(await store.readRecord(key)).toEqual(r);
    expect(spec.closes).toEqual([]);

    // Once the session is free (the live job let go), a speculation claims it like an arrival.
    await live.ps.suspend('client_initiated');
    clock.advance(1_000);
    const next = make(store, clock, { ...ReconnectPolicies.Default }, 'job-hinted-2');
    const a = await next.ps.arriveIfFree();
    expect(a?.resumed).toBe(true);
    expect(a?.record?.history.turns.map((t) => t.text)).toEqual(['I am talking in another room.', 'Still here.']);
  });

  it('erased while a speculative arrival waits for its participant: its held writes are dropped at once (drain and abandon finish without the participant) and nothing is written', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const before = make(store, clock, { ...ReconnectPolicies.Default }, 'job-before');
    await before.ps.arrive();
    before.ps.persistTurn(turn('t1', 'user', 'My card ends in 4242.', T0 + 1));
    await before.ps.suspend('client_initiated');
    const stored = await store.readRecord(key);
    clock.advance(1_000);
    const spec = make(store, clock, { ...ReconnectPolicies.Default }, 'job-hinted');
    spec.ps.holdWrites(null);
    expect((await spec.ps.arriveIfFree())?.resumed).toBe(true);
    spec.ps.forgotten();
    const within = async (what: string, p: Promise<void>) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} waited for a participant who never linked`)), 2_000)));
      await Promise.race([p, late]).finally(() => clearTimeout(timer));
    };
    await within('drain', spec.ps.drain());
    await within('abandon', spec.ps.abandon());
    // The record as it was (only the speculation's own claim on it shows).
    const after = await store.readRecord(key);
    expect(after.status === 'found' && { ...after.record, owner: null }).toEqual(stored.status === 'found' && stored.record);
    expect(spec.ps.isForgotten).toBe(true);
  });

  it('a hold bounded from a later moment (the link) ends after that bound', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    const hold = ps.holdWrites(null);
    await ps.arrive();
    await new Promise((r) => setTimeout(r, 50));
    expect((await store.readRecord(key)).status).toBe('missing');
    hold.bound(20);
    await until(async () => (await store.readRecord(key)).status === 'found', 2_000);
  });

  it('a hold that is never released ends after its bound, and nothing is lost', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    ps.holdWrites(50);
    await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'Still there?', T0 + 1));
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['Still there?']);
  });

  it('folds appended turns into the saved record at the next lease renewal, so the archive copy survives a crash', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    // Renewal every max(250 ms, min(lease, session TTL) / 3): 300 ms here (real timers).
    const { ps } = make(store, clock, { ...ReconnectPolicies.Default, sessionTtlMs: 900 });
    await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'Book me a table for two.', T0 + 1));
    await ps.drain();
    const archivedTexts = async () => (await store.readArchive(key, clock.nowMs()))[0]?.record?.history.turns.map((t) => t.text) ?? [];
    expect(await archivedTexts()).toEqual([]); // appended, not yet saved
    await until(async () => (await archivedTexts()).length === 1, 3_000);
    expect(await archivedTexts()).toEqual(['Book me a table for two.']);
  });

  it('a reload (client-initiated leave, then back) is greeted once with a brief welcome back, without reloading anything', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps, changes } = make(store, clock);
    await ps.arrive();
    clock.advance(10_000);
    ps.left('client_initiated');
    expect(ps.state).toBe('Disconnected');
    clock.advance(1_000);
    const back = ps.rejoined();
    expect(back?.greeting.kind).toBe('welcome_back_brief');
    expect(back?.decision).toMatchObject({ kind: 'resume', why: 'within_rejoin_ttl' });
    expect(changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnected', 'Connected']);
    await ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.reconnectCount).toBe(1);
    expect(r.status === 'found' && r.record.visitCount).toBe(1);
  });

  it('a network drop shorter than the re-greet gap is not greeted again', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock);
    await ps.arrive();
    ps.left('network');
    expect(ps.state).toBe('Reconnecting');
    clock.advance(2_000);
    expect(ps.rejoined()?.greeting).toEqual({ kind: 'none', why: 'short_drop' });
  });

  it('AlwaysFresh (a kiosk) starts over on a rejoin in the room: a new conversation with no turn, name or language of the last visitor, the last one archived; only a network blip within the re-greet gap carries on unannounced', async () => {
    const kiosk = { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' as const };
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock, kiosk, 'job-1', { participantName: 'Alice Smith', language: 'de' });
    const first = await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'My account number is 12345.', T0 + 1));
    ps.updateContext({ states: [{ name: 'Visitor', value: 'Alice' }], events: [], revisions: { 'p:alice/tab': 1 } });
    // A network blip: the same person, whose connection came back.
    ps.left('network');
    clock.advance(2_000);
    const blip = ps.rejoined({ language: null, chosen: false });
    expect(blip).toMatchObject({ greeting: { kind: 'none', why: 'short_drop' }, startedOver: false, speech: null });
    expect(ps.currentRecord?.history.turns.map((t) => t.text)).toEqual(['My account number is 12345.']);
    // Alice closes the tab; the next visitor opens it 30 s later (same device, same identity).
    ps.left('client_initiated');
    clock.advance(30_000);
    const next = ps.rejoined({ language: null, chosen: false });
    expect(next).toMatchObject({ decision: { kind: 'fresh', why: 'policy_fresh' }, greeting: { kind: 'first_time' }, startedOver: true });
    expect(next?.speech).toBe("Hello! I'm glad you're here. How can I help you today?");
    const record = ps.currentRecord!;
    expect(record.sessionId).not.toBe(first.record?.sessionId);
    expect(record.history.turns).toEqual([]);
    expect(record.context.states).toEqual([]);
    expect(record).toMatchObject({ participantName: null, language: null, state: 'Connected', visitCount: 2 });
    await ps.drain();
    const stored = await store.readRecord(key);
    expect(stored.status === 'found' && stored.record.sessionId).toBe(record.sessionId);
    expect(stored.status === 'found' && stored.record.history.turns).toEqual([]);
    // Alice's conversation is kept for audit, closed, with her turn; nothing of it in the new one.
    const archive = await store.readArchive(key, clock.nowMs());
    const alices = archive.find((a) => a.sessionId === first.record?.sessionId);
    expect(alices?.record).toMatchObject({ state: 'Disconnected', disconnectReason: 'ended', participantName: 'Alice Smith' });
    expect(alices?.record?.history.turns.map((t) => t.text)).toEqual(['My account number is 12345.']);
    // The new conversation's turns are saved under its lease.
    ps.persistTurn(turn('t2', 'user', 'Hi, I am new here.', clock.nowMs()));
    await ps.drain();
    const after = await store.readRecord(key);
    expect(after.status === 'found' && after.record.history.turns.map((t) => t.text)).toEqual(['Hi, I am new here.']);
  });

  it('taken over while it waits for a rejoin (the participant went on in another room): the job closes as taken over, and a late rejoin here is not served', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps, closes } = make(store, clock);
    await ps.arrive();
    ps.left('client_initiated');
    clock.advance(5_000);
    ps.takenOver();
    expect(closes).toEqual(['taken_over']);
    expect(ps.rejoined({ language: null, chosen: false })).toBeUndefined();
  });

  it('AlwaysFresh never greets a visitor by a name remembered from the last one', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const kiosk = { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' as const };
    const first = make(store, clock, kiosk, 'job-1', { participantName: 'Alice Smith' });
    expect((await first.ps.arrive()).speech).toBe("Hello, Alice Smith! I'm glad you're here. How can I help you today?");
    await first.ps.suspend('client_initiated');
    clock.advance(10 * 60_000);
    const second = await make(store, clock, kiosk, 'job-2').ps.arrive();
    expect(second.speech).toBe("Hello! I'm glad you're here. How can I help you today?");
    expect(second.record?.participantName).toBeNull();
  });

  it('a new connection that replaced the old one before its leave was seen is welcomed back briefly, however long ago the last turn was', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps } = make(store, clock, { ...ReconnectPolicies.Default, sessionTtlMs: 30 * 60_000 });
    await ps.arrive();
    ps.persistTurn(turn('t1', 'user', 'Hello there.', T0 + 1));
    for (const quietMs of [90_000, 31 * 60_000]) {
      clock.advance(quietMs);
      const back = ps.rejoined({ language: null, chosen: false });
      expect(back?.decision, String(quietMs)).toMatchObject({ kind: 'resume', why: 'within_rejoin_ttl' });
      expect(back?.greeting.kind, String(quietMs)).toBe('welcome_back_brief');
      expect(ps.currentRecord?.history.turns.map((t) => t.text)).toEqual(['Hello there.']);
    }
  });

  it('a participant whose call ended (they left, or the agent hung up on a silence) and who calls again at once, in a new job, is greeted; after a drop they did not choose, not', async () => {
    for (const [reason, greeting] of [
      ['client_initiated', 'welcome_back_brief'],
      ['ended', 'welcome_back_brief'],
      // The agent deleted the room: a resume from the shared store, greeted as a return.
      ['idle', 'returning'],
      ['network', 'none'],
      ['agent_shutdown', 'none'],
      ['room_closed', 'none'],
    ] as const) {
      const clock = new ManualClock(T0);
      const store = new MemorySessionStore({ clock });
      const first = make(store, clock, ReconnectPolicies.Default, 'job-1');
      await first.ps.arrive();
      first.ps.persistTurn(turn('t1', 'user', 'Book me a table for two.', T0 + 1));
      clock.advance(10_000);
      await first.ps.suspend(reason);
      clock.advance(2_000);
      const again = await make(store, clock, ReconnectPolicies.Default, 'job-2').ps.arrive();
      expect(again.decision.kind, reason).toBe('resume');
      expect(again.greeting.kind, reason).toBe(greeting);
      // Only a return greeted as one is a new visit: a worker restarted under the call is not.
      expect(again.record?.visitCount, reason).toBe(greeting === 'returning' ? 2 : 1);
    }
  });

  it.each(['ResumeIfPossible', 'AlwaysResume'] as const)('%s: when the rejoin window passes it closes, and suspension releases the session for any job', async (resumePolicy) => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const policy = { ...ReconnectPolicies.Default, resumePolicy, rejoinTtlMs: 50 };
    const { ps, closes, changes } = make(store, clock, policy);
    await ps.arrive();
    ps.left('network');
    clock.advance(60);
    await waitForClose(closes);
    expect(closes).toEqual(['rejoin_expired']);
    // AlwaysResume: the episode is an error (it could not be restored), and the job still ends.
    expect(changes.at(-1)?.newState).toBe(resumePolicy === 'AlwaysResume' ? 'Error' : 'Disconnecting');
    await ps.suspend('network');
    expect(ps.isTakenOver).toBe(false);
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record).toMatchObject({ state: 'Disconnected', owner: null, disconnectReason: 'network' });

    // A new job resumes it from the store: returning, with the visit counted.
    clock.advance(60_000);
    const next = make(store, clock, policy, 'job-2');
    const a = await next.ps.arrive();
    expect(a.decision).toMatchObject({ kind: 'resume', why: 'within_session_ttl' });
    expect(a.greeting.kind).toBe('returning');
  });

  it('a newer arrival elsewhere takes over: the old owner writes nothing more', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const old = make(store, clock, ReconnectPolicies.Default, 'job-old');
    await old.ps.arrive();
    old.ps.persistTurn(turn('t1', 'user', 'First tab.', T0 + 1));
    await old.ps.drain();
    const neu = make(store, clock, ReconnectPolicies.Default, 'job-new');
    const a = await neu.ps.arrive();
    expect(a.previousOwner).toBe('job-old');
    expect(a.decision.kind).toBe('resume');
    // The old job's late write is refused by the lease and turns into a takeover.
    old.ps.persistTurn(turn('t2', 'user', 'Late write from the old tab.', T0 + 2));
    await old.ps.drain();
    expect(old.ps.isTakenOver).toBe(true);
    expect(old.closes).toEqual(['taken_over']);
    neu.ps.persistTurn(turn('t3', 'user', 'Second tab.', T0 + 3));
    await neu.ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['First tab.', 'Second tab.']);
  });

  it('a takeover notice of an older claim is ignored, before or after its own claim answers; one of a later claim closes the job, before it starts if it came while the claim was on its way', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    await make(store, clock, ReconnectPolicies.Default, 'job-1').ps.arrive();
    // job-2 takes the conversation from job-1; job-1's announcement of its own claim comes
    // before job-2's claim answers, and again after.
    const second = make(store, clock, ReconnectPolicies.Default, 'job-2');
    const claiming = second.ps.arrive();
    second.ps.takenOver({ owner: 'job-1', fence: 1 });
    const a = await claiming;
    expect([a.previousOwner, a.fence]).toEqual(['job-1', 2]);
    second.ps.takenOver({ owner: 'job-1', fence: 1 });
    expect(second.ps.isTakenOver).toBe(false);
    expect(second.closes).toEqual([]);
    second.ps.persistTurn(turn('t1', 'user', 'Still here.', T0 + 1));
    await second.ps.drain();
    const r = await store.readRecord(key);
    expect(r.status === 'found' && r.record.history.turns.map((t) => t.text)).toEqual(['Still here.']);

    // job-3 takes it from job-2; job-1's notice (older, though not of the job it took over from)
    // changes nothing either.
    const third = make(store, clock, ReconnectPolicies.Default, 'job-3');
    const claiming3 = third.ps.arrive();
    third.ps.takenOver({ owner: 'job-1', fence: 1 });
    expect((await claiming3).fence).toBe(3);
    expect(third.ps.isTakenOver).toBe(false);

    // job-4 takes it from job-3, and job-5's claim (after job-4's) is announced before job-4's
    // claim answers: job-4 never starts.
    const fourth = make(store, clock, ReconnectPolicies.Default, 'job-4');
    const claiming4 = fourth.ps.arrive();
    fourth.ps.takenOver({ owner: 'job-5', fence: 5 });
    await claiming4;
    expect(fourth.ps.isTakenOver).toBe(true);
    expect(fourth.closes).toEqual(['taken_over']);
    expect(fourth.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnecting']);
    // job-4's own notice reaches job-3, which lets go.
    third.ps.takenOver({ owner: 'job-4', fence: 4 });
    expect(third.closes).toEqual(['taken_over']);
  });

  it('with a fence of its own (claimed from memory while Redis did not answer), a notice is judged by who announced it, not by its fence', async () => {
    const clock = new ManualClock(T0);
    /** Claims as a tiered store does from its local tier: the fence is this process's own. */
    class LocalFences extends MemorySessionStore {
      override async resumeAndClaim(...args: Parameters<MemorySessionStore['resumeAndClaim']>) {
        const r = await super.resumeAndClaim(...args);
        return r.status === 'claimed' ? { ...r, sharedFence: false } : r;
      }
    }
    const store = new LocalFences({ clock });
    await make(store, clock, ReconnectPolicies.Default, 'job-1').ps.arrive();
    const second = make(store, clock, ReconnectPolicies.Default, 'job-2');
    expect((await second.ps.arrive()).fence).toBe(2);
    // The job it took over from: not news.
    second.ps.takenOver({ owner: 'job-1', fence: 1 });
    expect(second.ps.isTakenOver).toBe(false);
    // Any other job, whatever its fence (Redis's sequence, not this one's): taken over.
    second.ps.takenOver({ owner: 'job-7', fence: 1 });
    expect(second.closes).toEqual(['taken_over']);
  });

  it('a conversation taken while live in another job (a second tab, a worker that died with its lease running) is welcomed back once and not counted as a visit, right after the last words as after a quiet minute', async () => {
    for (const quietMs of [1_000, 70_000]) {
      const clock = new ManualClock(T0);
      const store = new MemorySessionStore({ clock });
      const old = make(store, clock, ReconnectPolicies.Default, 'job-old', { leaseMs: 120_000 });
      expect((await old.ps.arrive()).greeting.kind).toBe('first_time');
      old.ps.persistTurn(turn('t1', 'user', 'Book a table for two.', T0 + 1));
      await old.ps.drain();
      clock.advance(quietMs);
      const neu = make(store, clock, ReconnectPolicies.Default, 'job-new', { leaseMs: 120_000 });
      const a = await neu.ps.arrive();
      expect(a.previousOwner).toBe('job-old');
      expect([quietMs, a.decision]).toMatchObject([quietMs, { kind: 'resume', why: 'within_rejoin_ttl' }]);
      expect([quietMs, a.greeting.kind, a.record?.visitCount]).toEqual([quietMs, 'welcome_back_brief', 1]);
      expect(a.speech).toBe(renderGreeting(a.greeting, null, null));
    }
  });

  it('a stored conversation it cannot read (sealed with a key this worker lacks) is set aside, not overwritten: a fresh start, and all of it stays in the archive (real Redis)', async () => {
    const redis = await connectTestRedis();
    const prefix = randomPrefix('ps-unreadable');
    const sealing = (keys: Record<string, number>, current: string) =>
      new RedisSessionStore({ client: redis, prefix, cipher: new PayloadCipher({ currentKeyId: current, keys: Object.fromEntries(Object.entries(keys).map(([id, b]) => [id, Buffer.alloc(32, b)])) }) });
    try {
      // A worker sealing with k1 saved a conversation, then heard two turns it had not folded in yet.
      const oldWorker = sealing({ k1: 1 }, 'k1');
      const claim = await oldWorker.resumeAndClaim(key, 'job-old', Date.now(), 30_000);
      if (claim.status !== 'claimed') throw new Error('claim failed');
      const saved = recordWithTurn(newSessionRecord({ ...key, sessionId: 's-old', nowMs: Date.now(), profile: null }), turn('o1', 'user', 'Remember my order number.', Date.now()));
      await oldWorker.save(saved, claim.version, claim.lease);
      await oldWorker.appendTurn(key, turn('o2', 'assistant', 'Noted.', Date.now() + 1), claim.lease);
      await oldWorker.appendTurn(key, turn('o3', 'user', 'It is 4471.', Date.now() + 2), claim.lease);
      await oldWorker.release(key, claim.lease);

      // A worker whose keyring lacks k1 (a rotation done in one step) gets the participant.
      const clock = new ManualClock(Date.now() + 10);
      const { ps } = make(sealing({ k2: 2 }, 'k2'), clock, { ...ReconnectPolicies.Default }, 'job-new');
      const a = await ps.arrive();
      expect(a.decision).toEqual({ kind: 'fresh', why: 'record_tampered' });
      ps.persistTurn(turn('n1', 'user', 'Hello again.', clock.nowMs()));
      await ps.drain();

      // With the keyring fixed, both conversations are whole.
      const fixed = sealing({ k2: 2, k1: 1 }, 'k2');
      const now = await fixed.readRecord(key);
      expect(now.status === 'found' && [now.record.sessionId, now.record.history.turns.map((t) => t.text)]).toEqual([a.record?.sessionId, ['Hello again.']]);
      const archive = await fixed.readArchive(key, Date.now() + 100);
      expect(archive.find((e) => e.sessionId === 's-old')?.record?.history.turns.map((t) => t.text)).toEqual(['Remember my order number.', 'Noted.', 'It is 4471.']);
    } finally {
      await unlinkPrefix(redis, `${prefix}*`);
      redis.disconnect();
    }
  });

  it('AlwaysResume without a valid session rejects with a clear message, goes to Error and changes nothing', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 1_000 });
    const first = make(store, clock);
    await first.ps.arrive();
    await first.ps.suspend('client_initiated');
    clock.advance(5_000); // the session expired; the profile remains
    const strict = make(store, clock, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysResume' }, 'job-2');
    const a = await strict.ps.arrive();
    expect(a.decision).toEqual({ kind: 'reject', why: 'expired' });
    expect(a.speech).toMatch(/expired and cannot be resumed/);
    expect(strict.ps.state).toBe('Error');
    await strict.ps.drain();
    expect((await store.readRecord(key)).status).toBe('missing');
  });
});

describe('ParticipantSession and the participant\'s language', () => {
  it('greets in the token\'s language, remembers it, and greets a return without it in the same language (resumed, then known after expiry)', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 30 * 60_000 });
    const first = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { language: 'es-MX', participantName: 'Ana' });
    const a = await first.ps.arrive();
    expect(a.speech).toBe('¡Hola, Ana! Me alegra que estés aquí. ¿En qué puedo ayudarte hoy?');
    expect(a.record?.language).toBe('es-MX');
    first.ps.persistTurn(turn('t1', 'user', 'Mi router se desconecta.', T0 + 1));
    await first.ps.suspend('client_initiated');

    clock.advance(10 * 60_000); // within the session TTL: resumed
    const back = make(store, clock, { ...ReconnectPolicies.Default }, 'job-2', { participantName: 'Ana' });
    const b = await back.ps.arrive();
    expect(b.greeting.kind).toBe('returning');
    expect(b.speech).toBe('¡Hola de nuevo, Ana! Han pasado 10 minutos y esta es tu visita número 2. La última vez hablamos de «Mi router se desconecta.». ¿Seguimos?');
    await back.ps.suspend('client_initiated');

    clock.advance(2 * 3_600_000); // the conversation expired; the profile remembers the language
    const later = make(store, clock, { ...ReconnectPolicies.Default }, 'job-3');
    const c = await later.ps.arrive();
    expect(c.greeting.kind).toBe('known_fresh');
    expect(c.speech).toBe('¡Qué gusto verte otra vez, Ana! Han pasado 2 horas. ¿De qué te gustaría hablar hoy?');
  });

  it('AlwaysResume that cannot resume says why in the remembered language', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 1_000 });
    const first = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { language: 'es' });
    await first.ps.arrive();
    await first.ps.suspend('client_initiated');
    clock.advance(5_000); // expired; the profile remains, with the language
    const strict = make(store, clock, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysResume' }, 'job-2');
    const a = await strict.ps.arrive();
    expect(a.decision).toEqual({ kind: 'reject', why: 'expired' });
    expect(a.speech).toBe('Tu conversación anterior ha caducado y no se puede reanudar. Por favor, inicia una nueva sesión.');
  });

  it('a token\'s language replaces the remembered one; AlwaysFresh (a kiosk) uses only the token\'s, never a remembered one', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const first = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { language: 'de' });
    await first.ps.arrive();
    await first.ps.suspend('client_initiated');
    clock.advance(60_000);
    const kiosk = make(store, clock, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' }, 'job-2');
    const k = await kiosk.ps.arrive();
    expect(k.speech).toBe("Hello! I'm glad you're here. How can I help you today?");
    expect(k.record?.language).toBeNull();
    await kiosk.ps.suspend('client_initiated');
    clock.advance(10 * 60_000);
    const french = make(store, clock, { ...ReconnectPolicies.Default }, 'job-3', { language: 'fr-CA' });
    const f = await french.ps.arrive();
    expect(f.speech).toMatch(/^Bon retour ! Cela fait 10 minutes/);
    expect(f.record?.language).toBe('fr-CA');
  });

  it('a language heard spoken replaces the arrival\'s: it is saved, a rejoin in the room is welcomed in it, and so is a return whose token names another (a browser\'s default) or none', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 30 * 60_000 });
    const first = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { participantName: 'Ana' });
    const a = await first.ps.arrive();
    expect(a.speech).toBe("Hello, Ana! I'm glad you're here. How can I help you today?");
    first.ps.useLanguage('es');
    await first.ps.drain();
    const saved = await store.readRecord(key);
    expect(saved.status === 'found' && saved.record.language).toBe('es');
    first.ps.left('client_initiated');
    clock.advance(20_000);
    expect(first.ps.rejoined()?.speech).toBe('Hola de nuevo, Ana. Sigamos donde lo dejamos.');
    await first.ps.suspend('client_initiated');

    clock.advance(10 * 60_000);
    // The web client sends the browser's language: speech outranks it.
    const back = make(store, clock, { ...ReconnectPolicies.Default }, 'job-2', { language: 'en-US' });
    const b = await back.ps.arrive();
    expect(b.greeting.kind).toBe('returning');
    expect(b.speech).toMatch(/^¡Hola de nuevo, Ana! Han pasado 10 minutos/);
    expect(b.record).toMatchObject({ language: 'es', languageHeard: true });
    await back.ps.suspend('client_initiated');

    clock.advance(2 * 3_600_000); // expired: the profile keeps the language heard
    const later = make(store, clock, { ...ReconnectPolicies.Default }, 'job-3', { language: 'en-US' });
    expect((await later.ps.arrive()).speech).toMatch(/^¡Qué gusto verte otra vez, Ana!/);
    // If they are then heard speaking the token's language, it is theirs again.
    later.ps.useLanguage('en');
    await later.ps.suspend('client_initiated');
    clock.advance(60_000);
    const english = make(store, clock, { ...ReconnectPolicies.Default }, 'job-4', { language: 'de' });
    expect((await english.ps.arrive()).speech).toBe("Welcome back, Ana. Let's pick up where we left off.");
    await english.ps.suspend('client_initiated');
    // A kiosk (AlwaysFresh) reveals nothing remembered, a heard language included.
    clock.advance(60_000);
    const kiosk = make(store, clock, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' }, 'job-5', { language: 'fr' });
    const k = await kiosk.ps.arrive();
    expect(k.record).toMatchObject({ language: 'fr' });
    expect(k.record?.languageHeard).toBeUndefined();
  });

  it('a language the participant chose outranks one heard spoken, is kept as theirs after expiry and on a device whose browser says another, and gives way to what they then speak', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock, sessionTtlMs: 30 * 60_000 });
    const first = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { participantName: 'Ana' });
    await first.ps.arrive();
    first.ps.useLanguage('es'); // heard speaking Spanish
    await first.ps.suspend('client_initiated');

    clock.advance(10 * 60_000);
    // They pick German from the menu: their pick wins over the language heard.
    const picked = make(store, clock, { ...ReconnectPolicies.Default }, 'job-2', { language: 'de', languageChosen: true });
    const p = await picked.ps.arrive();
    expect(p.speech).toMatch(/^Willkommen zurück, Ana! Es ist 10 Minuten her/);
    expect(p.record).toMatchObject({ language: 'de', languageChosen: true });
    expect(p.record?.languageHeard).toBeUndefined();
    await picked.ps.suspend('client_initiated');

    clock.advance(2 * 3_600_000); // expired: the profile keeps the pick
    const phone = make(store, clock, { ...ReconnectPolicies.Default }, 'job-3', { language: 'en-US' });
    const ph = await phone.ps.arrive();
    expect(ph.greeting.kind).toBe('known_fresh');
    expect(ph.speech).toMatch(/^Schön, Sie wiederzusehen, Ana!/);
    expect(ph.record).toMatchObject({ language: 'de', languageChosen: true });
    // Then heard speaking French: what they speak now is theirs, the pick is dropped.
    phone.ps.useLanguage('fr');
    await phone.ps.drain();
    const saved = await store.readRecord(key);
    expect(saved.status === 'found' && saved.record).toMatchObject({ language: 'fr', languageHeard: true });
    expect(saved.status === 'found' && saved.record.languageChosen).toBeUndefined();
    await phone.ps.suspend('client_initiated');

    clock.advance(60_000);
    // A kiosk reveals no remembered pick, but a pick in its own token is the token's language.
    const kiosk = make(store, clock, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' }, 'job-4', { language: 'es', languageChosen: true });
    const k = await kiosk.ps.arrive();
    expect(k.speech).toBe('¡Hola! Me alegra que estés aquí. ¿En qué puedo ayudarte hoy?');
    expect(k.record).toMatchObject({ language: 'es', languageChosen: true });
  });

  it('a participant who comes back to the room with another language is ranked as at an arrival: a pick wins and is welcomed back in, a browser\'s yields to one heard', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const s = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { participantName: 'Ana', language: 'en-US' });
    await s.ps.arrive();
    const back = async (token: { language: string | null; chosen: boolean }) => {
      s.ps.left('client_initiated');
      clock.advance(20_000);
      return s.ps.rejoined(token);
    };
    // Another browser's language replaces one that only came from a token; none keeps it.
    expect(await back({ language: 'de', chosen: false })).toMatchObject({ languageChanged: true, speech: renderGreeting({ kind: 'welcome_back_brief', agoMs: 20_000 }, 'Ana', 'de') });
    expect((await back({ language: null, chosen: false }))?.languageChanged).toBe(false);
    // Heard speaking Spanish: a browser's language no longer moves it.
    s.ps.useLanguage('es');
    expect(await back({ language: 'de', chosen: false })).toMatchObject({ languageChanged: false, speech: renderGreeting({ kind: 'welcome_back_brief', agoMs: 20_000 }, 'Ana', 'es') });
    // A pick does, and is kept as theirs.
    const picked = await back({ language: 'fr', chosen: true });
    expect(picked).toMatchObject({ greeting: { kind: 'welcome_back_brief' }, languageChanged: true, speech: renderGreeting({ kind: 'welcome_back_brief', agoMs: 20_000 }, 'Ana', 'fr') });
    await s.ps.drain();
    const saved = await store.readRecord(key);
    expect(saved.status === 'found' && saved.record).toMatchObject({ language: 'fr', languageChosen: true });
    expect(saved.status === 'found' && saved.record.languageHeard).toBeUndefined();
    expect((await back({ language: 'fr', chosen: true }))?.languageChanged).toBe(false);
  });
});

/** A condenser whose answers the test gives (or refuses) by hand; it records what it was asked. */
function heldCondenser() {
  const asked: string[] = [];
  const answers: Array<{ resolve: (text: string) => void; reject: (err: Error) => void }> = [];
  const condense = (summary: string) => {
    asked.push(summary);
    return new Promise<string>((resolve, reject) => answers.push({ resolve, reject }));
  };
  return { condense, asked, answers };
}

/** Lets the condenser's answer (a promise callback) and the writes it queued run. */
async function settle(ps: ParticipantSession): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await ps.drain();
}

describe('ParticipantSession condensing the summary of older turns', () => {
  const said: Turn[] = [];
  /** Says the next turn (about 100 characters, so its summary line is too). */
  const say = (ps: ParticipantSession, clock: ManualClock) => {
    const i = said.length;
    const t = turn(`c${i}`, i % 2 === 0 ? 'user' : 'assistant', `Message ${i}: the router on the 5 GHz band dropped again after the firmware update.`, clock.nowMs() + i);
    said.push(t);
    ps.persistTurn(t);
  };
  /** Says turns until the condenser is asked (a summary of DEFAULT_CONDENSE_OPTIONS.condenseAtChars). */
  const sayUntilAsked = (ps: ParticipantSession, clock: ManualClock, asked: string[]) => {
    while (asked.length === 0) {
      if (said.length > 500) throw new Error('the condenser was never asked');
      say(ps, clock);
    }
  };
  /** A session with a held condenser on `store`, after it said turns until the condenser was asked. */
  const untilAsked = async (store: SessionStore, clock: ManualClock, condenseOptions = DEFAULT_CONDENSE_OPTIONS) => {
    const model = heldCondenser();
    const { ps } = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1', { condense: model.condense, condenseOptions });
    await ps.arrive();
    sayUntilAsked(ps, clock, model.asked);
    return { ps, model };
  };
  /** The summary the turns said so far would have without condensing. */
  const linesOnly = () => said.reduce((h, t) => appendTurn(h, t), emptyHistory()).summary;

  afterEach(() => {
    said.length = 0;
  });

  it('condenses once the summary is due, keeps the lines folded in meanwhile, and a resume in another job restores it (real Redis)', async () => {
    const redis = await connectTestRedis();
    const prefix = randomPrefix('ps-condense');
    const store = new RedisSessionStore({ client: redis, prefix });
    try {
      const clock = new ManualClock(Date.now());
      const { ps, model } = await untilAsked(store, clock);
      // The model is given the summary as it stands: one line per turn past the 50 kept verbatim.
      const basis = model.asked[0] as string;
      expect(basis).toBe(linesOnly());
      expect(basis.split('\n')).toHaveLength(said.length - 50);
      expect(basis.length).toBeGreaterThanOrEqual(DEFAULT_CONDENSE_OPTIONS.condenseAtChars);
      // Three more turns while it works: one request at a time, and their lines are kept.
      for (let n = 0; n < 3; n++) say(ps, clock);
      expect(model.asked).toHaveLength(1);
      const later = linesOnly().slice(basis.length + 1);
      expect(later.split('\n')).toHaveLength(3);
      model.answers[0]?.resolve('Ana reported that her router drops on the 5 GHz band since a firmware update.');
      await settle(ps);
      await ps.suspend('client_initiated');

      // Another job resumes the conversation: the condensed summary, then the later lines, then the 50 turns.
      const next = make(store, new ManualClock(clock.nowMs() + 10_000), { ...ReconnectPolicies.Default }, 'job-2');
      const a = await next.ps.arrive();
      expect(a.resumed).toBe(true);
      const history = a.record?.history;
      expect(history?.summary).toBe(`Ana reported that her router drops on the 5 GHz band since a firmware update.\n${later}`);
      expect(history?.turns.map((t) => t.id)).toEqual(said.slice(-50).map((t) => t.id));
      expect(history?.summarizedTurnCount).toBe(said.length - 50);
      const first = historyToChatContext(history!).items[0];
      expect(first?.type === 'message' && first.textContent).toContain('Ana reported that her router drops');
    } finally {
      await unlinkPrefix(redis, `${prefix}*`);
      redis.disconnect();
    }
  });

  // At the highest threshold the summary reaches its bound (and stops growing) before the retry.
  it('an answer that arrives after the conversation started over (AlwaysFresh in the room) changes nothing in the new one, and does not put off its own condensing', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const model = heldCondenser();
    const kiosk = { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysFresh' as const };
    const { ps } = make(store, clock, kiosk, 'job-1', { condense: model.condense });
    await ps.arrive();
    sayUntilAsked(ps, clock, model.asked);
    const turnsToFirstAsk = said.length;
    ps.left('client_initiated');
    clock.advance(30_000);
    expect(ps.rejoined({ language: null, chosen: false })?.startedOver).toBe(true);
    model.answers[0]?.resolve('Condensed: the last visitor\'s router.');
    await settle(ps);
    expect(ps.currentRecord?.history.summary).toBe('');
    // The new conversation is condensed as soon as its own summary is due, as the first was.
    said.length = 0;
    model.asked.length = 0;
    sayUntilAsked(ps, clock, model.asked);
    expect(said.length).toBe(turnsToFirstAsk);
    expect(model.asked[0]).toBe(linesOnly());
  });

  for (const condenseAtChars of [DEFAULT_CONDENSE_OPTIONS.condenseAtChars, MAX_CONDENSE_AT_CHARS]) {
    it(`a failed request changes nothing (every line stays) and is retried only once more turns were folded in (condensing at ${condenseAtChars} characters)`, async () => {
      const clock = new ManualClock(T0);
      const store = new MemorySessionStore({ clock });
      const { ps, model } = await untilAsked(store, clock, { ...DEFAULT_CONDENSE_OPTIONS, condenseAtChars });
      const foldedAtAsk = said.length - 50;
      model.answers[0]?.reject(new Error('model unavailable'));
      await settle(ps);
      say(ps, clock);
      await ps.drain();
      expect(model.asked).toHaveLength(1);
      const stored = await store.readRecord(key);
      expect(stored.status === 'found' && stored.record.history.summary).toBe(linesOnly());
      // Asked again once retryAfterTurns more turns were folded in, and not before.
      while (model.asked.length === 1) {
        if (said.length > 500) throw new Error('never retried');
        say(ps, clock);
      }
      expect(said.length - 50).toBe(foldedAtAsk + DEFAULT_CONDENSE_OPTIONS.retryAfterTurns);
      expect(model.asked[1]).toBe(linesOnly());
    });
  }

  it('a conversation resumed with a summary already due is condensed at once, not at its next turn', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    // The first job has no model to condense with (offline): every folded line stays.
    const offline = make(store, clock, { ...ReconnectPolicies.Default }, 'job-1');
    await offline.ps.arrive();
    while (!condenseDue(said.reduce((h, t) => appendTurn(h, t), emptyHistory()))) say(offline.ps, clock);
    await offline.ps.suspend('client_initiated');
    const due = linesOnly();

    clock.advance(10_000);
    const model = heldCondenser();
    const { ps } = make(store, clock, { ...ReconnectPolicies.Default }, 'job-2', { condense: model.condense });
    const a = await ps.arrive();
    expect(a.resumed).toBe(true);
    expect(model.asked).toEqual([due]);
    model.answers[0]?.resolve('Ana reported that her router drops on the 5 GHz band since a firmware update.');
    await settle(ps);
    const stored = await store.readRecord(key);
    expect(stored.status === 'found' && stored.record.history.summary).toBe('Ana reported that her router drops on the 5 GHz band since a firmware update.');
    expect(stored.status === 'found' && stored.record.history.summarizedTurnCount).toBe(said.length - 50);
  });

  it('an answer that comes after the conversation was suspended writes nothing', async () => {
    const clock = new ManualClock(T0);
    const store = new MemorySessionStore({ clock });
    const { ps, model } = await untilAsked(store, clock);
    await ps.suspend('client_initiated');
    model.answers[0]?.resolve('Too late.');
    await settle(ps);
    const stored = await store.readRecord(key);
    expect(stored.status === 'found' && stored.record.history.summary).toBe(linesOnly());
  });
});

async function waitForClose(closes: string[]): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (closes.length === 0) {
    if (Date.now() > deadline) throw new Error('no close within 2 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}
