import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { idleCheckInText, idleDeadline, idleGoodbyeText, idleStep, initialIdle, type IdleEffect, type IdleEvent, type IdleLimits, type IdleState } from '../../../lib/session/idle.js';

const T0 = 1_700_000_000_000;
const LIMITS: IdleLimits = { checkInAfterMs: 120_000, hangUpAfterMs: 30_000 };

/** Runs `events` (each at its time) from a fresh call at T0; returns the last state and every effect other than `schedule`. */
function run(events: [number, IdleEvent][], limits: IdleLimits = LIMITS): { state: IdleState; said: IdleEffect['type'][]; timer: number | null } {
  let state = initialIdle(limits, T0);
  let timer = idleDeadline(state);
  const said: IdleEffect['type'][] = [];
  for (const [atMs, ev] of events) {
    const r = idleStep(state, ev, atMs);
    state = r.state;
    for (const e of r.effects) {
      if (e.type === 'schedule') timer = e.atMs;
      else said.push(e.type);
    }
  }
  return { state, said, timer };
}

const tick = (atMs: number): [number, IdleEvent] => [atMs, { type: 'tick' }];

describe('idle rule', () => {
  it('a silent participant gets one check-in after checkInAfterMs and the call ends hangUpAfterMs after it', () => {
    const greeted = run([
      [T0, { type: 'agent_busy' }],
      [T0 + 3_000, { type: 'agent_quiet' }],
    ]);
    // The clock starts when the greeting ends, not when the call started.
    expect(greeted.timer).toBe(T0 + 3_000 + 120_000);
    const r = run([
      [T0, { type: 'agent_busy' }],
      [T0 + 3_000, { type: 'agent_quiet' }],
      tick(T0 + 123_000),
      [T0 + 123_000, { type: 'agent_busy' }],
      [T0 + 126_000, { type: 'agent_quiet' }],
      tick(T0 + 156_000),
    ]);
    expect(r.said).toEqual(['check_in', 'hang_up']);
    expect(r.state.phase).toBe('hung_up');
    expect(r.timer).toBeNull();
  });

  it('speaking or typing before the hang-up starts the clock again: no hang-up, and a later silence gets a new check-in', () => {
    const r = run([
      tick(T0 + 120_000),
      [T0 + 140_000, { type: 'user_active' }],
      tick(T0 + 150_000),
      tick(T0 + 200_000),
    ]);
    expect(r.said).toEqual(['check_in']);
    expect(r.state.phase).toBe('listening');
    expect(r.timer).toBe(T0 + 140_000 + 120_000);
    expect(run([tick(T0 + 120_000), [T0 + 140_000, { type: 'user_active' }], tick(T0 + 260_000), tick(T0 + 290_000)]).said).toEqual(['check_in', 'check_in', 'hang_up']);
  });

  it('counts no silence while the agent thinks or speaks', () => {
    const r = run([[T0 + 1_000, { type: 'agent_busy' }], tick(T0 + 500_000)]);
    expect(r.said).toEqual([]);
    expect(r.timer).toBeNull();
  });

  it('a timer that fires early does nothing but set itself again', () => {
    const r = run([tick(T0 + 119_999)]);
    expect(r.said).toEqual([]);
    expect(r.timer).toBe(T0 + 120_000);
  });

  it('pauses while the participant is out of the room (the rejoin window decides) and starts again when they are back', () => {
    const r = run([[T0 + 60_000, { type: 'participant_away' }], tick(T0 + 500_000), [T0 + 500_000, { type: 'user_active' }]]);
    expect(r.said).toEqual([]);
    expect(r.timer).toBeNull();
    const back = run([[T0 + 60_000, { type: 'participant_away' }], [T0 + 100_000, { type: 'participant_back' }], tick(T0 + 219_999), tick(T0 + 220_000)]);
    expect(back.said).toEqual(['check_in']);
  });

  it('0 turns a step off: no check-in hangs up after hangUpAfterMs of silence; no hang-up only checks in', () => {
    expect(run([tick(T0 + 30_000)], { checkInAfterMs: 0, hangUpAfterMs: 30_000 }).said).toEqual(['hang_up']);
    const checkInOnly = run([tick(T0 + 120_000), tick(T0 + 10_000_000)], { checkInAfterMs: 120_000, hangUpAfterMs: 0 });
    expect(checkInOnly.said).toEqual(['check_in']);
    expect(checkInOnly.timer).toBeNull();
    expect(run([tick(T0 + 10_000_000)], { checkInAfterMs: 0, hangUpAfterMs: 0 })).toMatchObject({ said: [], timer: null });
  });

  it('after the hang-up nothing happens any more', () => {
    const r = run([tick(T0 + 120_000), tick(T0 + 150_000), [T0 + 151_000, { type: 'user_active' }], [T0 + 152_000, { type: 'participant_back' }], tick(T0 + 400_000)]);
    expect(r.said).toEqual(['check_in', 'hang_up']);
    expect(r.state.phase).toBe('hung_up');
  });

  it('property: never hangs up without a check-in first (when one is on), never twice, and never within hangUpAfterMs of the last activity', () => {
    const event = fc.oneof(
      fc.constant<IdleEvent>({ type: 'user_active' }),
      fc.constant<IdleEvent>({ type: 'agent_busy' }),
      fc.constant<IdleEvent>({ type: 'agent_quiet' }),
      fc.constant<IdleEvent>({ type: 'participant_away' }),
      fc.constant<IdleEvent>({ type: 'participant_back' }),
      fc.constant<IdleEvent>({ type: 'tick' }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 60_000 }), event), { maxLength: 60 }), (steps) => {
        let state = initialIdle(LIMITS, T0);
        let now = T0;
        let lastActive = T0;
        let checkIns = 0;
        let hangUps = 0;
        for (const [dt, ev] of steps) {
          now += dt;
          if (ev.type === 'user_active' || ev.type === 'participant_back') lastActive = now;
          const r = idleStep(state, ev, now);
          state = r.state;
          for (const e of r.effects) {
            if (e.type === 'check_in') checkIns++;
            if (e.type === 'hang_up') {
              hangUps++;
              if (checkIns === 0 || now - lastActive < LIMITS.checkInAfterMs + LIMITS.hangUpAfterMs) return false;
            }
          }
        }
        return hangUps <= 1;
      }),
    );
  });

  it('speaks the conversation\'s language, and promises a resume only when one is possible', () => {
    expect(idleCheckInText(null)).toMatch(/still there/);
    expect(idleCheckInText('es-MX')).toMatch(/Sigues ahí/);
    expect(idleCheckInText('fr')).toMatch(/toujours là/);
    expect(idleCheckInText('de-AT')).toMatch(/noch da/);
    expect(idleCheckInText('ja')).toBe(idleCheckInText('en'));
    expect(idleGoodbyeText('en', true)).toMatch(/saved/);
    expect(idleGoodbyeText('en', false)).not.toMatch(/saved|pick up/);
    expect(idleGoodbyeText('es', true)).toMatch(/guardada/);
    expect(idleGoodbyeText('fr', false)).toMatch(/Au revoir/);
    expect(idleGoodbyeText('de', true)).toMatch(/gespeichert/);
  });
});
