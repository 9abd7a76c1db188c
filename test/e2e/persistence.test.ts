/**
 * The worker remembers, end to end: a real livekit-server, real Redis, real worker processes,
 * participants joined with @livekit/rtc-node. The model is the real OpenAI plugin talking to an
 * OpenAI-compatible test server that records what the model receives.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { unlinkPrefix } from '../lib/store/redis_support.js';
import { renderGreeting, takenOverMessage } from '../../lib/session/greeting.js';
import { idleCheckInText, idleGoodbyeText } from '../../lib/session/idle.js';
import { summaryLine } from '../../lib/session/history.js';
import { languageInstruction } from '../../lib/session/language.js';
import { livenessKeys } from '../../lib/store/agent_liveness.js';
import { KeyBuilder } from '../../lib/store/keys.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { SessionNotices, forgetIdentity } from '../../lib/store/session_notices.js';
import { ParticipantInfo_State, RoomServiceClient } from 'livekit-server-sdk';
import { ensureAgentDispatched } from '../../web/server/agent_dispatch.js';
import { BackendContextPublisher } from '../../web/server/backend_context_publisher.js';
import type { ResumePolicyName } from '../../web/server/tokens.js';
import { startOpenAIStub, stubModelEnv, stubReply, type OpenAIStub, type StubMessage } from '../support/openai_stub.js';
import { DisconnectReason, literally, TestParticipant, type ServerInfo } from '../support/participant.js';
import { freeTcpPort } from '../support/ports.js';
import { RtcContextPublisher } from '../support/rtc_context_publisher.js';
import { waitFor } from '../support/wait.js';
import { livekitEnv, startWorker, type WorkerProcess } from '../support/worker.js';

const server: ServerInfo = { url: inject('livekitUrl'), apiKey: inject('livekitApiKey'), apiSecret: inject('livekitApiSecret') };
const redisUrl = inject('redisUrl');
const run = Math.random().toString(36).slice(2, 8);
const prefix = `pva-e2e-${run}:`;
let stub: OpenAIStub;
let inspect: RedisSessionStore;
let notices: SessionNotices;
const workers: WorkerProcess[] = [];
const participants: TestParticipant[] = [];

/** A name no other test of this run uses (a counter: four random characters alone collided once, and a reused room keeps its first agent dispatch). */
let uidSeq = 0;
const uid = (tag: string) => `${tag}-${run}-${(uidSeq += 1)}${Math.random().toString(36).slice(2, 5)}`;

function workerEnv(agentName: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...livekitEnv(server, agentName),
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    ...stubModelEnv(stub),
    AGENT_IO: 'text',
    MIN_REGREET_GAP_MS: '300',
    ...extra,
  };
}

async function worker(agentName: string, extra: Record<string, string> = {}, mode: 'dev' | 'start' = 'dev'): Promise<WorkerProcess> {
  const w = await startWorker({ env: workerEnv(agentName, extra), mode });
  workers.push(w);
  return w;
}

async function join(opts: { identity: string; room: string; agentName: string; rejoinTtlMs: number; policy?: ResumePolicyName; language?: string }): Promise<TestParticipant> {
  const p = await TestParticipant.join(server, {
    identity: opts.identity,
    room: opts.room,
    agentName: opts.agentName,
    rejoinTtlMs: opts.rejoinTtlMs,
    ...(opts.policy ? { resumePolicy: opts.policy } : {}),
    ...(opts.language ? { language: opts.language } : {}),
  });
  participants.push(p);
  return p;
}

/**
 * The model request whose last user message is `text`. The stub is shared by the whole file, so
 * `text` must be said once in it: a second request with it (another test's) is an error, never
 * a match that proves nothing.
 */
function modelInputFor(text: string): Promise<StubMessage[]> {
  return waitFor(`a model request for "${text}"`, () => {
    const found = stub.requests.filter((msgs) => [...msgs].reverse().find((m) => m.role === 'user')?.content === text);
    if (found.length > 1) throw new Error(`"${text}" was sent to the model ${found.length} times in this file: say something only this test says`);
    return found[0];
  });
}

/** True for the agent's request to condense the summary of older turns (lib/session/condense.ts). */
function isCondensing(messages: StubMessage[]): boolean {
  return messages[0]?.role === 'system' && messages[0].content.startsWith('You keep the memory of a spoken conversation');
}

/** The stub's answer to a condensing request: names how many lines it was given. */
function condensedReply(messages: StubMessage[]): string {
  return `Condensed by the model from ${(messages[1]?.content ?? '').split('\n').length} lines: a caller's router keeps dropping on 5 GHz.`;
}

/** Says `text` and waits for the stub's answer to come back as text. */
async function converse(p: TestParticipant, text: string): Promise<void> {
  const from = p.texts.length;
  await p.say(text);
  await p.textMatching(literally(stubReply(text)), { from });
}

/**
 * Waits until `text` is a turn of `identity`'s stored conversation. The reply reaches the room
 * before the job's ordered write queue has stored the turn, so a read right after it can miss it.
 */
async function turnStored(agentName: string, identity: string, text: string): Promise<void> {
  await waitFor(`the turn "${text}" to be stored`, async () => {
    const r = await inspect.readRecord({ agentName, identity });
    return r.status === 'found' && r.record.history.turns.some((t) => t.text === text);
  });
}

