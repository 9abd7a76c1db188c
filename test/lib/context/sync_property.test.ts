/**
 * Property: whatever the client does, whenever the link drops (packets in flight lost, both
 * ways), whatever is delivered twice, and whenever the agent becomes ready, after the link is
 * back and settled (single packets may also be lost without a disconnect) the agent's canonical context equals the client's, and no op was applied
 * twice (every applied revision of a stream is higher than the last).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coalesceUpdates } from '../../../lib/context/coalescer.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import type { ContextUpdate } from '../../../lib/context/tracker.js';
import { Harness } from './harness.js';

type Cmd =
  | { t: 'set'; name: string; value: string }
  | { t: 'sets'; entries: Array<[string, string]> }
  | { t: 'remove'; name: string }
  | { t: 'event' }
  | { t: 'reset' }
  | { t: 'apply'; mode: 'replace' | 'append' }
  | { t: 'disconnect' }
  | { t: 'connect' }
  | { t: 'ready' }
  | { t: 'toAgent'; n: number; dup: boolean }
  | { t: 'toClient'; n: number; dup: boolean }
  | { t: 'settle' }
  | { t: 'drop' }
  | { t: 'tick' };

const names = fc.constantFrom('Station', 'HazardLevel', 'Mood', 'Zone');
const values = fc.constantFrom('Bay 3', 'Bay 7', 'High', 'Extreme', '');
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('set' as const), name: names, value: values }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('sets' as const), entries: fc.array(fc.tuple(names, values), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('remove' as const), name: names }) },
  { weight: 3, arbitrary: fc.constant({ t: 'event' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reset' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('apply' as const), mode: fc.constantFrom('replace' as const, 'append' as const) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'disconnect' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'connect' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'ready' as const }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('toAgent' as const), n: fc.integer({ min: 1, max: 4 }), dup: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('toClient' as const), n: fc.integer({ min: 1, max: 4 }), dup: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ t: 'settle' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'drop' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'tick' as const }) },
);

describe('dynamic context sync (property)', () => {
  it('the agent ends with the client canonical context; no op lost or applied twice', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { maxLength: 80 }), fc.constantFrom('cold', 'ready', 'linked'), async (cmds, start) => {
        const h = new Harness();
        if (start !== 'cold') await h.receiver.markReady();
        if (start === 'linked') {
          h.connect();
          h.settle();
        }
        let eventNo = 0;
        for (const c of cmds) {
          switch (c.t) {
            case 'set':
              h.publisher.setState(c.name, c.value);
              break;
            case 'sets':
              h.publisher.setStates(c.entries);
              break;
            case 'remove':
              h.publisher.removeState(c.name);
              break;
            case 'event':
              h.publisher.addEvent(`event ${++eventNo}`);
              break;
            case 'reset':
              h.publisher.reset();
              break;
            case 'apply':
              h.publisher.apply('raw text', c.mode);
              break;
            case 'disconnect':
              if (h.up) h.disconnect();
              break;
            case 'connect':
              if (!h.up) h.connect();
              break;
            case 'ready':
              await h.receiver.markReady();
              break;
            case 'toAgent':
              for (let i = 0; i < c.n; i++) h.deliverToAgent(c.dup);
              break;
            case 'toClient':
              for (let i = 0; i < c.n; i++) h.deliverToClient(c.dup);
              break;
            case 'drop': // one packet lost without a disconnect (e.g. no handler yet)
              h.toAgent.shift();
              break;
            case 'settle':
              h.settle();
              break;
            case 'tick':
              h.timers.advance(2_000);
              break;
          }
        }
        if (!h.up) h.connect();
        await h.receiver.markReady();
        h.settle();
        h.timers.advance(5_000); // hello retries and rate-limit retries, if any
        h.settle();

        expect(h.receiver.canonicalText()).toBe(h.publisher.canonicalText());
        expect(h.publisher.unackedRevisions()).toEqual([]);
        // No op applied twice: applied revisions strictly increase.
        const applied = h.results.flatMap((r) => (r.ok && r.kind === 'op' && r.rev !== undefined ? [r.rev] : []));
        for (let i = 1; i < applied.length; i++) expect(applied[i]!).toBeGreaterThan(applied[i - 1]!);
        // Events are unique texts: each appears at most once on the agent.
        const events = h.receiver.snapshot().events;
        expect(new Set(events).size).toBe(events.length);
        // The sink's final view carries every state line of the canonical context (raw apply
        // text bypasses the tracker and may replace it, so only without apply).
        await h.receiver.flush();
        if (!cmds.some((c) => c.t === 'apply'))
          for (const s of h.receiver.snapshot().states) expect(h.sink.view().split('\n')).toContain(`${s.name} is ${s.value}`);
      }),
      { numRuns: 1000, seed: 4242 },
    );
  });

  it('coalescing never changes the view (random update runs, random flush points)', () => {
    const update: fc.Arbitrary<ContextUpdate> = fc.oneof(
      fc.record({ mode: fc.constant('append' as const), text: fc.constantFrom('a', 'b', 'c\nd', 'e') }),
      fc.record({ mode: fc.constant('replace' as const), text: fc.constantFrom('', 'X', 'Y\nZ') }),
      fc.constant({ mode: 'reset' as const, text: '' }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(update, { maxLength: 12 }), { maxLength: 8 }), fc.integer({ min: 1, max: 4 }), (runs, maxUpdates) => {
        const direct = new MemoryContextSink(maxUpdates);
        const coalesced = new MemoryContextSink(maxUpdates);
        for (const run of runs) {
          for (const u of run) write(direct, u);
          for (const u of coalesceUpdates(run)) write(coalesced, u);
          expect(coalesced.view()).toBe(direct.view());
          expect(coalesced.writes).toBeLessThanOrEqual(direct.writes);
        }
      }),
      { numRuns: 1000, seed: 7 },
    );
  });
});

function write(sink: MemoryContextSink, u: ContextUpdate): void {
  if (u.mode === 'replace') sink.replace(u.text);
  else if (u.mode === 'append') sink.append(u.text);
  else sink.reset();
}
