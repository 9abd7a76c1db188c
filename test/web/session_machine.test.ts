import { describe, expect, it } from 'vitest';
import {
  ALWAYS_CREATE_NEW_POLICY,
  DEFAULT_RECONNECT_POLICY,
  chooseRoom,
  initialMachine,
  retryDelayMs,
  transition,
  type ClientEffect,
  type ClientEvent,
  type ClientMachine,
} from '../../web/client/session_machine.js';

const policy = DEFAULT_RECONNECT_POLICY;
const T0 = 1_000_000;

function run(m: ClientMachine, events: Array<[ClientEvent, number]>): { m: ClientMachine; effects: ClientEffect[] } {
  const effects: ClientEffect[] = [];
  for (const [ev, at] of events) {
    const t = transition(m, ev, at, policy);
    m = t.machine;
    effects.push(...t.effects);
  }
  return { m, effects };
}

function startOf(effects: ClientEffect[]): Extract<ClientEffect, { type: 'startAttempt' }> {
  const s = effects.filter((e) => e.type === 'startAttempt').pop();
  if (s === undefined || s.type !== 'startAttempt') throw new Error('no startAttempt');
  return s;
}

function connected(at = T0, room = 'r1'): ClientMachine {
  let t = transition(initialMachine(), { type: 'connect' }, at, policy);
  const id = startOf(t.effects).attemptId;
  t = transition(t.machine, { type: 'connected', attemptId: id, room }, at + 100, policy);
  return t.machine;
}

