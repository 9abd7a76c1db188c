/**
 * The token service's webhook handling (`agent_webhooks.ts`), its dispatch gates
 * (`dispatch_gate.ts`) and its `POST /livekit/webhook` route. The dispatch into livekit-server is
 * recorded here; the e2e test `test/e2e/webhooks.test.ts` runs it against a real server.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { AccessToken, ParticipantInfo, Room, WebhookEvent } from 'livekit-server-sdk';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ATTR_AGENT_LEFT, ATTR_AGENT_NAME, ATTR_LANGUAGE, ATTR_RESUME_POLICY } from '../../lib/attributes.js';
import { RecordingLogger } from '../../lib/logger.js';
import { CUT_OFF_ALIVE_MS, PARTICIPANT_KIND, type DispatchFor } from '../../web/server/agent_dispatch.js';
import { AgentWebhooks, JOIN_RECHECK_MS, REMOVAL_ATTEMPTS, REMOVAL_TIMEOUT_MS, REPLACEMENT_WINDOW_MS, REPLACEMENTS_PER_ROOM, WEBHOOK_TICK_MS, type LivenessWatch, type RoomDispatch } from '../../web/server/agent_webhooks.js';
import { RedisRoomRechecks, recheckKey } from '../../web/server/room_rechecks.js';
import type { LapsedAgent } from '../../lib/store/agent_liveness.js';
import { GATE_HOLD_MS, MemoryDispatchGate, RedisDispatchGate, gateKey } from '../../web/server/dispatch_gate.js';
import { MemoryRateLimiter } from '../../web/server/rate_limiter.js';
import { MemorySeenEvents, RedisSeenEvents, SEEN_EVENT_MS, seenEventKey } from '../../web/server/seen_events.js';
import { startTokenService } from '../../web/server/service.js';
import { randomPrefix } from '../support/env.js';
import { waitFor } from '../support/wait.js';
import { connectTestRedis, unlinkPrefix } from '../lib/store/redis_support.js';

const AGENT = 'helper';

function person(identity: string, joinedAtMs: number, attributes: Record<string, string> = {}): ParticipantInfo {
  return new ParticipantInfo({ identity, name: identity.toUpperCase(), kind: PARTICIPANT_KIND.standard, joinedAtMs: BigInt(joinedAtMs), attributes });
}

function agent(attributes: Record<string, string>): ParticipantInfo {
  return new ParticipantInfo({ identity: 'agent-AJ_1', kind: PARTICIPANT_KIND.agent, attributes });
}

function event(name: 'participant_left' | 'participant_joined' | 'room_finished', room: string, participant?: ParticipantInfo): WebhookEvent {
  // The SDK's WebhookEvent resets `event` after its constructor: set the fields afterwards.
  const e = new WebhookEvent();
  e.event = name;
  e.room = new Room({ name: room });
  if (participant) e.participant = participant;
  return e;
}

/** A dispatch that answers `answer` and records whom each call chose among `people` (null: nobody). */
function recordingDispatch(people: ParticipantInfo[], answer: Awaited<ReturnType<RoomDispatch>> = 'dispatched') {
  const calls: Array<{ room: string; chose: string | null; hint: unknown; onlyWhereDispatched: boolean }> = [];
  const dispatch: RoomDispatch = async (room: string, forWhom: DispatchFor, onlyWhereDispatched: boolean) => {
    const hint = typeof forWhom === 'function' ? forWhom(people) : forWhom;
    calls.push({ room, chose: hint?.identity ?? null, hint, onlyWhereDispatched });
    return hint === null ? 'nobody' : answer;
  };
  return { calls, dispatch };
}

