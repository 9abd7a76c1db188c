/**
 * Heap settling for pre-warmed job processes. Pre-warming (module loading, the store warm-up)
 * leaves its garbage and its young objects behind; the job that follows would pay for them in
 * its first collections, while it connects and greets. One full collection at the end of
 * pre-warming moves that cost before the job.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Runs one full garbage collection. `global.gc` exists only with `--expose-gc`; the flag is set
 * for a moment to take the function from a new context, then unset again. Returns false when the
 * runtime offers no way to collect (nothing happens then).
 */
export function collectGarbage(): boolean {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') {
    exposed();
    return true;
  }
  setFlagsFromString('--expose-gc');
  try {
    const gc = runInNewContext('typeof gc === "function" ? gc : undefined') as (() => void) | undefined;
    if (gc === undefined) return false;
    gc();
    return true;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
