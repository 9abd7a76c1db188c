import { describe, expect, it } from 'vitest';
import { ReconnectPolicies } from '../../../lib/session/policy.js';
import { SESSION_STATES } from '../../../lib/session/record.js';
import { initialLifecycle, transition } from '../../../lib/session/state.js';
import type { LifecycleEvent, LifecycleState, SessionStateChanged } from '../../../lib/session/state.js';

const T0 = 1_000_000;

function run(events: [LifecycleEvent, number][], policy = ReconnectPolicies.Default): { state: LifecycleState; changes: SessionStateChanged[]; effects: string[] } {
  let state = initialLifecycle(policy, T0);
  const changes: SessionStateChanged[] = [];
  const effects: string[] = [];
  for (const [ev, at] of events) {
    const r = transition(state, ev, at);
    state = r.state;
    for (const e of r.effects) {
      if (e.type === 'emit') changes.push(e.event);
      else effects.push(e.type);
    }
  }
  return { state, changes, effects };
}

describe('transition', () => {
  it('connects: Disconnected → Connecting → Connected, with typed change events', () => {
    const { state, changes, effects } = run([
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0 + 100],
    ]);
    expect(state.name).toBe('Connected');
    expect(changes).toEqual([
      { type: 'session_state_changed', oldState: 'Disconnected', newState: 'Connecting', atMs: T0, cause: 'connect' },
      { type: 'session_state_changed', oldState: 'Connecting', newState: 'Connected', atMs: T0 + 100, cause: 'started' },
    ]);
    expect(effects).toEqual(['load_session', 'schedule_tick', 'start_conversation']);
  });

  it('a start that fails or times out goes to Error', () => {
    expect(run([[{ type: 'connect' }, T0], [{ type: 'start_failed', code: 'expired', message: 'x' }, T0 + 1]]).state.name).toBe('Error');
    expect(run([[{ type: 'connect' }, T0], [{ type: 'tick' }, T0 + 4_999]]).state.name).toBe('Connecting');
    const timedOut = run([[{ type: 'connect' }, T0], [{ type: 'tick' }, T0 + 5_000]]);
    expect(timedOut.state.name).toBe('Error');
    expect(timedOut.effects).toContain('notify_error');
  });

  it('a network drop goes to Reconnecting and a return within the window back to Connected', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'network' }, T0 + 1_000],
      [{ type: 'participant_rejoined' }, T0 + 30_000],
    ]);
    expect(r.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Reconnecting', 'Connected']);
    expect(r.effects).toContain('suspend_session');
  });

  it('a client-initiated leave (refresh) goes to Disconnected but stays rejoinable for the rejoin window', () => {
    const left: [LifecycleEvent, number][] = [
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'client_initiated' }, T0 + 1],
    ];
    const r = run(left);
    expect(r.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnected']);
    expect(r.effects).toEqual(['load_session', 'schedule_tick', 'start_conversation', 'suspend_session', 'schedule_tick']);
    expect(r.state.deadlineMs).toBe(T0 + 1 + 60_000);
    const back = run([...left, [{ type: 'participant_rejoined' }, T0 + 30_000]]);
    expect(back.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnected', 'Connected']);
    const expired = run([...left, [{ type: 'tick' }, T0 + 1 + 60_000]]);
    expect(expired.state.name).toBe('Disconnected');
    expect(expired.effects.at(-1)).toBe('close_session');
    const late = run([...left, [{ type: 'tick' }, T0 + 1 + 60_000], [{ type: 'participant_rejoined' }, T0 + 70_000]]);
    expect(late.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnected']);
  });

  it('a deliberate end goes to Disconnecting, then Disconnected', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'ended' }, T0 + 1],
      [{ type: 'closed' }, T0 + 2],
    ]);
    expect(r.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnecting', 'Disconnected']);
    expect(r.effects).toEqual(['load_session', 'schedule_tick', 'start_conversation', 'suspend_session', 'close_session', 'release_lease']);
  });

  it('an expired rejoin window closes under ResumeIfPossible and errors under AlwaysResume', () => {
    const events: [LifecycleEvent, number][] = [
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'network' }, T0],
      [{ type: 'tick' }, T0 + 60_000],
    ];
    expect(run(events).state.name).toBe('Disconnecting');
    expect(run(events, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysResume' }).state.name).toBe('Error');
    // Closed either way (the job does not linger in the room); the close puts the conversation away.
    expect(run(events).effects.slice(-1)).toEqual(['close_session']);
    expect(run(events, { ...ReconnectPolicies.Default, resumePolicy: 'AlwaysResume' }).effects.slice(-2)).toEqual(['notify_error', 'close_session']);
    const late: [LifecycleEvent, number][] = [...events.slice(0, 3), [{ type: 'participant_rejoined' }, T0 + 60_001]];
    expect(run(late).state.name).toBe('Disconnecting');
  });

  it('exhausted reconnect attempts end the episode', () => {
    const base: [LifecycleEvent, number][] = [
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'network' }, T0],
    ];
    const two = run([...base, [{ type: 'reconnect_failed' }, T0 + 1], [{ type: 'reconnect_failed' }, T0 + 2]]);
    expect(two.state).toMatchObject({ name: 'Reconnecting', reconnectAttempts: 2 });
    const three = run([...base, [{ type: 'reconnect_failed' }, T0 + 1], [{ type: 'reconnect_failed' }, T0 + 2], [{ type: 'reconnect_failed' }, T0 + 3]]);
    expect(three.state.name).toBe('Disconnecting');
  });

  it('AlwaysCreateNew never reconnects', () => {
    const r = run(
      [
        [{ type: 'connect' }, T0],
        [{ type: 'started', resumed: false }, T0],
        [{ type: 'participant_left', reason: 'network' }, T0],
      ],
      ReconnectPolicies.AlwaysCreateNew,
    );
    expect(r.state.name).toBe('Disconnecting');
  });

  it('a takeover closes the old session without releasing the moved lease', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: true }, T0],
      [{ type: 'taken_over' }, T0 + 1],
    ]);
    expect(r.state.name).toBe('Disconnecting');
    expect(r.effects.filter((e) => e === 'suspend_session' || e === 'release_lease')).toEqual([]);
  });

  it('a takeover while waiting for a rejoin after a client-initiated leave ends the wait: the old job lets go, releasing nothing', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'started', resumed: false }, T0],
      [{ type: 'participant_left', reason: 'client_initiated' }, T0 + 1],
      [{ type: 'taken_over' }, T0 + 5_000],
    ]);
    expect(r.changes.map((c) => c.newState)).toEqual(['Connecting', 'Connected', 'Disconnected', 'Disconnecting']);
    // The effects of the takeover: a close, and no release (the lease is the new owner's now).
    expect(r.effects.slice(5)).toEqual(['close_session']);
    // Before any conversation there is nothing to let go.
    expect(run([[{ type: 'taken_over' }, T0]]).state.name).toBe('Disconnected');
  });

  it('a takeover while the session is still starting closes it: it never starts, and releases nothing', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'taken_over' }, T0 + 1],
      [{ type: 'started', resumed: true }, T0 + 2],
    ]);
    expect(r.changes.map((c) => c.newState)).toEqual(['Connecting', 'Disconnecting']);
    expect(r.effects.filter((e) => e === 'close_session' || e === 'release_lease' || e === 'start_conversation')).toEqual(['close_session']);
  });

  it('Error can be retried', () => {
    const r = run([
      [{ type: 'connect' }, T0],
      [{ type: 'start_failed', code: 'x', message: 'y' }, T0],
      [{ type: 'retry' }, T0 + 10],
    ]);
    expect(r.state.name).toBe('Connecting');
  });

  it('is total: every event in every state yields a state (ignored events change nothing)', () => {
    const events: LifecycleEvent[] = [
      { type: 'connect' },
      { type: 'started', resumed: false },
      { type: 'start_failed', code: 'c', message: 'm' },
      { type: 'participant_left', reason: 'network' },
      { type: 'participant_rejoined' },
      { type: 'reconnect_failed' },
      { type: 'tick' },
      { type: 'disconnect', reason: 'ended' },
      { type: 'taken_over' },
      { type: 'closed' },
      { type: 'retry' },
    ];
    for (const name of SESSION_STATES) {
      for (const ev of events) {
        const state: LifecycleState = { ...initialLifecycle(ReconnectPolicies.Default, T0), name, deadlineMs: T0 + 10 };
        const r = transition(state, ev, T0 + 1);
        expect(SESSION_STATES).toContain(r.state.name);
        if (r.ignored !== undefined) {
          expect(r.state).toBe(state);
          expect(r.effects).toEqual([]);
        }
      }
    }
  });
});
