import { describe, expect, it } from 'vitest';
import { RecordingLogger } from '../../../lib/logger.js';
import { MAX_CONTEXT_BYTES, MAX_EVENTS, MAX_STATES } from '../../../lib/context/limits.js';
import { ContextTracker, type TrackerResult } from '../../../lib/context/tracker.js';

function updates(r: TrackerResult) {
  if (!r.ok) throw new Error(`rejected: ${r.reason}`);
  return r.updates;
}

const active = () => new ContextTracker({ active: true });

describe('seed 001: canonical context format', () => {
  it('keeps states in first-set order across updates, events after them in call order', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    t.setState('HazardLevel', 'High');
    t.addEvent('Operator bypassed interlock');
    t.setState('Station', 'Bay 7');
    expect(t.canonicalText()).toBe('Station is Bay 7\nHazardLevel is High\nOperator bypassed interlock');
  });

  it('lists events in call order even when interleaved with state changes', () => {
    const t = active();
    t.addEvent('first');
    t.setState('A', '1');
    t.addEvent('second');
    expect(t.canonicalText()).toBe('A is 1\nfirst\nsecond');
  });
});

describe('seed 001: sync scenarios during an active conversation', () => {
  it('adding a new state sends one Append with its line', () => {
    expect(updates(active().setState('Station', 'Bay 3'))).toEqual([{ mode: 'append', text: 'Station is Bay 3' }]);
  });

  it('updating an existing state sends a Replace (full canonical) then an Append (the change)', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    t.setState('HazardLevel', 'High');
    expect(updates(t.setState('Station', 'Bay 7'))).toEqual([
      { mode: 'replace', text: 'Station is Bay 7\nHazardLevel is High' },
      { mode: 'append', text: 'Station changed from Bay 3 to Bay 7' },
    ]);
  });

  it('removing a state sends one Replace without it', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    t.setState('HazardLevel', 'High');
    expect(updates(t.removeState('Station'))).toEqual([{ mode: 'replace', text: 'HazardLevel is High' }]);
    expect(t.tryGetStateValue('Station')).toEqual({ found: false });
  });

  it('setStates with an existing state sends Replace then Append summarising all changes (new lines in batch order)', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    expect(updates(t.setStates({ Station: 'Bay 7', HazardLevel: 'Extreme' }))).toEqual([
      { mode: 'replace', text: 'Station is Bay 7\nHazardLevel is Extreme' },
      { mode: 'append', text: 'Station changed from Bay 3 to Bay 7\nHazardLevel is Extreme' },
    ]);
  });

  it('setStates with only new states sends one Append of all new lines, no Replace', () => {
    const t = active();
    expect(updates(t.setStates({ Station: 'Bay 3', HazardLevel: 'High' }))).toEqual([
      { mode: 'append', text: 'Station is Bay 3\nHazardLevel is High' },
    ]);
  });

  it('adding an event sends one Append and never a Replace', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    expect(updates(t.addEvent('Operator bypassed interlock'))).toEqual([
      { mode: 'append', text: 'Operator bypassed interlock' },
    ]);
  });

  it('reset sends one Reset and empties the tracker', () => {
    const t = active();
    t.setState('Station', 'Bay 3');
    t.addEvent('e');
    expect(updates(t.reset())).toEqual([{ mode: 'reset', text: '' }]);
    expect(t.canonicalText()).toBe('');
    expect(t.tryGetStateValue('Station')).toEqual({ found: false });
  });
});

describe('seed 001: pre-conversation queuing', () => {
  it('queues every tracked op before start and flushes ONE Replace of the canonical context at that moment', () => {
    const t = new ContextTracker();
    for (const r of [t.setState('Station', 'Bay 3'), t.setState('HazardLevel', 'High'), t.addEvent('Operator bypassed interlock')]) {
      expect(r).toMatchObject({ ok: true, queued: true, updates: [] });
    }
    t.setState('Station', 'Bay 7');
    t.removeState('HazardLevel');
    expect(t.pending).toBe('sync');
    expect(t.start()).toEqual([{ mode: 'replace', text: 'Station is Bay 7\nOperator bypassed interlock' }]);
    expect(t.isActive).toBe(true);
  });

  it('flushes a pending reset as ONE Reset', () => {
    const t = active();
    t.setState('A', '1');
    t.stop();
    t.reset();
    expect(t.start()).toEqual([{ mode: 'reset', text: '' }]);
  });

  it('a pending reset takes priority and clears the queue, including changes made after it (with a warning)', () => {
    const log = new RecordingLogger();
    const t = new ContextTracker({ logger: log });
    t.setState('Before', '1');
    t.reset();
    t.setState('After', '2');
    t.addEvent('later event');
    expect(t.pending).toBe('reset');
    expect(t.tryGetStateValue('After')).toEqual({ found: true, value: '2' }); // visible until the flush
    expect(t.start()).toEqual([{ mode: 'reset', text: '' }]);
    expect(t.canonicalText()).toBe('');
    expect(t.tryGetStateValue('After')).toEqual({ found: false });
    expect(log.lines).toContainEqual(expect.objectContaining({ level: 'warn', fields: { discardedChanges: 2 } }));
  });

  it('flushes nothing when nothing was queued', () => {
    expect(new ContextTracker().start()).toEqual([]);
  });

  it('queues again after stop and flushes one Replace on the next start', () => {
    const t = active();
    t.setState('A', '1');
    t.stop();
    t.setState('A', '2');
    t.addEvent('x');
    expect(t.start()).toEqual([{ mode: 'replace', text: 'A is 2\nx' }]);
  });
});

