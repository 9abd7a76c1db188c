/**
 * LiveKit webhooks replace a missing agent for any client (`web/server/agent_webhooks.ts`): a
 * livekit-server of its own (its configuration names the token service's webhook URL), the token
 * service, real worker processes, and participants joined with @livekit/rtc-node, which, like
 * the Agents Playground, never ask for an agent themselves.
 */
import { Redis } from 'ioredis';
import { Room } from '@livekit/rtc-node';
import { AccessToken, AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import { ATTR_AGENT_ALIVE, ATTR_AGENT_LEFT, ATTR_AGENT_NAME } from '../../lib/attributes.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeDispatchHint } from '../../lib/dispatch_hint.js';
import { RecordingLogger } from '../../lib/logger.js';
import { takenOverMessage } from '../../lib/session/greeting.js';
import { livenessKeys } from '../../lib/store/agent_liveness.js';
import { KeyBuilder } from '../../lib/store/keys.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { ensureAgentDispatched, removeLapsedAgent } from '../../web/server/agent_dispatch.js';
import { JOIN_RECHECK_MS } from '../../web/server/agent_webhooks.js';
import { RedisDispatchGate } from '../../web/server/dispatch_gate.js';
import { startTokenService, type TokenService } from '../../web/server/service.js';
import { unlinkPrefix } from '../lib/store/redis_support.js';
import { startLiveKitServer, type LiveKitServer } from '../support/livekit_server.js';
import { startOpenAIStub, stubModelEnv, stubReply, type OpenAIStub } from '../support/openai_stub.js';
import { literally, TestParticipant, type ServerInfo } from '../support/participant.js';
import { freeTcpPort } from '../support/ports.js';
import { TcpRelay } from '../support/tcp_relay.js';
import { waitFor } from '../support/wait.js';
import { livekitEnv, startWorker, type WorkerProcess } from '../support/worker.js';

const redisUrl = inject('redisUrl');
const run = Math.random().toString(36).slice(2, 8);
const prefix = `pva-e2e-hook-${run}:`;
/** A name no other test of this run uses (a counter: four random characters alone collided once, and a reused room keeps its first agent dispatch). */
let uidSeq = 0;
const uid = (tag: string) => `${tag}-${run}-${(uidSeq += 1)}${Math.random().toString(36).slice(2, 5)}`;
const rejoinTtlMs = 30_000;

let livekit: LiveKitServer;
let server: ServerInfo;
let service: TokenService;
/** A second service on the same server's webhooks, for the agent of the idle test. */
let idleService: TokenService;
let stub: OpenAIStub;
let inspect: RedisSessionStore;
let redis: Redis;
const serviceLog = new RecordingLogger();
const idleServiceLog = new RecordingLogger();
const workers: WorkerProcess[] = [];
const participants: TestParticipant[] = [];

async function worker(agentName: string, extra: Record<string, string> = {}): Promise<WorkerProcess> {
  const w = await startWorker({
    env: { ...livekitEnv(server, agentName), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, ...stubModelEnv(stub), AGENT_IO: 'text', REJOIN_TTL_MS: String(rejoinTtlMs), ...extra },
  });
  workers.push(w);
  return w;
}

async function join(identity: string, room: string, agentName: string): Promise<TestParticipant> {
  const p = await TestParticipant.join(server, { identity, room, agentName, rejoinTtlMs });
  participants.push(p);
  return p;
}

async function converse(p: TestParticipant, text: string): Promise<void> {
  const from = p.texts.length;
  await p.say(text);
  await p.textMatching(literally(stubReply(text)), { from });
}

/** The service's log lines with message `msg` about `room`. */
function serviceSaid(msg: string, room: string, log = serviceLog): Array<Record<string, unknown>> {
  return log.lines.filter((l) => l.msg === msg && l.fields.room === room).map((l) => l.fields);
}

/** A service for agent `agentName` on the port the server sends its webhooks to. */
async function serviceFor(agentName: string, port: number, logger: RecordingLogger): Promise<TokenService> {
  return startTokenService({ livekitUrl: server.url, apiKey: server.apiKey, apiSecret: server.apiSecret, port, agentName, redisUrl, redisKeyPrefix: prefix, logger });
}

/** Waits for the job serving `room` as `identity` to be on `name`'s liveness list (its beats landing). */
async function beating(name: string, room: string, identity: string): Promise<void> {
  await waitFor('the job to beat in Redis', async () => (await redis.zscore(livenessKeys(prefix, name).beats, JSON.stringify([room, identity]))) ?? undefined);
}

/**
 * Waits for the service to log that the job serving `room` stopped beating; on a timeout the error
 * says why it did not: the service's log, the job's liveness lines, and the list against Redis's clock.
 */
async function lapseFound(room: string, name: string, job: WorkerProcess, log = serviceLog): Promise<Record<string, unknown>> {
  try {
    return await waitFor('the service to find the job\'s beats lapsed', () => serviceSaid('agent stopped beating', room, log)[0], { timeoutMs: 30_000 });
  } catch (err) {
    const { beats, suspects } = livenessKeys(prefix, name);
    const [[sec, usec], list, suspected] = await Promise.all([redis.time(), redis.zrange(beats, '0', '-1', 'WITHSCORES'), redis.hgetall(suspects)]);
    const jobLines = job.output().split('\n').filter((l) => /liveness|beat|Redis|redis|alive/.test(l));
    const serviceLines = log.lines.filter((l) => l.fields.room === room || l.level !== 'info').map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`);
    throw new Error(
      [`${(err as Error).message}`, `redis now: ${Number(sec) * 1000 + Math.floor(Number(usec) / 1000)}`, `beats: ${JSON.stringify(list)}`, `suspects: ${JSON.stringify(suspected)}`, 'service:', ...serviceLines, 'job:', ...jobLines.slice(-40)].join('\n'),
    );
  }
}

const agentName = uid('hooked');
const idleAgentName = uid('idle');

beforeAll(async () => {
  const [port, idlePort] = [await freeTcpPort(), await freeTcpPort()];
  livekit = await startLiveKitServer(inject('livekitServerBin'), { webhookUrls: [port, idlePort].map((p) => `http://127.0.0.1:${p}/livekit/webhook`) });
  server = { url: livekit.url, apiKey: livekit.apiKey, apiSecret: livekit.apiSecret };
  [stub, service, idleService] = await Promise.all([startOpenAIStub(), serviceFor(agentName, port, serviceLog), serviceFor(idleAgentName, idlePort, idleServiceLog)]);
  inspect = new RedisSessionStore({ url: redisUrl, prefix });
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  for (const p of participants) await p.leave().catch(() => undefined);
  await Promise.all(workers.map((w) => w.stop()));
  await service?.close();
  await idleService?.close();
  await stub?.close();
  await inspect?.dispose();
  await livekit?.stop();
  if (redis) {
    await unlinkPrefix(redis, new KeyBuilder(prefix).allKeysPattern());
    redis.disconnect();
  }
});

describe('LiveKit webhooks to the token service', () => {
  it('the worker serving a call is SIGKILLed: its job stopped beating, so the service removes the dead agent and another worker resumes the conversation in seconds, the participant doing nothing', async () => {
    const a = await worker(agentName);
    const identity = uid('olga');
    const room = uid('room');
    const p = await join(identity, room, agentName);
    const s1 = await p.statusMatching((m) => m.greeting === 'first_time');
    await converse(p, 'My ticket number is 5120.');
    const deadAgent = p.agent()?.identity;
    await worker(agentName); // b, registered and idle
    const statusesBefore = p.statuses.length;
    const killedAt = Date.now();
    await a.kill(); // SIGKILL, the whole process group

    const s2 = await p.statusMatching((m) => m.greeting !== undefined, { from: statusesBefore, timeoutMs: 60_000 });
    const backAfterMs = Date.now() - killedAt;
    expect(s2).toMatchObject({ sessionId: s1.sessionId, decision: { kind: 'resume' } });
    expect(s2.restoredTurns).toBeGreaterThanOrEqual(3);
    expect(p.disconnectReason).toBeUndefined();
    // The watch found it, not livekit-server's timeout: the dead agent was removed by the service,
    // and the one agent sent was sent for that.
    expect(serviceSaid('agent stopped beating', room)).toEqual([expect.objectContaining({ removed: 'removed' })]);
    expect(serviceSaid('agent dispatched to replace a missing one', room)).toEqual([expect.objectContaining({ why: 'agent_lapsed', result: 'dispatched' })]);
    // The room tells the page the dead agent left on its own schedule, which can be after the new one's greeting.
    await waitFor('the dead agent to be gone from the page\'s view of the room', () => ![...p.room.remoteParticipants.values()].some((x) => x.identity === deadAgent));
    expect(p.agent()?.identity).toBeDefined();
    expect(serviceLog.lines.find((l) => l.msg === 'token service listening')?.fields).toMatchObject({ livenessWatch: true });
    console.info(`liveness watch: SIGKILL -> greeted back in ${backAfterMs} ms`);
    await converse(p, 'Is it still open?');
    const input = stub.requests.find((msgs) => msgs.at(-1)?.content === 'Is it still open?')?.map((m) => m.content) ?? [];
    expect(input).toEqual(expect.arrayContaining(['My ticket number is 5120.', stubReply('My ticket number is 5120.')]));
    await p.leave();
  });

  it('with no liveness beats (AGENT_LIVENESS_TTL_MS=0), the SIGKILLed worker\'s agent is replaced once livekit-server drops it and its webhook arrives', async () => {
    // Only this worker serves the call (so the one killed is the one serving).
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    const a = await worker(agentName, { AGENT_LIVENESS_TTL_MS: '0' });
    const identity = uid('ines');
    const room = uid('room');
    const p = await join(identity, room, agentName);
    const s1 = await p.statusMatching((m) => m.greeting === 'first_time');
    await converse(p, 'My parcel number is 7781.');
    await worker(agentName); // b, registered and idle
    const statusesBefore = p.statuses.length;
    await a.kill(); // SIGKILL, the whole process group

    // The server drops the dead agent after its ping timeout, sends participant_left, and the
    // service dispatches a new agent for the participant still in the room.
    const s2 = await p.statusMatching((m) => m.greeting !== undefined, { from: statusesBefore, timeoutMs: 90_000 });
    expect(s2).toMatchObject({ sessionId: s1.sessionId, decision: { kind: 'resume' } });
    expect(s2.restoredTurns).toBeGreaterThanOrEqual(3); // greeting, the question, its answer
    expect(p.disconnectReason).toBeUndefined(); // never left the room
    expect(serviceSaid('agent dispatched to replace a missing one', room)).toEqual([expect.objectContaining({ why: 'agent_left', result: 'dispatched' })]);
    await converse(p, 'Where is it now?');
    const input = stub.requests.find((msgs) => msgs.at(-1)?.content === 'Where is it now?')?.map((m) => m.content) ?? [];
    expect(input).toEqual(expect.arrayContaining(['My parcel number is 7781.', stubReply('My parcel number is 7781.')]));
  });

  it('the job is cut off from Redis while the token service still reaches it: its beats stop, but it says it is alive, so it is neither removed nor replaced; the call goes on from memory, and once the link is back everything said meanwhile is in Redis', async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    const { relay, url: viaRelay } = await TcpRelay.inFrontOf(redisUrl);
    try {
      const a = await worker(agentName, { REDIS_URL: viaRelay });
      const identity = uid('pia');
      const room = uid('room');
      const p = await join(identity, room, agentName);
      await p.statusMatching((m) => m.greeting === 'first_time');
      await converse(p, 'My booking is 4471.');
      const serving = p.agent()!.identity;
      await beating(agentName, room, serving); // its beats were going, before they stop

      relay.cut(); // the job's link to Redis, only
      const lapse = await lapseFound(room, agentName, a);
      expect(lapse).toMatchObject({ removed: 'alive' }); // it told the service so on its participant:
      expect(Math.abs(Date.now() - Number(p.agent()?.attributes[ATTR_AGENT_ALIVE]))).toBeLessThan(15_000);
      // Still on the list (its job cannot write there now), to be looked at again.
      expect(await redis.zscore(livenessKeys(prefix, agentName).beats, JSON.stringify([room, serving]))).not.toBeNull();
      // Still cut off: the call goes on, with the same agent.
      await converse(p, 'Can I move it to Friday?');
      expect(p.agent()?.identity).toBe(serving);

      relay.heal();
      await waitFor('the agent to stop saying it is cut off', () => !p.agent()?.attributes[ATTR_AGENT_ALIVE], { timeoutMs: 15_000 });
      const rec = await waitFor(
        'what was said while cut off to be in Redis',
        async () => {
          const r = await inspect.readRecord({ agentName, identity });
          return r.status === 'found' && r.record.history.turns.some((t) => t.text === stubReply('Can I move it to Friday?')) ? r.record : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(rec.history.turns.map((t) => t.text)).toEqual(expect.arrayContaining(['My booking is 4471.', 'Can I move it to Friday?']));
      // One agent all along: never removed, never replaced, one greeting, no error.
      expect(serviceSaid('agent dispatched to replace a missing one', room)).toEqual([]);
      expect([...p.room.remoteParticipants.values()].filter((x) => x.identity.startsWith('agent-')).map((x) => x.identity)).toEqual([serving]);
      expect(p.statuses.filter((m) => m.greeting !== undefined)).toHaveLength(1);
      expect(p.statuses.filter((m) => m.error !== undefined)).toEqual([]);
      expect(p.disconnectReason).toBeUndefined();
      await converse(p, 'Thank you.');
      await p.leave();
    } finally {
      // Passed or not, no worker behind this relay is left for the next test.
      await relay.close();
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    }
  });

  it('no webhook: a job cut off from Redis is left serving and on the list; when it then dies, still cut off, it is looked at again and replaced from what Redis holds', async () => {
    const name = uid('cutoff');
    const svcLog = new RecordingLogger();
    const svc = await serviceFor(name, await freeTcpPort(), svcLog); // livekit-server sends it no webhook
    const { relay, url: viaRelay } = await TcpRelay.inFrontOf(redisUrl);
    try {
      const a = await worker(name, { REDIS_URL: viaRelay });
      const identity = uid('ruth');
      const room = uid('room');
      const p = await join(identity, room, name);
      const s1 = await p.statusMatching((m) => m.greeting === 'first_time');
      await converse(p, 'My order is 3302.');
      await worker(name); // b, on Redis directly, registered and idle
      await beating(name, room, p.agent()!.identity);
      relay.cut();
      await lapseFound(room, name, a, svcLog);
      expect(serviceSaid('agent stopped beating', room, svcLog)).toEqual([expect.objectContaining({ removed: 'alive' })]);
      const statusesBefore = p.statuses.length;
      const killedAt = Date.now();
      await a.kill(); // dies before it reaches Redis again

      const s2 = await p.statusMatching((m) => m.greeting !== undefined, { from: statusesBefore, timeoutMs: 60_000 });
      console.info(`agent cut off: SIGKILL while cut off -> greeted back in ${Date.now() - killedAt} ms`);
      expect(s2).toMatchObject({ sessionId: s1.sessionId, decision: { kind: 'resume' } });
      expect(serviceSaid('agent stopped beating', room, svcLog).map((f) => f.removed)).toEqual(['alive', expect.stringMatching(/^(removed|gone)$/)]);
      expect(serviceSaid('agent dispatched to replace a missing one', room, svcLog)).toEqual([expect.objectContaining({ why: 'agent_lapsed', result: 'dispatched' })]);
      await converse(p, 'Has it shipped?');
      const input = stub.requests.find((msgs) => msgs.at(-1)?.content === 'Has it shipped?')?.map((m) => m.content) ?? [];
      expect(input).toEqual(expect.arrayContaining(['My order is 3302.', stubReply('My order is 3302.')]));
      await p.leave();
    } finally {
      await relay.close();
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      await svc.close();
    }
  });

  it('an agent that leaves on purpose (its conversation taken over from another room) is not replaced, so the two rooms do not take the conversation back and forth', async () => {
    await worker(agentName);
    const identity = uid('jon');
    const roomA = uid('room');
    const roomB = uid('room');
    const first = await join(identity, roomA, agentName);
    await first.statusMatching((m) => m.greeting === 'first_time');
    const second = await join(identity, roomB, agentName);
    await second.statusMatching((m) => m.greeting !== undefined);
    await first.statusMatching((m) => m.error?.code === 'taken_over');

    // The participant in room A stays (a Playground tab left open); its agent left, marked.
    const left = await waitFor('the service to hear that room A\'s agent left', () => serviceSaid('agent left on purpose: not replaced', roomA)[0]);
    expect(left).toMatchObject({ reason: 'taken_over' });
    expect(first.disconnectReason).toBeUndefined();
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    expect((await rooms.listParticipants(roomA)).filter((x) => x.identity.startsWith('agent-'))).toEqual([]);
    expect(await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).listDispatch(roomA)).toHaveLength(1); // the token's own
    // Nor later, when the check for an agent that never arrived would have run (its agent came).
    await waitFor('the time of the join check to pass', () => Date.now() - first.joinedAtMs > JOIN_RECHECK_MS + 2_000, { timeoutMs: JOIN_RECHECK_MS + 10_000 });
    expect(serviceSaid('agent dispatched to replace a missing one', roomA)).toEqual([]);
    expect((await rooms.listParticipants(roomA)).filter((x) => x.identity.startsWith('agent-'))).toEqual([]);
    // Room B keeps the conversation.
    await converse(second, 'Still here in the new tab.');
    expect(second.statuses.some((m) => m.error?.code === 'taken_over')).toBe(false);
  });

  it('a second dispatch into a room our agent already serves (a job slower to join than the grace, two requests): the newcomer leaves without a word; one greeting, no takeover, and it is not replaced', async () => {
    await worker(agentName);
    const identity = uid('nora');
    const room = uid('room');
    const p = await join(identity, room, agentName);
    await p.statusMatching((m) => m.greeting === 'first_time');
    await converse(p, 'First question: is the shop open on Sunday?');
    const serving = p.agent()!.identity;
    await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).createDispatch(room, agentName, { metadata: encodeDispatchHint({ identity }) });
    const left = await waitFor('the second agent to leave', () => serviceSaid('agent left on purpose: not replaced', room)[0]);
    expect(left).toMatchObject({ reason: 'duplicate' });
    await converse(p, 'Second question: and on Monday?');
    expect(p.agent()?.identity).toBe(serving);
    expect(p.statuses.filter((m) => m.greeting !== undefined)).toHaveLength(1);
    expect(p.statuses.filter((m) => m.error !== undefined)).toEqual([]);
    expect(p.texts.map((t) => t.text)).not.toContain(takenOverMessage(null));
    expect(serviceSaid('agent dispatched to replace a missing one', room)).toEqual([]);
  });

  it('an idle hang-up with a colleague in the room: the agent leaves marked, and the colleague is not sent a new one', async () => {
    await worker(idleAgentName, { IDLE_CHECK_IN_MS: '3000', IDLE_HANG_UP_MS: '3000' });
    const room = uid('room');
    const p = await join(uid('mia'), room, idleAgentName);
    await p.statusMatching((m) => m.greeting === 'first_time');
    const colleague = await TestParticipant.join(server, { identity: uid('colleague'), room });
    participants.push(colleague);
    const colleagueJoinedAt = Date.now();
    await waitFor('the colleague to see the agent', () => colleague.agent());
    await p.statusMatching((m) => m.ended !== undefined);
    const left = await waitFor('the service to hear that the agent left', () => serviceSaid('agent left on purpose: not replaced', room, idleServiceLog)[0]);
    expect(left).toMatchObject({ reason: 'idle' });
    // Past the time of the check after the colleague joined: still no agent for them.
    await waitFor('the time of the join check to pass', () => Date.now() - colleagueJoinedAt > JOIN_RECHECK_MS + 2_000, { timeoutMs: JOIN_RECHECK_MS + 10_000 });
    expect(serviceSaid('agent dispatched to replace a missing one', room, idleServiceLog)).toEqual([]);
    expect(colleague.agent()).toBeUndefined();
    expect(colleague.room.isConnected).toBe(true);
  });

  it('no worker was registered when the room was created (its dispatch was dropped): once one is, an agent is sent and greets the participant', async () => {
    const lateName = uid('late');
    const port = await freeTcpPort();
    // A server whose webhooks go to a service of this agent name.
    const lk = await startLiveKitServer(inject('livekitServerBin'), { webhookUrls: [`http://127.0.0.1:${port}/livekit/webhook`] });
    const own: ServerInfo = { url: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret };
    const svc = await startTokenService({ livekitUrl: own.url, apiKey: own.apiKey, apiSecret: own.apiSecret, port, agentName: lateName, redisUrl, redisKeyPrefix: prefix, logger: serviceLog });
    try {
      const identity = uid('kai');
      const room = uid('room');
      const p = await TestParticipant.join(own, { identity, room, agentName: lateName, rejoinTtlMs });
      participants.push(p);
      await waitFor('livekit-server to drop the dispatch', () => lk.logs.join('').includes('not dispatching agent job since no worker is available') || undefined);
      const w = await startWorker({ env: { ...livekitEnv(own, lateName), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, ...stubModelEnv(stub), AGENT_IO: 'text' } });
      workers.push(w);
      const s = await p.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 60_000 });
      expect(s).toMatchObject({ greeting: 'first_time' });
      expect(serviceSaid('agent dispatched to replace a missing one', room)).toEqual([expect.objectContaining({ why: 'agent_missing', result: 'dispatched' })]);
      await converse(p, 'Hello at last.');
      expect(p.statuses.filter((m) => m.greeting !== undefined)).toHaveLength(1); // one agent, one greeting
    } finally {
      await svc.close();
      await lk.stop();
    }
  });

  it('two dispatch requests for one room at the same moment send one agent (the gate), not two; and a room that was never meant for our agent gets none', async () => {
    const room = uid('room');
    // A room with someone in it and no agent: its token asks for an agent no worker serves.
    await join(uid('lea'), room, uid('nobody'));
    const gate = new RedisDispatchGate(redis, prefix);
    const both = await Promise.all([ensureAgentDispatched(server, room, 'gated', undefined, { gate }), ensureAgentDispatched(server, room, 'gated', undefined, { gate })]);
    expect(both.sort()).toEqual(['dispatched', 'pending']);
    const dispatches = await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).listDispatch(room);
    expect(dispatches.filter((d) => d.agentName === 'gated')).toHaveLength(1);
    // The service's check after the join finds no agent in the room, but none of ours was ever
    // dispatched there: it sends none.
    const checked = await waitFor('the service to check the room', () => serviceSaid('no agent dispatched', room)[0], { timeoutMs: JOIN_RECHECK_MS + 20_000 });
    expect(checked).toMatchObject({ why: 'agent_missing', result: 'not_ours' });
    const after = await new AgentDispatchClient(server.url, server.apiKey, server.apiSecret).listDispatch(room);
    expect(after.filter((d) => d.agentName === agentName)).toEqual([]);
  });

  it('removing a lapsed agent on the server: a dead one is removed; one marked as leaving, one saying it is alive (cut off from Redis), another agent name\'s or one not there are left alone', async () => {
    const room = uid('room');
    const person = await join(uid('mia'), room, uid('nobody')); // creates the room
    const name = uid('lapsing');
    const rooms = new RoomServiceClient(server.url, server.apiKey, server.apiSecret);
    const joined: Room[] = [];
    // Agent participants as a job joins them (agent kind, the worker's agent name attribute).
    const asAgent = async (identity: string, attributes: Record<string, string> = {}) => {
      const at = new AccessToken(server.apiKey, server.apiSecret, { identity, attributes: { [ATTR_AGENT_NAME]: name, ...attributes } });
      at.kind = 'agent';
      at.addGrant({ roomJoin: true, room });
      const r = new Room();
      joined.push(r);
      await r.connect(server.url, await at.toJwt(), { autoSubscribe: false, dynacast: false });
      return r;
    };
    try {
      const dead = await asAgent('agent-dead');
      await asAgent('agent-stale', { [ATTR_AGENT_ALIVE]: String(Date.now() - 60_000) }); // said it long ago
      await asAgent('agent-leaving', { [ATTR_AGENT_LEFT]: 'ended' });
      await asAgent('agent-cut-off', { [ATTR_AGENT_ALIVE]: String(Date.now()) });
      expect(await removeLapsedAgent(server, room, 'agent-dead', name)).toBe('removed');
      expect(await removeLapsedAgent(server, room, 'agent-stale', name)).toBe('removed');
      expect(await removeLapsedAgent(server, room, 'agent-leaving', name)).toBe('left_on_purpose');
      expect(await removeLapsedAgent(server, room, 'agent-cut-off', name)).toBe('alive');
      expect(await removeLapsedAgent(server, room, 'agent-cut-off', 'another-agent')).toBe('gone');
      expect(await removeLapsedAgent(server, room, 'agent-dead', name)).toBe('gone'); // removed already
      expect(await removeLapsedAgent(server, uid('no-room'), 'agent-dead', name)).toBe('gone');
      await waitFor('the removed agent to be disconnected', () => !dead.isConnected);
      expect((await rooms.listParticipants(room)).map((x) => x.identity).sort()).toEqual([person.identity, 'agent-cut-off', 'agent-leaving'].sort());
    } finally {
      await Promise.all(joined.map((r) => r.disconnect().catch(() => undefined)));
    }
  });
});