/** A question whose answer the model is still generating when the participant leaves: its first part only, until the end of the file. */
const LONG_QUESTION = 'Tell me the long version, please.';
const LONG_HEAD = 'Here is the long version, part one.';
let finishLongAnswer: (tail: string) => void = () => undefined;
const longAnswerTail = new Promise<string>((resolve) => (finishLongAnswer = resolve));

beforeAll(async () => {
  stub = await startOpenAIStub({
    chatReply: (messages) => (isCondensing(messages) ? condensedReply(messages) : undefined),
    streamedReply: (messages) => (messages.at(-1)?.content === LONG_QUESTION ? { head: LONG_HEAD, rest: longAnswerTail } : undefined),
  });
  inspect = new RedisSessionStore({ url: redisUrl, prefix });
  notices = new SessionNotices({ url: redisUrl, prefix });
});

/** True once no agent participant is left in `room`. */
async function agentGone(room: string): Promise<boolean> {
  const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
  const list = await rooms.listRooms([room]);
  if (list.length === 0) return true;
  return !(await rooms.listParticipants(room)).some((p) => p.identity.startsWith('agent-'));
}

afterAll(async () => {
  finishLongAnswer(' And that was all.');
  for (const p of participants) await p.leave().catch(() => undefined);
  await Promise.all(workers.map((w) => w.stop()));
  await stub?.close();
  await inspect?.dispose();
  await notices?.close();
  const redis = new Redis(redisUrl);
  await unlinkPrefix(redis, new KeyBuilder(prefix).allKeysPattern());
  redis.disconnect();
});