describe('seed 001: apply', () => {
  it('is dropped with a warning when no conversation is active, and nothing queues', () => {
    const log = new RecordingLogger();
    const t = new ContextTracker({ logger: log });
    expect(t.apply('Raw', 'append')).toEqual({ ok: false, reason: 'apply_inactive' });
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(t.pending).toBe('none');
    expect(t.start()).toEqual([]);
  });

  it('is sent as given while active', () => {
    const t = active();
    expect(updates(t.apply('Weather is Rain', 'replace'))).toEqual([{ mode: 'replace', text: 'Weather is Rain' }]);
    expect(updates(t.apply('note', 'append'))).toEqual([{ mode: 'append', text: 'note' }]);
    expect(updates(t.apply('ignored', 'reset'))).toEqual([{ mode: 'reset', text: '' }]);
  });

  it('never touches the tracker: tryGetStateValue is false for keys sent with apply', () => {
    const t = active();
    t.apply('Weather is Rain', 'append');
    expect(t.tryGetStateValue('Weather')).toEqual({ found: false });
    expect(t.canonicalText()).toBe('');
  });
});

describe('edge cases', () => {
  it('setting the same value again changes nothing and sends nothing', () => {
    const t = active();
    t.setState('A', '1');
    expect(t.setState('A', '1')).toEqual({ ok: true, changed: false, queued: false, updates: [] });
    const q = new ContextTracker();
    q.setState('A', '1');
    q.start();
    q.stop();
    q.setState('A', '1');
    expect(q.pending).toBe('none');
  });

  it('removing an unknown state changes nothing and sends nothing', () => {
    expect(active().removeState('nope')).toMatchObject({ ok: true, changed: false, updates: [] });
  });

  it('rejects blank names, control characters and over-long values, changing nothing', () => {
    const t = active();
    expect(t.setState('', 'x')).toEqual({ ok: false, reason: 'empty_name' });
    expect(t.setState('  ', 'x')).toEqual({ ok: false, reason: 'empty_name' });
    expect(t.setState('A', 'line\nbreak')).toEqual({ ok: false, reason: 'control_character' });
    expect(t.setState('A', 'x'.repeat(5000))).toEqual({ ok: false, reason: 'value_too_long' });
    expect(t.addEvent('')).toEqual({ ok: false, reason: 'empty_event' });
    expect(t.canonicalText()).toBe('');
  });

  it('allows an empty value', () => {
    expect(updates(active().setState('Mood', ''))).toEqual([{ mode: 'append', text: 'Mood is ' }]);
  });

  it('a setStates batch is atomic, dedupes names (last value, first position) and skips unchanged entries', () => {
    const t = active();
    t.setState('A', '1');
    expect(t.setStates([['B', '2'], ['', 'bad']])).toEqual({ ok: false, reason: 'empty_name' });
    expect(t.tryGetStateValue('B')).toEqual({ found: false });
    expect(updates(t.setStates([['B', '2'], ['A', '1'], ['B', '3']]))).toEqual([{ mode: 'append', text: 'B is 3' }]);
  });

  it('keeps integer-like names in the given order with the array form', () => {
    const t = active();
    t.setStates([['b', '1'], ['2', 'x']]);
    expect(t.canonicalText()).toBe('b is 1\n2 is x');
  });

  it('bounds the number of states', () => {
    const t = active();
    for (let i = 0; i < MAX_STATES; i++) expect(t.setState(`s${i}`, 'v').ok).toBe(true);
    expect(t.setState('one-more', 'v')).toEqual({ ok: false, reason: 'too_many_states' });
    expect(t.setState('s0', 'edit').ok).toBe(true);
  });

  it('keeps at most MAX_EVENTS events, dropping the oldest', () => {
    const t = active();
    for (let i = 0; i < MAX_EVENTS + 5; i++) t.addEvent(`e${i}`);
    const events = t.content().events;
    expect(events).toHaveLength(MAX_EVENTS);
    expect(events[0]).toBe('e5');
  });

  it('bounds the encoded context size', () => {
    const t = active();
    let i = 0;
    while (t.setState(`k${i}`, 'v'.repeat(1000)).ok) i++;
    expect(t.setState(`k${i}`, 'v'.repeat(1000))).toEqual({ ok: false, reason: 'context_too_large' });
    expect(t.contentBytes).toBeLessThanOrEqual(MAX_CONTEXT_BYTES);
    t.addEvent('x'.repeat(1000)); // events make room for themselves by dropping older events
    expect(t.contentBytes).toBeLessThanOrEqual(MAX_CONTEXT_BYTES);
  });

  it('reset on an empty tracker still sends its Reset', () => {
    expect(updates(active().reset())).toEqual([{ mode: 'reset', text: '' }]);
  });

  it('load is idempotent and authoritative', () => {
    const t = active();
    const content = { states: [{ name: 'A', value: '1' }], events: ['e'] };
    expect(updates(t.load(content))).toEqual([{ mode: 'replace', text: 'A is 1\ne' }]);
    expect(updates(t.load(content))).toEqual([]);
    expect(updates(t.load({ states: [], events: [] }))).toEqual([{ mode: 'replace', text: '' }]);
    expect(t.load({ states: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }], events: [] })).toEqual({
      ok: false,
      reason: 'duplicate_name',
    });
  });

  it('a queued load that nets to an empty context flushes as a Replace with empty text, unless a reset is pending', () => {
    const t = active();
    t.setState('A', '1');
    t.stop();
    t.load({ states: [], events: [] });
    expect(t.pending).toBe('sync');
    expect(t.start()).toEqual([{ mode: 'replace', text: '' }]);
    const r = new ContextTracker();
    r.reset();
    r.load({ states: [], events: [] });
    expect(r.start()).toEqual([{ mode: 'reset', text: '' }]);
  });

  it('refuses the line breaks U+2028, U+2029 and U+0085 in names, values and events, changing nothing', () => {
    const t = active();
    for (const br of ['\u2028', '\u2029', '\u0085']) {
      expect(t.setState('Station', `Bay 3${br}HazardLevel is None`)).toEqual({ ok: false, reason: 'control_character' });
      expect(t.setState(`Station${br}HazardLevel`, 'None')).toEqual({ ok: false, reason: 'control_character' });
      expect(t.setStates([['A', '1'], ['B', `x${br}y`]])).toEqual({ ok: false, reason: 'control_character' });
      expect(t.addEvent(`Operator left${br}HazardLevel is None`)).toEqual({ ok: false, reason: 'control_character' });
    }
    expect(t.canonicalText()).toBe('');
  });

  it('refuses a setStates batch of more than MAX_STATES entries, even with duplicate names, changing nothing', () => {
    const t = active();
    const batch = Array.from({ length: MAX_STATES + 1 }, (_, i) => [`s${i % 3}`, 'v'] as const);
    expect(t.setStates(batch)).toEqual({ ok: false, reason: 'too_many_states' });
    expect(t.stateCount).toBe(0);
    expect(updates(t.setStates(batch.slice(0, MAX_STATES)))).toEqual([{ mode: 'append', text: 's0 is v\ns1 is v\ns2 is v' }]);
  });

  it('with keepChangesAfterPendingReset, a reset followed by changes flushes ONE Replace of the result', () => {
    const t = new ContextTracker({ keepChangesAfterPendingReset: true });
    t.setState('Before', '1');
    t.reset();
    t.setState('After', '2');
    t.addEvent('later event');
    expect(t.start()).toEqual([{ mode: 'replace', text: 'After is 2\nlater event' }]);
    expect(t.canonicalText()).toBe('After is 2\nlater event');
    const alone = new ContextTracker({ keepChangesAfterPendingReset: true });
    alone.setState('Before', '1');
    alone.reset();
    expect(alone.start()).toEqual([{ mode: 'reset', text: '' }]);
  });

  it('a load while inactive supersedes a pending reset', () => {
    const t = new ContextTracker();
    t.reset();
    t.load({ states: [{ name: 'A', value: '1' }], events: [] });
    expect(t.start()).toEqual([{ mode: 'replace', text: 'A is 1' }]);
  });
});
