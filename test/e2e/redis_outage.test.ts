/**
 * The worker with its Redis down: a participant is still greeted (the greeting path is bounded),
 * the worker says it is degraded, the conversation goes on from memory, and once Redis is back
 * everything said meanwhile is written to it. A private redis-server is SIGKILLed and restarted
 * (empty: it keeps nothing on disk) in the middle of the test.
 */
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { PrivateRedis, freePort } from '../lib/store/private_redis.js';
import { TestParticipant, type ServerInfo } from '../support/participant.js';
import { TcpRelay } from '../support/tcp_relay.js';
import { waitFor } from '../support/wait.js';
import { livekitEnv, startWorker, type WorkerProcess } from '../support/worker.js';

const server: ServerInfo = { url: inject('livekitUrl'), apiKey: inject('livekitApiKey'), apiSecret: inject('livekitApiSecret') };
const run = Math.random().toString(36).slice(2, 8);
const agentName = `outage-${run}`;
const prefix = `pva-outage-${run}:`;
let redis: PrivateRedis;
let worker: WorkerProcess;
let inspect: RedisSessionStore | undefined;
const participants: TestParticipant[] = [];
const relays: TcpRelay[] = [];
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = new PrivateRedis(await freePort());
  await redis.start();
  worker = await startWorker({
    env: {
      ...livekitEnv(server, agentName),
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      STORE_GREETING_BOUND_MS: '500', // the default: this test is about greeting without Redis
    },
  });
});

afterAll(async () => {
  for (const p of participants) await p.leave().catch(() => undefined);
  await worker?.stop();
  await Promise.all(workers.map((w) => w.stop()));
  for (const r of relays) await r.close();
  await inspect?.dispose();
  await redis?.kill();
});

it('greets with Redis down, reports degraded, and writes everything to Redis once it is back', async () => {
  await redis.kill();
  const identity = `ivy-${run}`;
  const p = await TestParticipant.join(server, { identity, room: `room-${run}`, agentName, rejoinTtlMs: 60_000 });
  participants.push(p);

  const status = await p.statusMatching((m) => m.greeting !== undefined);
  // Nothing could be looked up: a plain first-time greeting, and the session says it is degraded.
  expect(status).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'store_unavailable' }, degraded: true });
  expect((await p.nthText(1)).text).toMatch(/glad you're here/i);
  await worker.waitForOutput(/session store degraded: working from memory/);

  // The conversation goes on from memory.
  await p.say('Please note my seat is 14C.');
  await p.textMatching(/14C/, { from: 1 });

  await redis.start(); // back, and empty
  inspect = new RedisSessionStore({ url: redis.url, prefix });
  const rec = await waitFor(
    'the session to be replayed into Redis',
    async () => {
      const r = await inspect!.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.history.turns.some((t) => t.text === 'Please note my seat is 14C.') ? r.record : undefined;
    },
    { timeoutMs: 30_000 },
  );
  expect(rec.history.turns.map((t) => t.role)).toEqual(['assistant', 'user', 'assistant']);
  await worker.waitForOutput(/session store recovered/);
});

it('greets within the bound when Redis stops answering without closing anything (a partition): no wait on its notices either', async () => {
  const { relay, url } = await TcpRelay.inFrontOf(redis.url);
  relays.push(relay);
  const partitioned = `${agentName}-cut`;
  const w = await startWorker({ env: { ...livekitEnv(server, partitioned), REDIS_URL: url, REDIS_KEY_PREFIX: prefix, STORE_GREETING_BOUND_MS: '500' } });
  workers.push(w);
  // The worker's connections are open; from now on nothing they send is answered, nothing is closed.
  relay.cut();
  const p = await TestParticipant.join(server, { identity: `zoe-${run}`, room: `room-cut-${run}`, agentName: partitioned, rejoinTtlMs: 60_000 });
  participants.push(p);
  const status = await p.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 20_000 });
  expect(status).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'store_unavailable' }, degraded: true });
  expect((await p.nthText(1)).text).toMatch(/glad you're here/i);
  relay.heal();
});