describe('one worker, long rejoin window', () => {
  const agentName = uid('long');
  const rejoinTtlMs = 30_000;
  let metricsPort: number;

  let longWorker: WorkerProcess;

  beforeAll(async () => {
    metricsPort = await freeTcpPort();
    longWorker = await worker(agentName, { REJOIN_TTL_MS: String(rejoinTtlMs), METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1' });
  });

  it('greets a first visit as first-time', async () => {
    const p = await join({ identity: uid('alice'), room: uid('room'), agentName, rejoinTtlMs });
    const status = await p.statusMatching((m) => m.greeting !== undefined);
    expect(status).toMatchObject({ state: 'Connected', greeting: 'first_time', decision: { kind: 'fresh', why: 'new_identity' } });
    expect((await p.nthText(1)).text).toMatch(/glad you're here/i);
    await p.leave();
  });

  it('a rejoin within the rejoin TTL returns to the same job: one brief welcome back, history intact', async () => {
    const identity = uid('bob');
    const room = uid('room');
    const p1 = await join({ identity, room, agentName, rejoinTtlMs });
    const first = await p1.statusMatching((m) => m.greeting !== undefined);
    await converse(p1, 'My favourite colour is teal.');
    const agentIdentity = p1.agent()!.identity;
    await p1.leave(); // a refresh: CLIENT_INITIATED
    await waitFor('the agent to see the leave', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.disconnectedAt !== null;
    });

    const p2 = await join({ identity, room, agentName, rejoinTtlMs });
    const back = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(back).toMatchObject({ greeting: 'welcome_back_brief', sessionId: first.sessionId });
    expect(p2.agent()?.identity).toBe(agentIdentity); // same job
    const welcome = await p2.nthText(1);
    expect(welcome.text).toMatch(/welcome back/i);

    await converse(p2, 'What did I tell you?');
    const input = await modelInputFor('What did I tell you?');
    expect(input.map((m) => m.content)).toContain('My favourite colour is teal.');
    // Exactly one greeting for the one arrival.
    expect(p2.texts.filter((t) => /welcome back/i.test(t.text))).toHaveLength(1);
  });

  it('AlwaysFresh with forget (kiosk): the next visit is first-time and nothing of the first remains', async () => {
    const identity = uid('kiosk');
    const room1 = uid('room');
    const p1 = await join({ identity, room: room1, agentName, rejoinTtlMs, policy: 'AlwaysFresh' });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    await converse(p1, 'I am visitor one.');
    await p1.leave(); // kiosk logout; the job still holds the session for the rejoin window
    await waitFor('turns persisted', async () => (await inspect.readRecord({ agentName, identity })).status === 'found');
    await forgetIdentity(inspect, notices, identity);
    // The job that held it lets go at once and writes nothing back.
    await waitFor('the old job to let go', () => agentGone(room1));
    expect((await inspect.readRecord({ agentName, identity })).status).toBe('missing');
    expect(await inspect.readProfile({ agentName, identity })).toBeNull();

    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs, policy: 'AlwaysFresh' });
    const s = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'policy_fresh' }, restoredTurns: 0 });
    await converse(p2, 'Who was here before me?');
    const input = await modelInputFor('Who was here before me?');
    expect(input.map((m) => m.content)).not.toContain('I am visitor one.');
  });

  it('AlwaysFresh in the room (a kiosk\'s next visitor within the rejoin window): the same job starts a new conversation, greeted first-time, and the model has nothing of the last one, its context included', async () => {
    const identity = uid('kiosk-room');
    const room = uid('room');
    // The first visitor's token says Spanish; the next one's says no language.
    const p1 = await join({ identity, room, agentName, rejoinTtlMs, policy: 'AlwaysFresh', language: 'es-MX' });
    const first = await p1.statusMatching((m) => m.greeting === 'first_time');
    const pub = new RtcContextPublisher(p1.room);
    pub.context.setState('Visitor', 'number one');
    await waitFor('the context op acknowledged', () => pub.context.unackedRevisions().length === 0 && pub.replies.length > 0);
    await converse(p1, 'I am visitor one, account 4711.');
    expect((await modelInputFor('I am visitor one, account 4711.')).some((m) => m.role === 'system' && m.content.includes(languageInstruction('es-MX')))).toBe(true);
    const agentIdentity = p1.agent()!.identity;
    pub.close();
    await p1.leave(); // the visitor closes the tab
    await waitFor('the agent to see the leave', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.disconnectedAt !== null;
    });

    const p2 = await join({ identity, room, agentName, rejoinTtlMs, policy: 'AlwaysFresh' });
    const s = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'policy_fresh' } });
    expect(s.sessionId).not.toBe(first.sessionId);
    expect(p2.agent()?.identity).toBe(agentIdentity); // same job, same room
    expect((await p2.nthText(1)).text).toMatch(/glad you're here/i);
    await converse(p2, 'Who used this kiosk before me?');
    const said = (await modelInputFor('Who used this kiosk before me?')).map((m) => m.content).join('\n');
    expect(said).not.toContain('visitor one');
    expect(said).not.toContain('number one');
    // Nor its language: the model is not told to answer in the last visitor's Spanish.
    expect(said).not.toContain(languageInstruction('es-MX'));
    // The last visitor's conversation is archived, not lost; the stored one is the new one.
    await turnStored(agentName, identity, 'Who used this kiosk before me?');
    const stored = await inspect.readRecord({ agentName, identity });
    if (stored.status !== 'found') throw new Error(`the new conversation is not stored (${stored.status})`);
    expect(stored.record.history.turns.map((t) => t.text)).not.toContain('I am visitor one, account 4711.');
    const archive = await inspect.readArchive({ agentName, identity }, Date.now());
    expect(archive.find((a) => a.sessionId === first.sessionId)?.record?.history.turns.map((t) => t.text)).toContain('I am visitor one, account 4711.');
  });

  it('context set before the agent arrived is flushed as one Replace and reaches the model', async () => {
    const p = await join({ identity: uid('ctx'), room: uid('room'), agentName, rejoinTtlMs });
    const pub = new RtcContextPublisher(p.room);
    pub.context.setState('Station', 'Bay 3');
    pub.context.setState('HazardLevel', 'High');
    pub.context.addEvent('Operator bypassed interlock');
    pub.context.setState('Station', 'Bay 7');
    await waitFor('every context op acknowledged', () => pub.context.unackedRevisions().length === 0 && pub.replies.length > 0);
    await p.statusMatching((m) => m.greeting !== undefined);
    await converse(p, 'Where am I?');
    const input = await modelInputFor('Where am I?');
    const contextMessages = input.filter((m) => m.content.includes('Station is'));
    expect(contextMessages).toHaveLength(1); // one Replace, not a replay
    expect(contextMessages[0]!.content).toContain('Station is Bay 7\nHazardLevel is High\nOperator bypassed interlock');
    expect(input.some((m) => m.content.includes('Bay 3'))).toBe(false);
    pub.close();
  });

  it('context a backend sends through the server API once the agent is in the room, before the participant joins, reaches the model', async () => {
    const identity = uid('backend-ctx');
    const room = uid('room');
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    await rooms.createRoom({ name: room, emptyTimeout: 60, departureTimeout: 60 });
    expect(await ensureAgentDispatched(server, room, agentName, { identity })).toBe('dispatched');
    // Active, as when livekit-server sends the participant_joined webhook a backend resyncs on.
    await waitFor('the agent to be active in the empty room', async () =>
      (await rooms.listParticipants(room)).some((x) => x.identity.startsWith('agent-') && x.state === ParticipantInfo_State.ACTIVE),
    );
    // What a backend does on the agent's participant_joined webhook, with the project's backend
    // publisher over the real server API: its context as one sync, sent again until the agent has
    // it (livekit-server delivers nothing to a participant whose data channel is not up yet).
    const backend = new BackendContextPublisher({ roomService: rooms, roomName: room });
    backend.context.setState('Station', 'Bay 9');
    backend.context.addEvent('Shift started');
    const kept = () => longWorker.output().split('dynamic context packet kept until the conversation starts').length - 1;
    const keptBefore = kept();
    backend.start();
    try {
      await waitFor(
        'the agent to keep the backend\'s context until its participant comes',
        async () => {
          await backend.idle();
          if (kept() > keptBefore) return true;
          backend.resync();
          return false;
        },
        { intervalMs: 500 },
      );
    } finally {
      backend.close();
    }
    const p = await join({ identity, room, agentName, rejoinTtlMs });
    await p.statusMatching((m) => m.greeting !== undefined);
    await converse(p, 'Which station is this?');
    const said = (await modelInputFor('Which station is this?')).map((m) => m.content).join('\n');
    expect(said).toContain('Station is Bay 9\nShift started');
  });

  it('a second tab with the same identity takes over; the old job lets go (saying why, in the participant\'s language) and the new one has the history', async () => {
    const identity = uid('tabs');
    const tab1 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs, language: 'de-DE' });
    const s1 = await tab1.statusMatching((m) => m.greeting !== undefined);
    await converse(tab1, 'I am planning a trip to Lisbon.');
    const tab2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    const s2 = await tab2.statusMatching((m) => m.greeting !== undefined);
    expect(s2.sessionId).toBe(s1.sessionId);
    expect(s2.decision?.kind).toBe('resume');
    await tab1.textMatching(new RegExp(takenOverMessage('de-DE')));
    await waitFor('the old job to leave its room', () => tab1.agent() === undefined);
    await converse(tab2, 'Where am I going?');
    expect((await modelInputFor('Where am I going?')).map((m) => m.content)).toContain('I am planning a trip to Lisbon.');
    await turnStored(agentName, identity, 'Where am I going?');
  });

  it('a dispatch hint that does not come true is dropped unsaved, and the participant in the room is served', async () => {
    const named = uid('absent');
    const actual = uid('present');
    const room = uid('room');
    // No dispatch in this token: the only job is the one below, whose hint names someone else.
    const p = await TestParticipant.join(server, { identity: actual, room, rejoinTtlMs });
    participants.push(p);
    expect(await ensureAgentDispatched(server, room, agentName, { identity: named })).toBe('dispatched');
    const s = await p.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 30_000 });
    expect(s).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'new_identity' } });
    await converse(p, 'I am the one who is actually here.');
    await turnStored(agentName, actual, 'I am the one who is actually here.');
    // The speculative claim for the named identity saved nothing: no record, no profile, no visit.
    expect((await inspect.readRecord({ agentName, identity: named })).status).toBe('missing');
    expect(await inspect.readProfile({ agentName, identity: named })).toBeNull();
  });

  it('in a room where someone else already is (a colleague who stayed), the agent sent for a participant serves that participant, not whoever was there first', async () => {
    const colleague = uid('colleague');
    const customer = uid('customer');
    const room = uid('room');
    const k = await TestParticipant.join(server, { identity: colleague, room, rejoinTtlMs });
    participants.push(k);
    // The customer asks for the agent (the token service dispatches with a hint naming them) and joins once it is there.
    expect(await ensureAgentDispatched(server, room, agentName, { identity: customer })).toBe('dispatched');
    await waitFor('the agent to join the room', () => k.agent());
    const c = await join({ identity: customer, room, agentName, rejoinTtlMs });
    const s = await c.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 30_000 });
    expect(s).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'new_identity' } });
    await converse(c, 'I am the customer who asked for you.');
    await turnStored(agentName, customer, 'I am the customer who asked for you.');
    // The colleague was neither greeted nor given a session.
    expect(k.statuses).toEqual([]);
    expect((await inspect.readRecord({ agentName, identity: colleague })).status).toBe('missing');
  });

  it('asking for the agent again while it is on its way sends no second one; once it is there, none either', async () => {
    const identity = uid('twice');
    const room = uid('room');
    // No dispatch of this agent in the token: the room's only one is the one below.
    const p = await TestParticipant.join(server, { identity, room, rejoinTtlMs });
    participants.push(p);
    expect(await ensureAgentDispatched(server, room, agentName, { identity })).toBe('dispatched');
    // At once again (a second tab's request, an impatient client): on its way, or already there.
    expect(await ensureAgentDispatched(server, room, agentName, { identity })).toMatch(/^(pending|present)$/);
    expect(await p.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 30_000 })).toMatchObject({ greeting: 'first_time' });
    expect(await ensureAgentDispatched(server, room, agentName, { identity })).toBe('present');
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    expect((await rooms.listParticipants(room)).filter((x) => x.identity.startsWith('agent-'))).toHaveLength(1);
    expect(p.statuses.filter((m) => m.greeting !== undefined)).toHaveLength(1);
  });

  it('a dispatch hint naming someone in a live conversation elsewhere takes nothing from it', async () => {
    const busy = uid('busy');
    const p1 = await join({ identity: busy, room: uid('room'), agentName, rejoinTtlMs });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    await converse(p1, 'I am talking in the first room.');
    const before = await inspect.readRecord({ agentName, identity: busy });
    const owner = before.status === 'found' ? before.record.owner : undefined;
    expect(owner?.ownerId).toBeTruthy();
    // A second room, with someone else in it, whose job's hint names the participant of the first.
    const room = uid('room');
    const p2 = await TestParticipant.join(server, { identity: uid('other'), room, rejoinTtlMs });
    participants.push(p2);
    expect(await ensureAgentDispatched(server, room, agentName, { identity: busy })).toBe('dispatched');
    expect(await p2.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 30_000 })).toMatchObject({ greeting: 'first_time' });
    // The first conversation still holds its session: same lease, its next turn lands, and it
    // is never told it was continued elsewhere.
    const during = await inspect.readRecord({ agentName, identity: busy });
    expect(during.status === 'found' && during.record.owner).toMatchObject({ ownerId: owner?.ownerId, fence: owner?.fence });
    await converse(p1, 'Are you still with me?');
    await turnStored(agentName, busy, 'Are you still with me?');
    expect(p1.statuses.filter((m) => m.error !== undefined)).toEqual([]);
    expect(p1.agent()).toBeDefined();
  });

  it('exports Prometheus counts that add up across job processes', async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const firstTime = (text: string) => Number(/pva_sessions_started_total\{greeting="first_time"\} (\d+)/.exec(text)?.[1] ?? '0');
    const before = firstTime(await scrape());
    const [a, b] = await Promise.all([
      join({ identity: uid('m1'), room: uid('room'), agentName, rejoinTtlMs }),
      join({ identity: uid('m2'), room: uid('room'), agentName, rejoinTtlMs }),
    ]);
    await Promise.all([a.statusMatching((m) => m.greeting === 'first_time'), b.statusMatching((m) => m.greeting === 'first_time')]);
    await waitFor('both jobs counted', async () => firstTime(await scrape()) === before + 2);
    const text = await scrape();
    expect(text).toMatch(/pva_resume_decisions_total\{kind="fresh",why="new_identity"\} \d+/);
    expect(text).toMatch(/# TYPE pva_store_latency_seconds histogram/);
  });
});