describe('AgentWebhooks', () => {
  let hooks: AgentWebhooks | undefined;
  afterEach(async () => {
    await hooks?.close();
    vi.useRealTimers();
  });

  function make(dispatch: RoomDispatch, limiter = new MemoryRateLimiter(REPLACEMENTS_PER_ROOM, REPLACEMENT_WINDOW_MS), log = new RecordingLogger()) {
    hooks = new AgentWebhooks({ agentName: AGENT, dispatch, limiter, logger: log, nowMs: Date.now });
    return hooks;
  }

  it('our agent left with no mark (its worker died): a new one is sent at once, hinted for the person there longest, with their token attributes', async () => {
    const { calls, dispatch } = recordingDispatch([
      person('later', 2_000),
      person('first', 1_000, { [ATTR_RESUME_POLICY]: 'AlwaysResume', [ATTR_LANGUAGE]: 'de' }),
    ]);
    const h = make(dispatch);
    expect(await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT })))).toBe('replacing');
    await h.idle();
    // The room was ours (our agent was in it): no need for an earlier dispatch of it.
    expect(calls).toEqual([{ room: 'r1', chose: 'first', hint: { identity: 'first', name: 'FIRST', resumePolicy: 'AlwaysResume', language: 'de' }, onlyWhereDispatched: false }]);
  });

  it('an agent that left on purpose, another agent name, or a person leaving sends nobody', async () => {
    const { calls, dispatch } = recordingDispatch([person('p', 1)]);
    const log = new RecordingLogger();
    const h = make(dispatch, undefined, log);
    expect(await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT, [ATTR_AGENT_LEFT]: 'taken_over' })))).toBe('left_on_purpose');
    expect(await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: 'someone-else' })))).toBe('ignored');
    expect(await h.handle(event('participant_left', 'r1', person('p', 1)))).toBe('ignored');
    expect(await h.handle(event('participant_left', '', agent({ [ATTR_AGENT_NAME]: AGENT })))).toBe('ignored');
    await h.idle();
    expect(calls).toEqual([]);
    expect(log.lines.find((l) => l.msg === 'agent left on purpose: not replaced')?.fields).toMatchObject({ room: 'r1', reason: 'taken_over' });
  });

  it('nobody left in the room: nothing is dispatched, and it does not count against the room', async () => {
    const { calls, dispatch } = recordingDispatch([]);
    const limiter = new MemoryRateLimiter(1, REPLACEMENT_WINDOW_MS);
    const h = make(dispatch, limiter);
    await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT })));
    await h.idle();
    expect(calls).toMatchObject([{ room: 'r1', chose: null }]);
    expect(await limiter.allow('r1', Date.now())).toBe(true); // refunded: the one allowed is still there
  });

  it(`at most ${REPLACEMENTS_PER_ROOM} agents are sent into one room in ${REPLACEMENT_WINDOW_MS / 60_000} minutes (an agent that crashes every time is not sent forever); other rooms are not affected`, async () => {
    const { calls, dispatch } = recordingDispatch([person('p', 1)]);
    const log = new RecordingLogger();
    const h = make(dispatch, undefined, log);
    for (let i = 0; i < REPLACEMENTS_PER_ROOM + 2; i++) {
      await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT })));
      await h.idle();
    }
    await h.handle(event('participant_left', 'r2', agent({ [ATTR_AGENT_NAME]: AGENT })));
    await h.idle();
    expect(calls.filter((c) => c.room === 'r1')).toHaveLength(REPLACEMENTS_PER_ROOM);
    expect(calls.filter((c) => c.room === 'r2')).toHaveLength(1);
    expect(log.lines.filter((l) => l.msg === 'agent not replaced: too many dispatches into this room')).toHaveLength(2);
  });

  it('answers that are not a dispatch (present, pending) do not count against the room', async () => {
    const { calls, dispatch } = recordingDispatch([person('p', 1)], 'pending');
    const h = make(dispatch);
    for (let i = 0; i < REPLACEMENTS_PER_ROOM + 2; i++) {
      await h.handle(event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT })));
      await h.idle();
    }
    expect(calls).toHaveLength(REPLACEMENTS_PER_ROOM + 2);
  });

  describe('a person joins', () => {
    beforeEach(() => vi.useFakeTimers());

    it(`the room is checked ${JOIN_RECHECK_MS} ms later (at the next tick; once, however many joins), not before`, async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const h = make(dispatch);
      expect(await h.handle(event('participant_joined', 'r1', person('p', 1)))).toBe('recheck_scheduled');
      await vi.advanceTimersByTimeAsync(JOIN_RECHECK_MS - 1_000);
      expect(await h.handle(event('participant_joined', 'r1', person('q', 2)))).toBe('recheck_scheduled'); // restarts the wait
      await vi.advanceTimersByTimeAsync(JOIN_RECHECK_MS - 1);
      expect(calls).toEqual([]);
      await vi.advanceTimersByTimeAsync(WEBHOOK_TICK_MS + 1);
      await h.idle();
      // Only into a room that had a dispatch of our agent (not another application's room).
      expect(calls).toMatchObject([{ room: 'r1', chose: 'p', onlyWhereDispatched: true }]);
      await vi.advanceTimersByTimeAsync(JOIN_RECHECK_MS * 3);
      expect(calls).toHaveLength(1);
    });

    it('our agent arriving, or the room finishing, cancels the check; so does closing the service', async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const h = make(dispatch);
      await h.handle(event('participant_joined', 'r1', person('p', 1)));
      expect(await h.handle(event('participant_joined', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT })))).toBe('recheck_dropped');
      await h.handle(event('participant_joined', 'r2', person('p', 1)));
      expect(await h.handle(event('room_finished', 'r2'))).toBe('recheck_dropped');
      await h.handle(event('participant_joined', 'r3', person('p', 1)));
      // Another agent name arriving does not count as ours.
      expect(await h.handle(event('participant_joined', 'r3', agent({ [ATTR_AGENT_NAME]: 'someone-else' })))).toBe('ignored');
      await h.close();
      expect(await h.handle(event('participant_joined', 'r4', person('p', 1)))).toBe('ignored');
      await vi.advanceTimersByTimeAsync(JOIN_RECHECK_MS * 2);
      expect(calls).toEqual([]);
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  describe('the liveness watch', () => {
    type Removal = Awaited<ReturnType<LivenessWatch['remove']>>;
    /**
     * A watch whose reaps report `batches` in turn (an Error: the reap fails), and whose removals
     * answer `removal` (a list: one answer per removal, the last one repeated; an Error: it fails). As in Redis, a
     * reported agent is reported again later (a batch of its own at the end) unless it is taken
     * off the list first (`forgetting: 'fails'`: that throws); with `again` false, never (the
     * look-again time, 15 s, not reached).
     */
    /** A removal answer: the LiveKit API never answers. */
    const HANG = 'hang' as const;
    function watch(batches: Array<LapsedAgent[] | Error>, removal: Removal | Array<Removal | Error | typeof HANG>, forgetting: 'works' | 'fails' = 'works', again = true) {
      const removed: LapsedAgent[] = [];
      const forgotten: LapsedAgent[] = [];
      const answers = Array.isArray(removal) ? [...removal] : [removal];
      const same = (a: LapsedAgent) => (x: LapsedAgent) => x.room === a.room && x.identity === a.identity;
      const w: LivenessWatch = {
        reap: async () => {
          const next = batches.shift() ?? [];
          if (next instanceof Error) throw next;
          if (again) for (const a of next) batches.push([a]);
          return next;
        },
        remove: async (a) => {
          removed.push(a);
          const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
          if (answer instanceof Error) throw answer;
          if (answer === HANG) return new Promise<never>(() => {});
          return answer;
        },
        forget: async (a) => {
          if (forgetting === 'fails') throw new Error('Command timed out');
          forgotten.push(a);
          for (const b of batches) if (Array.isArray(b)) b.splice(0, b.length, ...b.filter((x) => !same(a)(x)));
        },
      };
      return { w, removed, forgotten, reapsLeft: () => batches.filter((b) => !Array.isArray(b) || b.length > 0).length };
    }

    function makeWatching(dispatch: RoomDispatch, w: LivenessWatch, log = new RecordingLogger(), removalTimeoutMs?: number) {
      hooks = new AgentWebhooks({ agentName: AGENT, dispatch, limiter: new MemoryRateLimiter(REPLACEMENTS_PER_ROOM, REPLACEMENT_WINDOW_MS), logger: log, nowMs: Date.now, liveness: w, tickMs: 10, removalTimeoutMs });
      return hooks;
    }

    it('an agent that stopped beating is removed from its room, then a new one is sent for the person there longest (no webhook needed)', async () => {
      const { calls, dispatch } = recordingDispatch([person('later', 2_000), person('first', 1_000)]);
      const { w, removed } = watch([[{ room: 'r1', identity: 'agent-1' }]], 'removed');
      const h = makeWatching(dispatch, w);
      await waitFor('the replacement', () => calls.length > 0);
      await h.idle();
      expect(removed).toEqual([{ room: 'r1', identity: 'agent-1' }]);
      expect(calls).toEqual([{ room: 'r1', chose: 'first', hint: { identity: 'first', name: 'FIRST' }, onlyWhereDispatched: false }]);
    });

    it('a lapsed agent already gone from the room is replaced all the same; one on its way out on purpose (marked), or alive and only cut off from Redis, is not', async () => {
      const gone = recordingDispatch([person('p', 1)]);
      const g = watch([[{ room: 'r-gone', identity: 'agent-1' }]], 'gone');
      makeWatching(gone.dispatch, g.w);
      await waitFor('the replacement', () => gone.calls.length > 0);
      await hooks?.close();

      for (const answer of ['left_on_purpose', 'alive'] as const) {
        const kept = recordingDispatch([person('p', 1)]);
        const m = watch([[{ room: `r-${answer}`, identity: 'agent-2' }]], answer);
        const log = new RecordingLogger();
        const h = makeWatching(kept.dispatch, m.w, log);
        await waitFor('the removal attempt', () => m.removed.length > 0);
        await waitFor('its log line', () => log.lines.some((l) => l.msg === 'agent stopped beating'));
        await h.idle();
        expect(kept.calls).toEqual([]);
        expect(log.lines.find((l) => l.msg === 'agent stopped beating')?.fields).toMatchObject({ room: `r-${answer}`, removed: answer });
        expect(m.forgotten.length > 0).toBe(answer !== 'alive'); // left on the list, to be looked at again: only the one alive
        await h.close();
      }
    });

    it('an agent cut off from Redis is left serving, and on the list: if its job dies before it reaches Redis again, it is found and replaced', async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const agent = { room: 'r1', identity: 'agent-1' };
      // Alive at the first look, still alive at the second, gone (its job died) at the third.
      const m = watch([[agent]], ['alive', 'alive', 'gone']);
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, m.w, log);
      await waitFor('the replacement', () => calls.length > 0);
      await waitFor('the last reap', () => m.reapsLeft() === 0);
      await h.idle();
      expect(m.removed).toEqual([agent, agent, agent]);
      expect(m.forgotten).toEqual([agent]); // once found gone
      expect(log.lines.filter((l) => l.msg === 'agent stopped beating').map((l) => l.fields.removed)).toEqual(['alive', 'alive', 'gone']);
      expect(calls).toHaveLength(1);
    });

    it(`a removal the LiveKit API fails is tried again a tick later (up to ${REMOVAL_ATTEMPTS} times), not left until the next look at the agent`, async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const agent = { room: 'r1', identity: 'agent-1' };
      const m = watch([[agent]], [new Error('fetch failed'), 'removed'], 'works', false);
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, m.w, log);
      await waitFor('the replacement', () => calls.length > 0);
      await h.idle();
      expect(m.removed).toEqual([agent, agent]);
      expect(log.lines.filter((l) => l.msg === 'lapsed agent not checked: the LiveKit API failed; trying again').map((l) => l.fields)).toEqual([{ room: 'r1', attempt: 1, err: 'fetch failed' }]);
      expect(log.lines.filter((l) => l.msg === 'agent stopped beating').map((l) => l.fields.removed)).toEqual(['removed']);
      expect(m.forgotten).toEqual([agent]);
      expect(calls).toHaveLength(1);
      await h.close();

      // Failing every time: given up, logged, and left on the list (looked at again later); nobody sent.
      const failing = recordingDispatch([person('p', 1)]);
      const f = watch([[agent]], [new Error('fetch failed')], 'works', false);
      const flog = new RecordingLogger();
      const fh = makeWatching(failing.dispatch, f.w, flog);
      await waitFor('the attempts to be given up', () => flog.lines.some((l) => l.msg === 'agent replacement failed'));
      await fh.close();
      expect(f.removed).toEqual(Array(REMOVAL_ATTEMPTS).fill(agent));
      expect(flog.lines.find((l) => l.msg === 'agent replacement failed')?.fields).toMatchObject({ room: 'r1', why: 'agent_lapsed', err: 'fetch failed' });
      expect(f.forgotten).toEqual([]);
      expect(failing.calls).toEqual([]);
    });

    it(`a removal the LiveKit API does not answer fails after ${REMOVAL_TIMEOUT_MS} ms and is tried again, all the attempts ending before the agent is looked at again`, async () => {
      expect(REMOVAL_ATTEMPTS * REMOVAL_TIMEOUT_MS + (REMOVAL_ATTEMPTS - 1) * WEBHOOK_TICK_MS).toBeLessThan(CUT_OFF_ALIVE_MS);
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const agent = { room: 'r1', identity: 'agent-1' };
      const m = watch([[agent]], [HANG, 'removed'], 'works', false);
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, m.w, log, 50);
      await waitFor('the replacement', () => calls.length > 0);
      await h.idle();
      expect(m.removed).toEqual([agent, agent]);
      expect(log.lines.filter((l) => l.msg === 'lapsed agent not checked: the LiveKit API failed; trying again').map((l) => l.fields)).toEqual([
        { room: 'r1', attempt: 1, err: 'the LiveKit API did not answer within 50 ms' },
      ]);
      expect(m.forgotten).toEqual([agent]);
      expect(calls).toHaveLength(1);
    });

    it('a lapsed agent that cannot be taken off the list is logged, and looked at again later (where a dispatch finds the agent already sent)', async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const m = watch([[{ room: 'r1', identity: 'agent-1' }]], 'removed', 'fails');
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, m.w, log);
      await waitFor('a second look', () => m.removed.length >= 2);
      await h.close();
      expect(log.lines.find((l) => l.msg === 'agent not taken off the liveness list')?.fields).toMatchObject({ room: 'r1', err: 'Command timed out' });
      expect(calls.length).toBeGreaterThan(0);
    });

    it('an agent that left on purpose but could not take itself off the list (its Redis out of reach then) is taken off by the webhook: its lapse brings no agent back into the room', async () => {
      const { calls, dispatch } = recordingDispatch([person('colleague', 1)]);
      const left = agent({ [ATTR_AGENT_NAME]: AGENT, [ATTR_AGENT_LEFT]: 'idle' });
      const entry = { room: 'r1', identity: left.identity };
      // Its entry would lapse a few reaps later.
      const m = watch([[], [], [], [], [], [entry]], 'gone');
      const h = makeWatching(dispatch, m.w);
      expect(await h.handle(event('participant_left', 'r1', left))).toBe('left_on_purpose');
      await waitFor('every reap to run', () => m.reapsLeft() === 0);
      await h.idle();
      expect(m.forgotten).toEqual([entry]);
      expect(m.removed).toEqual([]);
      expect(calls).toEqual([]);
    });

    it('an agent that left unmarked is taken off the list too (the webhook replaces it); one that cannot be is logged and still replaced', async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const gone = agent({ [ATTR_AGENT_NAME]: AGENT });
      const m = watch([], 'gone');
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, { ...m.w, forget: async (a) => (a.room === 'r2' ? Promise.reject(new Error('Command timed out')) : m.w.forget(a)) }, log);
      expect(await h.handle(event('participant_left', 'r1', gone))).toBe('replacing');
      expect(await h.handle(event('participant_left', 'r2', gone))).toBe('replacing');
      await h.idle();
      expect(m.forgotten).toEqual([{ room: 'r1', identity: gone.identity }]);
      expect(log.lines.find((l) => l.msg === 'agent not taken off the liveness list')?.fields).toMatchObject({ room: 'r2', err: 'Command timed out' });
      expect(calls.map((c) => c.room).sort()).toEqual(['r1', 'r2']);
    });

    it('a watch that cannot read Redis says so once, goes on trying, and says when it reads again', async () => {
      const { calls, dispatch } = recordingDispatch([person('p', 1)]);
      const down = new Error('Connection is closed.');
      const { w, reapsLeft } = watch([down, down, down, [{ room: 'r1', identity: 'agent-1' }]], 'removed');
      const log = new RecordingLogger();
      const h = makeWatching(dispatch, w, log);
      await waitFor('every reap to run', () => reapsLeft() === 0 && calls.length > 0);
      await h.idle();
      expect(log.lines.filter((l) => l.msg.startsWith('agent liveness watch cannot read Redis'))).toHaveLength(1);
      expect(log.lines.filter((l) => l.msg === 'agent liveness watch reads Redis again')).toHaveLength(1);
    });
  });
});

