/**
 * Agent liveness beats (`lib/store/agent_liveness.ts`) on a real Redis: the shared test Redis, and
 * a private redis-server stopped with SIGSTOP for the "out of reach for everyone" case.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RecordingLogger } from '../../../lib/logger.js';
import { AgentLiveness, livenessKeys, type LapsedAgent } from '../../../lib/store/agent_liveness.js';
import { randomPrefix, testRedisUrl } from '../../support/env.js';
import { TcpRelay } from '../../support/tcp_relay.js';
import { waitFor } from '../../support/wait.js';
import { PrivateRedis, freePort } from './private_redis.js';
import { connectTestRedis, unlinkPrefix } from './redis_support.js';

const TTL_MS = 400;
const CONFIRM_MS = 300;

describe('AgentLiveness on Redis', () => {
  const prefix = randomPrefix('live');
  let redis: Redis;
  const open: AgentLiveness[] = [];
  const liveness = () => {
    const l = new AgentLiveness({ client: redis, prefix });
    open.push(l);
    return l;
  };

  beforeAll(async () => {
    redis = await connectTestRedis();
  });
  afterAll(async () => {
    for (const l of open) await l.close();
    await unlinkPrefix(redis, `${prefix}*`);
    redis.disconnect();
  });

  it('an agent that beats is never reported; once its beats stop it is reported once, to one of two service processes, room and identity intact', async () => {
    const agentName = `a}:{b-${Math.random()}`;
    const room = `room \u{1F3A4} a}:{b *${'x'.repeat(10_000)}`;
    const identity = 'agent-\u0000-AJ_1';
    const job = liveness();
    const [serviceA, serviceB] = [liveness(), liveness()];
    const reported: LapsedAgent[] = [];
    const reapBoth = async () => {
      for (const found of await Promise.all([serviceA.reap(agentName, CONFIRM_MS), serviceB.reap(agentName, CONFIRM_MS)])) reported.push(...found);
      return reported.length > 0;
    };

    const alive = job.keepAlive(agentName, room, identity, TTL_MS);
    // Alive for more than TTL + confirmation, reaped all along: never reported.
    const until = Date.now() + 3 * (TTL_MS + CONFIRM_MS);
    await waitFor('the beats to hold past three lapse times', async () => (await reapBoth()) || Date.now() > until, { timeoutMs: 10_000 });
    expect(reported).toEqual([]);

    await alive.stop({ lapse: true }); // the job died: beats stop, the entry stays
    await waitFor('the lapsed agent to be reported', reapBoth, { timeoutMs: 10_000 });
    expect(reported).toEqual([{ room, identity }]);
    // Taken: no other reap reports it again (within the look-again time, 15 s by default).
    expect([...(await serviceA.reap(agentName, 0)), ...(await serviceB.reap(agentName, 0))]).toEqual([]);
    // Dealt with (removed from its room), the taker takes it off the list: nothing is left.
    await serviceA.leave(agentName, room, identity);
    const { beats, suspects } = livenessKeys(prefix, agentName);
    expect(await redis.zcard(beats)).toBe(0);
    expect(await redis.hlen(suspects)).toBe(0);
  });

  it('a taken agent left on the list (it said it was alive, or its taker died on the way) is taken again after the look-again time, by any reaper; one taken off is not', async () => {
    const agentName = `again-${Math.random()}`;
    const LOOK_AGAIN_MS = 500;
    const job = liveness();
    const [serviceA, serviceB] = [liveness(), liveness()];
    const takes: Array<{ by: 'A' | 'B'; agent: LapsedAgent; atMs: number }> = [];
    const reapBoth = async () => {
      const [a, b] = await Promise.all([serviceA.reap(agentName, CONFIRM_MS, LOOK_AGAIN_MS), serviceB.reap(agentName, CONFIRM_MS, LOOK_AGAIN_MS)]);
      for (const agent of a) takes.push({ by: 'A', agent, atMs: Date.now() });
      for (const agent of b) takes.push({ by: 'B', agent, atMs: Date.now() });
    };
    await job.beat(agentName, 'r', 'agent-kept', TTL_MS);
    await job.beat(agentName, 'r', 'agent-dealt', TTL_MS);
    await waitFor('both to be taken', async () => (await reapBoth(), takes.length >= 2), { timeoutMs: 10_000 });
    expect(takes.map((t) => t.agent.identity).sort()).toEqual(['agent-dealt', 'agent-kept']);
    await (takes[0]!.by === 'A' ? serviceA : serviceB).leave(agentName, 'r', 'agent-dealt'); // dealt with: off the list
    const firstTakeMs = takes[0]!.atMs;
    // agent-kept's taker leaves it there: taken again, once, no sooner than look-again + confirm.
    await waitFor('agent-kept to be taken again', async () => (await reapBoth(), takes.length >= 3), { timeoutMs: 10_000 });
    expect(takes[2]!.agent).toEqual({ room: 'r', identity: 'agent-kept' });
    expect(takes[2]!.atMs - firstTakeMs).toBeGreaterThanOrEqual(LOOK_AGAIN_MS + CONFIRM_MS - 50); // Redis's clock vs this one: a little slack
    // Beating again (its Redis back), it is not taken again.
    await job.beat(agentName, 'r', 'agent-kept', 60_000);
    const until = Date.now() + 2 * (LOOK_AGAIN_MS + CONFIRM_MS);
    await waitFor('two look-again times', async () => (await reapBoth(), Date.now() > until), { timeoutMs: 10_000 });
    expect(takes.map((t) => t.agent.identity)).toEqual([expect.any(String), expect.any(String), 'agent-kept']);
    expect(takes.filter((t) => t.agent.identity === 'agent-dealt')).toHaveLength(1);
  });

  it('a lapsed agent is only suspected: one that beats again within the confirmation time (its Redis was out of reach, its process stalled) is not reported', async () => {
    const agentName = `suspect-${Math.random()}`;
    const [job, service] = [liveness(), liveness()];
    const member = JSON.stringify(['r', 'agent-1']);
    const { beats, suspects } = livenessKeys(prefix, agentName);
    const redisNowMs = async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    await job.beat(agentName, 'r', 'agent-1', TTL_MS);
    await waitFor('the beat to lapse', async () => Number(await redis.zscore(beats, member)) <= (await redisNowMs()));
    expect(await service.reap(agentName, CONFIRM_MS)).toEqual([]); // suspected
    expect(await redis.hexists(suspects, member)).toBe(1);
    await job.beat(agentName, 'r', 'agent-1', 60_000); // back
    expect(await redis.hexists(suspects, member)).toBe(0);
    const until = (await redisNowMs()) + 2 * CONFIRM_MS;
    const reported: LapsedAgent[] = [];
    await waitFor('two confirmation times', async () => {
      reported.push(...(await service.reap(agentName, CONFIRM_MS)));
      return (await redisNowMs()) > until;
    });
    expect(reported).toEqual([]);
    expect(await redis.zscore(beats, member)).not.toBeNull();
  });

  it('an agent that stops on purpose is taken off the list at once: never reported', async () => {
    const agentName = `named-${Math.random()}`;
    const job = liveness();
    const alive = job.keepAlive(agentName, 'r', 'agent-1', TTL_MS);
    const { beats } = livenessKeys(prefix, agentName);
    await waitFor('the first beat', async () => (await redis.zscore(beats, JSON.stringify(['r', 'agent-1']))) !== null);
    await alive.stop();
    expect(await redis.zscore(beats, JSON.stringify(['r', 'agent-1']))).toBeNull();
    expect(await liveness().reap(agentName, 0)).toEqual([]);
  });

  it('keys: one hash tag per agent name, and no agent name, room or identity in any key name', () => {
    const { beats, suspects } = livenessKeys('pva:', 'helper');
    const tag = (k: string) => k.slice(k.indexOf('{'), k.indexOf('}') + 1);
    expect(tag(beats)).toBe(tag(suspects));
    expect(tag(beats)).toMatch(/^\{l\.[A-Za-z0-9_-]{22}\}$/);
    expect(beats + suspects).not.toContain('helper');
    expect(livenessKeys('pva:', 'helper2').beats).not.toBe(beats);
    expect(() => new AgentLiveness({ client: redis, prefix: 'a{b' })).toThrow(/prefix/);
  });

  it('bad beat TTLs and look-again times are refused and change nothing', async () => {
    const agentName = `bad-${Math.random()}`;
    for (const ttl of [0, -1, 1.5, Number.NaN]) await expect(liveness().beat(agentName, 'r', 'a', ttl)).rejects.toThrow(/ttlMs/);
    expect(await redis.exists(livenessKeys(prefix, agentName).beats)).toBe(0);
    await liveness().beat(agentName, 'r', 'a', 1);
    await waitFor('the beat to lapse', async () => (await liveness().reap(agentName, 60_000)).length === 0 && (await redis.hlen(livenessKeys(prefix, agentName).suspects)) === 1);
    const before = await redis.zscore(livenessKeys(prefix, agentName).beats, JSON.stringify(['r', 'a']));
    for (const again of [0, -1, 1.5, Number.NaN]) await expect(liveness().reap(agentName, 0, again)).rejects.toThrow(/lookAgainMs/);
    expect(await redis.zscore(livenessKeys(prefix, agentName).beats, JSON.stringify(['r', 'a']))).toBe(before);
    expect(await redis.hlen(livenessKeys(prefix, agentName).suspects)).toBe(1);
  });
});

describe('AgentLiveness: a job that leaves on purpose while its connection drops', () => {
  let redis: Redis;
  let prefix: string;
  let relay: TcpRelay;
  let log: RecordingLogger;
  let job: AgentLiveness; // reaches Redis through the relay
  let beats: string;
  beforeEach(async () => {
    redis = await connectTestRedis();
    prefix = randomPrefix('leave');
    const front = await TcpRelay.inFrontOf(testRedisUrl());
    relay = front.relay;
    log = new RecordingLogger();
    job = new AgentLiveness({ target: { url: front.url }, prefix, logger: log });
    beats = livenessKeys(prefix, 'helper').beats;
  });
  afterEach(async () => {
    await relay.close();
    await job.close();
    await unlinkPrefix(redis, `${prefix}*`);
    redis.disconnect();
  });
  const beating = async (ttlMs: number) => {
    const alive = job.keepAlive('helper', 'room-1', 'agent-1', ttlMs);
    await waitFor('the first beat', async () => (await redis.zcard(beats)) === 1);
    return alive;
  };

  it('takes its entry off the list once the connection is back, so no reaper takes it for a crashed agent', async () => {
    const ttlMs = 2_000; // tries a beat (500 ms) apart
    const alive = await beating(ttlMs);
    // The leave is sent into a cut connection, which is then dropped: it never reaches Redis.
    relay.cut();
    const stopped = alive.stop();
    await waitFor('the first leave to fail', () => log.lines.some((l) => l.msg === 'agent liveness entry not removed: trying again'));
    relay.reset();
    relay.heal();
    await stopped;

    expect(await redis.zcard(beats)).toBe(0);
    expect(log.lines.filter((l) => l.msg === 'agent liveness entry removed')).toHaveLength(1);
    expect(log.lines.some((l) => l.msg === 'agent liveness entry not removed')).toBe(false);
    // Past the beat's lifetime and the confirmation: nobody is reported.
    const service = new AgentLiveness({ client: redis, prefix });
    const until = Date.now() + ttlMs + CONFIRM_MS;
    const reported: LapsedAgent[] = [];
    await waitFor('a lapse time to pass', async () => {
      reported.push(...(await service.reap('helper', CONFIRM_MS)));
      return Date.now() > until;
    });
    expect(reported).toEqual([]);
  });

  it('tries three times, a beat apart, then leaves the entry to lapse (a reaper then finds the agent gone from its room)', async () => {
    const alive = await beating(TTL_MS);
    relay.cut();
    await alive.stop();
    expect(log.lines.map((l) => l.msg).filter((m) => m.startsWith('agent liveness entry'))).toEqual([
      'agent liveness entry not removed: trying again',
      'agent liveness entry not removed: trying again',
      'agent liveness entry not removed',
    ]);
    relay.reset(); // the held leaves are lost
    expect(await redis.zcard(beats)).toBe(1);
  });
});

describe('AgentLiveness with Redis paused', () => {
  let server: PrivateRedis;
  beforeAll(async () => {
    server = new PrivateRedis(await freePort());
    await server.start();
  });
  afterAll(async () => {
    await server?.kill();
  });

  it('paused (SIGSTOP) for three beat lifetimes: when it answers again, the live agent is not reported, the dead one is', async () => {
    const target = { url: server.url };
    const log = new RecordingLogger();
    const job = new AgentLiveness({ target, logger: log });
    const service = new AgentLiveness({ target });
    const deadJob = new AgentLiveness({ target });
    try {
      const told: boolean[] = []; // what the job would put on its participant (pva.agent_alive)
      const alive = job.keepAlive('helper', 'room-live', 'agent-live', TTL_MS, (failing) => told.push(failing));
      const dead = deadJob.keepAlive('helper', 'room-dead', 'agent-dead', TTL_MS);
      await Promise.all([job.beat('helper', 'room-live', 'agent-live', TTL_MS), deadJob.beat('helper', 'room-dead', 'agent-dead', TTL_MS)]);
      await dead.stop({ lapse: true });

      // Out of reach for three beat lifetimes: every beat of the live job fails meanwhile.
      server.freeze(true);
      const frozenUntil = Date.now() + 3 * TTL_MS;
      await waitFor('the outage to last', () => Date.now() > frozenUntil, { timeoutMs: 10_000 });
      await waitFor('the live job to log its failing beats', () => log.lines.some((l) => l.msg.startsWith('agent liveness beat failed')));
      server.freeze(false);

      const reported: LapsedAgent[] = [];
      await waitFor('the dead agent to be reported', async () => {
        reported.push(...(await service.reap('helper', CONFIRM_MS).catch(() => [])));
        return reported.length > 0;
      });
      // Reaped on for one more confirmation time: the live one, suspected at first, beat again.
      const until = Date.now() + 2 * CONFIRM_MS;
      await waitFor('one more confirmation time', async () => {
        reported.push(...(await service.reap('helper', CONFIRM_MS)));
        return Date.now() > until;
      });
      expect(reported).toEqual([{ room: 'room-dead', identity: 'agent-dead' }]);
      await waitFor('the live job to say its beats are written again', () => log.lines.some((l) => l.msg === 'agent liveness beats written again'));
      // Told it was failing at each failed beat, then once that it is not any more.
      expect(told.length).toBeGreaterThanOrEqual(2);
      expect(told.at(-1)).toBe(false);
      expect(told.slice(0, -1).every((f) => f)).toBe(true);
      await alive.stop();
    } finally {
      server.freeze(false);
      await Promise.all([job.close(), service.close(), deadJob.close()]);
    }
  });
});