describe('one worker, no rejoin window', () => {
  const agentName = uid('norejoin');

  beforeAll(async () => {
    await worker(agentName, { REJOIN_TTL_MS: '0' });
  });

  it('a participant who leaves while the answer is still coming keeps what was said of it: saved as an interrupted turn before the conversation is put away', async () => {
    const identity = uid('leaver');
    const p = await join({ identity, room: uid('room'), agentName, rejoinTtlMs: 20_000 });
    await p.statusMatching((m) => m.greeting !== undefined);
    await p.nthText(1);
    const begun = p.textStreamsOpened;
    await p.say(LONG_QUESTION);
    await waitFor('the answer to begin', () => p.textStreamsOpened > begun);
    await p.leave();
    const record = await waitFor('the conversation put away', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.state === 'Disconnected' ? r.record : undefined;
    });
    const turns = record.history.turns.map((t) => ({ role: t.role, text: t.text }));
    expect(turns).toContainEqual({ role: 'user', text: LONG_QUESTION });
    expect(turns.find((t) => t.role === 'assistant' && t.text.startsWith(LONG_HEAD))).toBeDefined();
  });
});

describe('one worker, short windows', () => {
  const agentName = uid('short');
  const rejoinTtlMs = 1_500;
  // Long enough for a return in a new job (a job process start included) on a machine short of
  // CPU: 6 s was once exceeded between the recorded leave and the new job's claim.
  const sessionTtlMs = 15_000;

  beforeAll(async () => {
    await worker(agentName, { REJOIN_TTL_MS: String(rejoinTtlMs), SESSION_TTL_MS: String(sessionTtlMs), HISTORY_CONDENSE_AT_CHARS: '2000' });
  });

  /** Waits until the job suspended the session (rejoin window over, room left). */
  const suspended = (identity: string) =>
    waitFor(
      'the session to be suspended',
      async () => {
        const r = await inspect.readRecord({ agentName, identity });
        return r.status === 'found' && r.record.state === 'Disconnected' && r.record.owner === null;
      },
      { timeoutMs: 30_000 },
    );

  it('a return after the room closed is resumed by a new job: returning greeting naming the topic, earlier turns and the dynamic context in the model input', async () => {
    const identity = uid('carol');
    const p1 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    const pub = new RtcContextPublisher(p1.room);
    pub.context.setState('Station', 'Bay 3');
    pub.context.addEvent('Operator bypassed interlock');
    pub.context.setState('Station', 'Bay 7');
    await waitFor('every context op acknowledged', () => pub.context.unackedRevisions().length === 0 && pub.replies.length > 0);
    await converse(p1, 'I need help with my tax return.');
    const firstJob = p1.agent()!.identity;
    pub.close();
    await p1.leave();
    await suspended(identity);

    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    const s = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' } });
    expect(s.restoredTurns).toBeGreaterThanOrEqual(2);
    expect(p2.agent()?.identity).not.toBe(firstJob);
    expect((await p2.nthText(1)).text).toContain('I need help with my tax return.');
    await converse(p2, 'Can we continue?');
    const input = (await modelInputFor('Can we continue?')).map((m) => m.content);
    expect(input).toContain('I need help with my tax return.');
    expect(input).toContain(stubReply('I need help with my tax return.'));
    // The new job was given the context the first one had, though nobody sent it again.
    const context = input.filter((c) => c.includes('Station is'));
    expect(context).toHaveLength(1);
    expect(context[0]).toContain('Station is Bay 7\nOperator bypassed interlock');
  });

  it('a participant whose token says Spanish is greeted in Spanish and the model is told; a return without it is greeted in Spanish too (remembered)', async () => {
    const identity = uid('lucia');
    const p1 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs, language: 'es-MX' });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    expect((await p1.nthText(1)).text).toBe(renderGreeting({ kind: 'first_time' }, null, 'es-MX'));
    await converse(p1, 'Necesito ayuda con mi factura.');
    const input = await modelInputFor('Necesito ayuda con mi factura.');
    expect(input.some((m) => m.role === 'system' && m.content.includes(languageInstruction('es-MX')))).toBe(true);
    await p1.leave();
    await suspended(identity);

    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    const s = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' } });
    expect((await p2.nthText(1)).text).toMatch(/^¡Hola de nuevo! Han? pasado .+ y esta es tu visita número 2\. La última vez hablamos de «Necesito ayuda con mi factura\.»\. ¿Seguimos\?$/);
  });

  it('a participant whose browser says English but who writes in French is answered in French after two messages, and greeted in French next time (learned from what they type)', async () => {
    const identity = uid('amelie');
    const toldFrench = (input: StubMessage[]) => input.some((m) => m.role === 'system' && m.content.includes(languageInstruction('fr')));
    const p1 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs, language: 'en-US' });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    expect((await p1.nthText(1)).text).toBe(renderGreeting({ kind: 'first_time' }, null, 'en-US'));
    const first = "Bonjour, je voudrais changer l'adresse de ma commande.";
    await converse(p1, first);
    // One message is not enough: a quoted phrase or a single line in another language changes nothing.
    expect(toldFrench(await modelInputFor(first))).toBe(false);
    const second = "C'est pour la livraison de demain, merci.";
    await converse(p1, second);
    // The second is answered with the model told French, and the participant's client is told.
    expect(toldFrench(await modelInputFor(second))).toBe(true);
    await p1.statusMatching((m) => m.language === 'fr' && m.languageHeard === true);
    await p1.leave();
    await suspended(identity);
    const r = await inspect.readRecord({ agentName, identity });
    expect(r.status === 'found' && { language: r.record.language, heard: r.record.languageHeard }).toEqual({ language: 'fr', heard: true });

    // Their browser still says English: what they wrote outranks it.
    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs, language: 'en-US' });
    await p2.statusMatching((m) => m.greeting === 'returning' && m.language === 'fr');
    expect((await p2.nthText(1)).text).toMatch(/^Bon retour ! Cela fait .+, et c'est votre 2e visite\. La dernière fois, nous avons parlé de « C'est pour la livraison de demain, merci\. »\. On continue \?$/);
  });

  it('a long conversation: the model condenses the summary of older turns; the model is given the summary and the recent turns, live and after a resume in a new job', async () => {
    const identity = uid('ivy');
    const p1 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    // Turns of about 200 characters: 50 are kept verbatim, each older one is a summary line.
    const long = (i: number) => `Turn ${i}: the router on the 5 GHz band drops every few minutes, and restarting it only helps for a while; the cable modem lights stay green the whole time and the laptop is close.`;
    let said = 0;
    while (!stub.requests.some(isCondensing)) {
      if (said === 60) throw new Error('the model was never asked to condense');
      await converse(p1, long(++said));
    }
    // The model was given the summary lines of the oldest turns, from the greeting on.
    const asked = stub.requests.find(isCondensing)!;
    expect(asked[1]?.content.split('\n')[1]).toBe(summaryLine({ id: 'first', role: 'user', text: long(1), createdAtMs: 0 }));
    await waitFor('the condensed summary to be stored', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.history.summary.startsWith(condensedReply(asked));
    });
    // The live conversation's model input is that window too: the summary (condensed) in place
    // of the oldest turns, not the whole call.
    await converse(p1, 'Still there?');
    const live = await modelInputFor('Still there?');
    expect(live.find((m) => m.role === 'system' && m.content.startsWith('Summary of the earlier part of this conversation:'))?.content).toContain(condensedReply(asked));
    expect(live.filter((m) => m.role === 'user' || m.role === 'assistant').length).toBeLessThanOrEqual(51);
    expect(live.map((m) => m.content)).not.toContain(long(1));
    expect(live.map((m) => m.content)).toContain(long(said));
    await p1.leave();
    await suspended(identity);

    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    const s = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' }, restoredTurns: 50 });
    await converse(p2, 'Where were we?');
    const input = await modelInputFor('Where were we?');
    const summary = input.find((m) => m.role === 'system' && m.content.startsWith('Summary of the earlier part of this conversation:'));
    expect(summary?.content).toContain(condensedReply(asked));
    expect(input).toContainEqual({ role: 'user', content: long(said) });
  });

  it('a return after the session TTL is known but fresh; AlwaysResume then fails clearly instead of starting over', async () => {
    const known = uid('dave');
    const strict = uid('erin');
    for (const identity of [known, strict]) {
      const p = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
      await p.statusMatching((m) => m.greeting === 'first_time');
      await converse(p, 'Remember me.');
      await p.leave();
    }
    for (const identity of [known, strict]) {
      await waitFor('the session to expire', async () => (await inspect.readRecord({ agentName, identity })).status === 'missing', {
        timeoutMs: sessionTtlMs + 30_000,
      });
    }

    const p = await join({ identity: known, room: uid('room'), agentName, rejoinTtlMs });
    const s = await p.statusMatching((m) => m.greeting !== undefined);
    expect(s).toMatchObject({ greeting: 'known_fresh', decision: { kind: 'fresh', why: 'expired' }, restoredTurns: 0 });
    expect((await p.nthText(1)).text).toMatch(/nice to see you again/i);

    const strictRoom = uid('room');
    const q = await join({ identity: strict, room: strictRoom, agentName, rejoinTtlMs, policy: 'AlwaysResume' });
    const err = await q.statusMatching((m) => m.error !== undefined);
    expect(err).toMatchObject({ state: 'Error', decision: { kind: 'reject', why: 'expired' }, error: { code: 'resume_failed' } });
    expect((await q.nthText(1)).text).toMatch(/expired and cannot be resumed/i);
    // Nothing was silently reset: no new conversation was created for the strict identity.
    expect((await inspect.readRecord({ agentName, identity: strict })).status).toBe('missing');
    // The agent leaves on purpose: by the time it is gone its liveness entry is too (not left to
    // lapse), so no replacement agent is sent to the participant to refuse them again.
    await waitFor('the refusing agent to leave', () => q.agent() === undefined);
    const redis = new Redis(redisUrl);
    try {
      const members = await redis.zrange(livenessKeys(prefix, agentName).beats, '0', '-1');
      expect(members.filter((m) => (JSON.parse(m) as string[])[0] === strictRoom)).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});

describe('one worker, idle calls', () => {
  const agentName = uid('idle');
  const rejoinTtlMs = 30_000;
  const checkInMs = 3_000;
  const hangUpMs = 3_000;

  beforeAll(async () => {
    await worker(agentName, { REJOIN_TTL_MS: String(rejoinTtlMs), IDLE_CHECK_IN_MS: String(checkInMs), IDLE_HANG_UP_MS: String(hangUpMs) });
  });

  it('a silent participant is asked once if they are still there; an answer keeps the call; silence after the next check-in ends it with a goodbye, the room is deleted, and the next call resumes the conversation', async () => {
    const identity = uid('ivan');
    const room = uid('room');
    const p1 = await join({ identity, room, agentName, rejoinTtlMs });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    await converse(p1, 'I am choosing between two laptops.');
    const replied = p1.texts.at(-1)!;
    const checkIn = await p1.textMatching(literally(idleCheckInText(null)), { from: p1.texts.length });
    // Not nagged early: the silence is counted from the agent's last words.
    expect(checkIn.atMs - replied.atMs).toBeGreaterThanOrEqual(checkInMs - 500);
    // Answering the check-in is activity: the call goes on.
    await converse(p1, 'Yes, still here.');
    const answeredAt = Date.now();
    const secondCheckIn = await p1.textMatching(literally(idleCheckInText(null)), { from: p1.texts.indexOf(checkIn) + 1 });
    const goodbye = await p1.textMatching(literally(idleGoodbyeText(null, true)), { from: p1.texts.indexOf(secondCheckIn) + 1 });
    expect(goodbye.atMs - secondCheckIn.atMs).toBeGreaterThanOrEqual(hangUpMs - 500);
    expect(goodbye.atMs - answeredAt).toBeGreaterThanOrEqual(checkInMs + hangUpMs - 500);
    // Between the answer and the goodbye the agent said nothing but the second check-in.
    expect(p1.texts.slice(p1.texts.indexOf(checkIn) + 1).map((t) => t.text)).toEqual([stubReply('Yes, still here.'), idleCheckInText(null), idleGoodbyeText(null, true)]);
    const ended = await p1.statusMatching((m) => m.ended !== undefined);
    expect(ended).toMatchObject({ state: 'Disconnected', ended: { reason: 'idle', message: idleGoodbyeText(null, true) } });
    await waitFor('the room to be deleted', () => p1.disconnectReason === DisconnectReason.ROOM_DELETED, { timeoutMs: 15_000 });
    await waitFor('the agent to leave', () => agentGone(room), { timeoutMs: 15_000 });
    const stored = await inspect.readRecord({ agentName, identity });
    expect(stored.status === 'found' && stored.record).toMatchObject({ state: 'Disconnected', owner: null, disconnectReason: 'idle' });

    // Calling again at once: a new call, greeted as a return, with the conversation restored.
    const p2 = await join({ identity, room: uid('room'), agentName, rejoinTtlMs });
    const back = await p2.statusMatching((m) => m.greeting !== undefined);
    expect(back).toMatchObject({ greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' } });
    await converse(p2, 'Which one did I like?');
    const input = (await modelInputFor('Which one did I like?')).map((m) => m.content);
    expect(input).toContain('I am choosing between two laptops.');
    await p2.leave();
  });
  it('with someone else in the room (a colleague, a supervisor), only the silent participant is removed: the others stay and the room is kept', async () => {
    const identity = uid('irene');
    const room = uid('room');
    const p1 = await join({ identity, room, agentName, rejoinTtlMs });
    await p1.statusMatching((m) => m.greeting === 'first_time');
    // A second person joins the same room without dispatching an agent (the agent serves p1).
    const colleague = await TestParticipant.join(server, { identity: uid('colleague'), room });
    participants.push(colleague);
    await waitFor('the colleague to see the agent', () => colleague.agent());
    const checkIn = await p1.textMatching(literally(idleCheckInText(null)));
    await p1.textMatching(literally(idleGoodbyeText(null, true)), { from: p1.texts.indexOf(checkIn) + 1 });
    await waitFor('the participant to be removed', () => p1.disconnectReason === DisconnectReason.PARTICIPANT_REMOVED, { timeoutMs: 15_000 });
    await waitFor('the agent to leave', () => agentGone(room), { timeoutMs: 15_000 });
    // The colleague is still connected, alone in the room, which still exists.
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    expect((await rooms.listParticipants(room)).map((p) => p.identity)).toEqual([colleague.identity]);
    expect(colleague.disconnectReason).toBeUndefined();
    expect(colleague.room.isConnected).toBe(true);
    const stored = await inspect.readRecord({ agentName, identity });
    expect(stored.status === 'found' && stored.record).toMatchObject({ state: 'Disconnected', owner: null, disconnectReason: 'idle' });
    await colleague.leave();
  });
});

describe('two workers', () => {
  const agentName = uid('pool');
  const rejoinTtlMs = 30_000;

  it('the worker holding the session is SIGKILLed; on rejoin the other worker resumes with every turn', async () => {
    const a = await worker(agentName, { REJOIN_TTL_MS: String(rejoinTtlMs) });
    const identity = uid('frank');
    const room = uid('room');
    const p1 = await join({ identity, room, agentName, rejoinTtlMs });
    const s1 = await p1.statusMatching((m) => m.greeting === 'first_time');
    await converse(p1, 'Turn one: the order number is 4417.');
    await converse(p1, 'Turn two: it arrived damaged.');
    await worker(agentName, { REJOIN_TTL_MS: String(rejoinTtlMs) }); // b, registered
    await a.kill(); // SIGKILL, the whole process group
    // The dead agent's connection is dropped by the server after its ping timeout (15 s).
    await waitFor('the dead job to leave the room', () => p1.agent() === undefined, { timeoutMs: 60_000 });
    await p1.leave();

    // The client rejoins its room (within the rejoin TTL) and, as seed 000 SpawnAgentOnRejoin
    // says, an agent is dispatched into it because none is there.
    const p2 = await join({ identity, room, agentName, rejoinTtlMs });
    expect(await ensureAgentDispatched(server, room, agentName, { identity })).toBe('dispatched');
    const s2 = await p2.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 60_000 });
    expect(s2).toMatchObject({ sessionId: s1.sessionId, decision: { kind: 'resume' } });
    expect(s2.restoredTurns).toBeGreaterThanOrEqual(5); // greeting + 2 × (user, assistant)
    await converse(p2, 'What was wrong with it?');
    const input = (await modelInputFor('What was wrong with it?')).map((m) => m.content);
    expect(input).toEqual(
      expect.arrayContaining([
        'Turn one: the order number is 4417.',
        stubReply('Turn one: the order number is 4417.'),
        'Turn two: it arrived damaged.',
        stubReply('Turn two: it arrived damaged.'),
      ]),
    );
  });

  it('a worker stopped for a deploy (SIGTERM, production mode) finishes its conversation and takes no new one, then exits; the session resumes in the other worker', async () => {
    const name = uid('deploy');
    const shortTtlMs = 1_500;
    const env = { REJOIN_TTL_MS: String(shortTtlMs), WORKER_IDLE_PROCESSES: '1' };
    const a = await worker(name, env, 'start');
    const identity = uid('gina');
    const p1 = await join({ identity, room: uid('room'), agentName: name, rejoinTtlMs: shortTtlMs });
    const s1 = await p1.statusMatching((m) => m.greeting === 'first_time');
    await converse(p1, 'Before the deploy: my router is model AX55.');
    const b = await worker(name, env, 'start');

    a.terminate();
    await a.waitForOutput(/draining worker/);
    // The conversation in progress goes on in the draining worker.
    await converse(p1, 'During the deploy: it drops every few minutes.');
    // A new arrival is served by the other worker only.
    const newcomerRoom = uid('room');
    const newcomer = await join({ identity: uid('hal'), room: newcomerRoom, agentName: name, rejoinTtlMs: shortTtlMs });
    await newcomer.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    expect(b.output()).toContain(newcomerRoom);
    expect(a.output()).not.toContain(newcomerRoom);

    // The participant leaves (closes the tab): the job ends and the draining worker exits.
    await p1.leave();
    expect(await waitFor('the draining worker to exit', () => a.process.exitCode ?? undefined, { timeoutMs: 60_000 })).toBe(143);
    await turnStored(name, identity, 'During the deploy: it drops every few minutes.');

    // A return after the rejoin window (a quicker one would be welcomed back briefly instead),
    // counted from the disconnect the agent recorded: with a window this short the room can
    // close (and end the job) before the participant's leave reaches the agent, which then
    // records the disconnect when its job ends, up to a second or two after the leave.
    const disconnectedAtMs = await waitFor('the conversation to be suspended', async () => {
      const r = await inspect.readRecord({ agentName: name, identity });
      return r.status === 'found' && r.record.state === 'Disconnected' ? (r.record.disconnectedAt ?? undefined) : undefined;
    });
    await waitFor('the rejoin window to pass', () => Date.now() - disconnectedAtMs > shortTtlMs + 200);
    const p2 = await join({ identity, room: uid('room'), agentName: name, rejoinTtlMs: shortTtlMs });
    const s2 = await p2.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 60_000 });
    expect(s2).toMatchObject({ sessionId: s1.sessionId, greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' } });
    await converse(p2, 'Is it fixed now?');
    const input = (await modelInputFor('Is it fixed now?')).map((m) => m.content);
    expect(input).toEqual(expect.arrayContaining(['Before the deploy: my router is model AX55.', 'During the deploy: it drops every few minutes.']));
  });
});