describe('dispatch gates', () => {
  const prefix = randomPrefix('gate');
  const redisP = connectTestRedis();
  afterAll(async () => {
    const redis = await redisP;
    await unlinkPrefix(redis, `${prefix}*`);
    redis.disconnect();
  });

  const gates: Array<[string, () => Promise<MemoryDispatchGate | RedisDispatchGate>]> = [
    ['memory', async () => new MemoryDispatchGate()],
    ['redis', async () => new RedisDispatchGate(await redisP, prefix)],
  ];
  for (const [name, make] of gates) {
    it(`${name}: one decision per room and agent at a time; other rooms and other agents are free; released, the room is free again`, async () => {
      const gate = await make();
      const release = await gate.tryEnter('room-a', AGENT);
      expect(release).not.toBeNull();
      expect(await gate.tryEnter('room-a', AGENT)).toBeNull();
      const other = await gate.tryEnter('room-b', AGENT);
      expect(other).not.toBeNull();
      const otherAgent = await gate.tryEnter('room-a', 'another-agent');
      expect(otherAgent).not.toBeNull();
      await release!();
      const again = await gate.tryEnter('room-a', AGENT);
      expect(again).not.toBeNull();
      await again!();
      await other!();
      await otherAgent!();
    });
  }

  it('redis: a gate held by a process that died expires on its own, and a late release never frees a gate someone else holds', async () => {
    const redis = await redisP;
    const gate = new RedisDispatchGate(redis, prefix);
    const release = await gate.tryEnter('room-c', AGENT);
    const key = gateKey(prefix, 'room-c', AGENT);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(GATE_HOLD_MS);
    expect(key).not.toContain('room-c'); // no room name in key names
    // It expired and another decision took it: the first one's release must not free it.
    await redis.set(key, 'someone-else', 'PX', GATE_HOLD_MS);
    await release!();
    expect(await redis.get(key)).toBe('someone-else');
  });
});