describe('client session machine (seed 000)', () => {
  it('starts Disconnected and connects: Disconnected → Connecting → Connected, persisting the room', () => {
    const m0 = initialMachine();
    expect(m0.state).toBe('Disconnected');
    const t1 = transition(m0, { type: 'connect' }, T0, policy);
    expect(t1.machine.state).toBe('Connecting');
    const start = startOf(t1.effects);
    expect(start).toMatchObject({ attempt: 1, room: null, timeoutMs: 5_000 });
    const t2 = transition(t1.machine, { type: 'connected', attemptId: start.attemptId, room: 'room-a' }, T0 + 50, policy);
    expect(t2.machine.state).toBe('Connected');
    expect(t2.machine.lastRoom).toEqual({ name: 'room-a', seenAtMs: T0 + 50 });
    expect(t2.effects).toEqual([{ type: 'persistLastRoom', lastRoom: { name: 'room-a', seenAtMs: T0 + 50 } }]);
  });

  it('a user disconnect goes through Disconnecting to Disconnected', () => {
    const m = connected();
    const t = transition(m, { type: 'disconnect' }, T0 + 1_000, policy);
    expect(t.machine.state).toBe('Disconnecting');
    expect(t.effects.map((e) => e.type)).toEqual(['persistLastRoom', 'closeRoom']);
    expect(transition(t.machine, { type: 'closed' }, T0 + 1_100, policy).machine.state).toBe('Disconnected');
  });

  it('a configuration or auth failure while connecting goes to Error at once', () => {
    const t1 = transition(initialMachine(), { type: 'connect' }, T0, policy);
    const id = startOf(t1.effects).attemptId;
    const t2 = transition(t1.machine, { type: 'attemptFailed', attemptId: id, error: { code: 'invalid_credentials', message: 'no' }, fatal: true }, T0 + 10, policy);
    expect(t2.machine.state).toBe('Error');
    expect(t2.machine.error?.code).toBe('invalid_credentials');
    expect(t2.effects.some((e) => e.type === 'startAttempt')).toBe(false);
  });

  it('retries transient failures up to maxReconnectAttempts (3), then Error; Retry starts over', () => {
    let t = transition(initialMachine(), { type: 'connect' }, T0, policy);
    const attempts: number[] = [startOf(t.effects).attempt];
    const delays: number[] = [startOf(t.effects).delayMs];
    for (let i = 0; i < 2; i++) {
      t = transition(t.machine, { type: 'startTimeout', attemptId: t.machine.attemptId }, T0 + 5_000 * (i + 1), policy);
      expect(t.machine.state).toBe('Connecting');
      attempts.push(startOf(t.effects).attempt);
      delays.push(startOf(t.effects).delayMs);
    }
    expect(attempts).toEqual([1, 2, 3]);
    // The first at once; each retry waits longer (a network still down does not use them all up at once).
    expect(delays).toEqual([0, 1_000, 2_000]);
    t = transition(t.machine, { type: 'attemptFailed', attemptId: t.machine.attemptId, error: { code: 'network', message: 'down' }, fatal: false }, T0 + 16_000, policy);
    expect(t.machine.state).toBe('Error');
    expect(t.machine.error?.code).toBe('max_attempts');
    expect(t.effects).toEqual([{ type: 'abandonAttempt' }]);
    const r = transition(t.machine, { type: 'retry' }, T0 + 20_000, policy);
    expect(r.machine.state).toBe('Connecting');
    expect(startOf(r.effects).attempt).toBe(1);
  });

  it('the wait between retries doubles from 1 s and stops growing at 8 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(retryDelayMs)).toEqual([0, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it('a service that says how long to wait (429 Retry-After) is not asked again sooner', () => {
    const t = transition(initialMachine(), { type: 'connect' }, T0, policy);
    const busy = { type: 'attemptFailed', attemptId: t.machine.attemptId, error: { code: 'rate_limited', message: 'slow down' }, fatal: false, retryAfterMs: 60_000 } as const;
    expect(startOf(transition(t.machine, busy, T0 + 100, policy).effects).delayMs).toBe(60_000);
    // Without one, the usual wait; with a shorter one, the usual wait still.
    expect(startOf(transition(t.machine, { ...busy, retryAfterMs: undefined }, T0 + 100, policy).effects).delayMs).toBe(1_000);
    expect(startOf(transition(t.machine, { ...busy, retryAfterMs: 200 }, T0 + 100, policy).effects).delayMs).toBe(1_000);
  });

  it('ignores the results of an attempt that was already given up (stale attempt id)', () => {
    let t = transition(initialMachine(), { type: 'connect' }, T0, policy);
    const first = startOf(t.effects).attemptId;
    t = transition(t.machine, { type: 'startTimeout', attemptId: first }, T0 + 5_000, policy);
    const second = startOf(t.effects).attemptId;
    expect(second).not.toBe(first);
    const late = transition(t.machine, { type: 'connected', attemptId: first, room: 'late' }, T0 + 5_100, policy);
    expect(late.machine).toBe(t.machine);
    expect(late.effects).toEqual([]);
    const lateFail = transition(t.machine, { type: 'attemptFailed', attemptId: first, error: { code: 'x', message: 'x' }, fatal: true }, T0 + 5_100, policy);
    expect(lateFail.machine.state).toBe('Connecting');
  });

  it('a lost connection goes to Reconnecting and rejoins the same room within the rejoin TTL', () => {
    const m = connected(T0, 'room-a');
    const t = transition(m, { type: 'connectionLost', reason: 'network' }, T0 + 30_000, policy);
    expect(t.machine.state).toBe('Reconnecting');
    expect(startOf(t.effects)).toMatchObject({ room: 'room-a', attempt: 1 });
    const id = startOf(t.effects).attemptId;
    const back = transition(t.machine, { type: 'connected', attemptId: id, room: 'room-a' }, T0 + 31_000, policy);
    expect(back.machine.state).toBe('Connected');
  });

  it('exhausted reconnect attempts end in Error', () => {
    const { m } = run(connected(), [[{ type: 'connectionLost', reason: 'network' }, T0 + 1_000]]);
    let cur = m;
    for (let i = 0; i < 3; i++) cur = transition(cur, { type: 'startTimeout', attemptId: cur.attemptId }, T0 + 6_000 * (i + 1), policy).machine;
    expect(cur.state).toBe('Error');
    expect(cur.error?.message).toMatch(/reconnect after 3 attempts/);
  });

  it('livekit-client recovering by itself: Reconnecting then Connected with no attempt of ours', () => {
    const m = connected();
    const a = transition(m, { type: 'transportReconnecting' }, T0 + 1_000, policy);
    expect(a.machine.state).toBe('Reconnecting');
    expect(a.effects).toEqual([]);
    const b = transition(a.machine, { type: 'transportReconnected' }, T0 + 2_000, policy);
    expect(b.machine.state).toBe('Connected');
    // If it gives up, our own attempts start.
    const c = transition(a.machine, { type: 'connectionLost', reason: 'gave up' }, T0 + 30_000, policy);
    expect(c.machine.state).toBe('Reconnecting');
    expect(startOf(c.effects).attempt).toBe(1);
  });

  it('a drop during our own attempt is left to that attempt (no double counting)', () => {
    const t = transition(initialMachine(), { type: 'connect' }, T0, policy);
    const lost = transition(t.machine, { type: 'connectionLost', reason: 'x' }, T0 + 10, policy);
    expect(lost.machine).toBe(t.machine);
  });

  it('a fatal error from the agent (AlwaysResume could not resume) ends in Error and leaves the room', () => {
    const t = transition(connected(), { type: 'fatal', error: { code: 'resume_failed', message: 'cannot resume' } }, T0 + 500, policy);
    expect(t.machine.state).toBe('Error');
    expect(t.effects).toEqual([{ type: 'closeRoom' }]);
  });

  it('the agent ending the call (idle hang-up, room deleted) goes to Disconnected, leaves, and forgets the room: no reconnect, and the next Connect asks for a new room', () => {
    const t = transition(connected(), { type: 'ended' }, T0 + 500, policy);
    expect(t.machine).toMatchObject({ state: 'Disconnected', lastRoom: null, error: null });
    expect(t.effects).toEqual([{ type: 'persistLastRoom', lastRoom: null }, { type: 'closeRoom' }]);
    // The room's disconnect that follows (ROOM_DELETED, or our own close) changes nothing.
    expect(transition(t.machine, { type: 'connectionLost', reason: 'room deleted' }, T0 + 600, policy).effects).toEqual([]);
    expect(transition(t.machine, { type: 'closed' }, T0 + 600, policy).machine.state).toBe('Disconnected');
    const again = transition(t.machine, { type: 'connect' }, T0 + 1_000, policy);
    expect(startOf(again.effects).room).toBeNull();
    // During an attempt of ours: the attempt is abandoned and its late result ignored.
    const connecting = transition(initialMachine({ name: 'r1', seenAtMs: T0 }), { type: 'connect' }, T0 + 10, policy);
    const ended = transition(connecting.machine, { type: 'ended' }, T0 + 20, policy);
    expect(ended.effects).toEqual([{ type: 'persistLastRoom', lastRoom: null }, { type: 'abandonAttempt' }]);
    expect(transition(ended.machine, { type: 'connected', attemptId: startOf(connecting.effects).attemptId, room: 'r1' }, T0 + 30, policy).machine.state).toBe('Disconnected');
    // Already disconnected or in Error: nothing to do.
    expect(transition(initialMachine(), { type: 'ended' }, T0, policy).effects).toEqual([]);
  });

  it('reset (forget me) returns to a clean Disconnected and forgets the room', () => {
    const t = transition(connected(), { type: 'reset' }, T0 + 500, policy);
    expect(t.machine.state).toBe('Disconnected');
    expect(t.machine.lastRoom).toBeNull();
    expect(t.effects).toEqual([{ type: 'closeRoom' }, { type: 'persistLastRoom', lastRoom: null }]);
  });

  it('heartbeats refresh the rejoin anchor only while connected', () => {
    const t = transition(connected(T0), { type: 'heartbeat' }, T0 + 5_000, policy);
    expect(t.machine.lastRoom?.seenAtMs).toBe(T0 + 5_000);
    const idle = transition(initialMachine(), { type: 'heartbeat' }, T0, policy);
    expect(idle.effects).toEqual([]);
  });

  it('events that do not apply change nothing', () => {
    const m = initialMachine();
    for (const ev of [
      { type: 'disconnect' },
      { type: 'closed' },
      { type: 'transportReconnected' },
      { type: 'connectionLost', reason: 'x' },
      { type: 'startTimeout', attemptId: 0 },
    ] as ClientEvent[]) {
      expect(transition(m, ev, T0, policy).machine).toBe(m);
    }
    const c = connected();
    expect(transition(c, { type: 'connect' }, T0, policy).machine).toBe(c);
  });
});

describe('chooseRoom (reuse within the rejoin TTL, otherwise a new room)', () => {
  it('reuses the last room up to and including the TTL, then asks for a new one', () => {
    const last = { name: 'r', seenAtMs: T0 };
    expect(chooseRoom(last, T0 + 60_000, policy)).toBe('r');
    expect(chooseRoom(last, T0 + 60_001, policy)).toBeNull();
    expect(chooseRoom(null, T0, policy)).toBeNull();
  });

  it('AlwaysCreateNew never rejoins', () => {
    expect(chooseRoom({ name: 'r', seenAtMs: T0 }, T0, ALWAYS_CREATE_NEW_POLICY)).toBeNull();
  });

  it('a reloaded page (machine restored from storage) rejoins its room when connecting in time', () => {
    const m = initialMachine({ name: 'stored', seenAtMs: T0 });
    expect(startOf(transition(m, { type: 'connect' }, T0 + 2_000, policy).effects).room).toBe('stored');
    expect(startOf(transition(m, { type: 'connect' }, T0 + 61_000, policy).effects).room).toBeNull();
  });
});
