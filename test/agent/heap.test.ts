import { setImmediate as nextTask } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../agent/heap.js';

/** A weak reference to a large object nothing else holds. */
function garbage(): WeakRef<object> {
  return new WeakRef(Array.from({ length: 200_000 }, (_, i) => ({ i, s: `item ${i}` })));
}

describe('collectGarbage', () => {
  it('runs a full collection (garbage is reclaimed) and leaves gc unexposed afterwards', async () => {
    const ref = garbage();
    // A WeakRef keeps its target alive until the current task ends.
    await nextTask();
    expect(collectGarbage()).toBe(true);
    expect(ref.deref()).toBeUndefined();
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });
});