describe('join checks in Redis', () => {
  it('outlive the service process that scheduled them, are dropped by any other, and each due one goes to one process only', async () => {
    const redis = await connectTestRedis();
    const prefix = randomPrefix('recheck');
    const opened: AgentWebhooks[] = [];
    const open = (dispatch: RoomDispatch, log = new RecordingLogger()) => {
      const h = new AgentWebhooks({ agentName: AGENT, dispatch, limiter: new MemoryRateLimiter(REPLACEMENTS_PER_ROOM, REPLACEMENT_WINDOW_MS), logger: log, nowMs: Date.now, rechecks: new RedisRoomRechecks(redis, prefix, AGENT), joinRecheckMs: 200, tickMs: 20 });
      opened.push(h);
      return h;
    };
    try {
      // Scheduled by a process that then stops (a restart): the others run the check.
      const first = recordingDispatch([person('p', 1)]);
      const gone = open(first.dispatch);
      expect(await gone.handle(event('participant_joined', 'r-restart', person('p', 1)))).toBe('recheck_scheduled');
      expect(await gone.handle(event('participant_joined', 'r-dropped', person('p', 1)))).toBe('recheck_scheduled');
      await gone.close();
      // Our agent arrived in one room, the webhook reaching another process: it drops the check.
      const [a, b] = [recordingDispatch([person('p', 1)]), recordingDispatch([person('p', 1)])];
      const [ha, hb] = [open(a.dispatch), open(b.dispatch)];
      expect(await hb.handle(event('participant_joined', 'r-dropped', agent({ [ATTR_AGENT_NAME]: AGENT })))).toBe('recheck_dropped');
      await waitFor('the check of the restarted process to run', () => a.calls.length + b.calls.length > 0);
      await Promise.all([ha.idle(), hb.idle()]);
      const calls = [...a.calls, ...b.calls];
      expect(calls).toEqual([expect.objectContaining({ room: 'r-restart', chose: 'p', onlyWhereDispatched: true })]);
      expect(first.calls).toEqual([]);
      expect(await redis.zcard(recheckKey(prefix, AGENT))).toBe(0);
      expect(recheckKey(prefix, AGENT)).not.toContain(AGENT);
    } finally {
      for (const h of opened) await h.close();
      await unlinkPrefix(redis, `${prefix}*`);
      redis.disconnect();
    }
  });
});

describe('webhook events seen before', () => {
  it('memory: an id is new once in its window, new again after it; the oldest ids go first past the bound', async () => {
    let now = 1_000_000;
    const seen = new MemorySeenEvents(() => now, 3);
    expect(await seen.firstTime('a')).toBe(true);
    expect(await seen.firstTime('a')).toBe(false);
    now += SEEN_EVENT_MS;
    expect(await seen.firstTime('a')).toBe(true); // the window passed
    for (const id of ['b', 'c', 'd']) expect(await seen.firstTime(id)).toBe(true);
    expect(await seen.firstTime('a')).toBe(true); // forgotten: the oldest, past 3 ids
    expect(await seen.firstTime('d')).toBe(false);
  });

  it('redis: every service process of an agent shares them (another agent\'s service acts on the same event), under a key that holds neither; a Redis that does not answer lets the event through', async () => {
    const redis = await connectTestRedis();
    const prefix = randomPrefix('seen');
    try {
      const [a, b] = [new RedisSeenEvents(redis, prefix, AGENT), new RedisSeenEvents(redis, prefix, AGENT)];
      const both = await Promise.all([a.firstTime('EV_1'), b.firstTime('EV_1')]);
      expect(both.sort()).toEqual([false, true]);
      expect(await new RedisSeenEvents(redis, prefix, 'another-agent').firstTime('EV_1')).toBe(true);
      expect(seenEventKey(prefix, AGENT, 'EV_1')).not.toMatch(/EV_1|helper/);
      const ttl = await redis.pttl(seenEventKey(prefix, AGENT, 'EV_1'));
      expect(ttl).toBeGreaterThan(SEEN_EVENT_MS - 60_000);
      expect(ttl).toBeLessThanOrEqual(SEEN_EVENT_MS);
      const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      down.on('error', () => {});
      expect(await new RedisSeenEvents(down, prefix, AGENT).firstTime('EV_1')).toBe(true);
      down.disconnect();
    } finally {
      await unlinkPrefix(redis, `${prefix}*`);
      redis.disconnect();
    }
  });
});

describe('POST /livekit/webhook', () => {
  const API_KEY = 'unit-key';
  const API_SECRET = 'unit-secret-unit-secret-unit-secret-0123';

  async function signed(body: string, secret = API_SECRET): Promise<string> {
    const at = new AccessToken(API_KEY, secret);
    at.sha256 = createHash('sha256').update(body).digest('base64');
    return at.toJwt();
  }

  it('acts only on events signed with the service\'s API key: anything else is 401 and changes nothing', async () => {
    const log = new RecordingLogger();
    // Port 1: nothing answers there, so a dispatch attempt would fail loudly in the log.
    const svc = await startTokenService({ livekitUrl: 'ws://127.0.0.1:1', apiKey: API_KEY, apiSecret: API_SECRET, port: 0, agentName: AGENT, roomCloser: { deleteRoom: async () => {} }, logger: log });
    try {
      const left = event('participant_left', 'r1', agent({ [ATTR_AGENT_NAME]: AGENT, [ATTR_AGENT_LEFT]: 'idle' }));
      left.id = 'EV_unit_1';
      const body = JSON.stringify(left.toJson());
      const post = (auth: string | undefined, b = body) =>
        fetch(`${svc.url}/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json', ...(auth ? { authorization: auth } : {}) }, body: b });

      for (const auth of [undefined, 'not-a-jwt', await signed(body, 'another-secret-another-secret-0123456789'), await signed(`${body} `)]) {
        const res = await post(auth);
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ error: 'unauthorized', reason: 'invalid_signature' });
      }
      expect(log.lines.filter((l) => l.msg === 'agent left on purpose: not replaced')).toEqual([]);

      // No Redis: no liveness watch (jobs beat only into a shared Redis).
      expect(log.lines.find((l) => l.msg === 'token service listening')?.fields).toMatchObject({ livenessWatch: false });
      const ok = await post(await signed(body));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ action: 'left_on_purpose' });
      expect(log.lines.filter((l) => l.msg === 'agent left on purpose: not replaced')).toHaveLength(1);
      // The same event again (a retried delivery, a replay within the signature's lifetime): acted on once.
      const again = await post(await signed(body));
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual({ action: 'duplicate' });
      expect(log.lines.filter((l) => l.msg === 'agent left on purpose: not replaced')).toHaveLength(1);
      expect((await fetch(`${svc.url}/livekit/webhook`)).status).toBe(405);
    } finally {
      await svc.close();
    }
  });
});
