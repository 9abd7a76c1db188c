import { SessionError, StoreUnavailableError } from '../errors.js';

/**
 * `p`, or a rejection after `ms` (`store_timeout`, or `timedOut()` when given); the late outcome
 * of `p` is swallowed.
 */
export function bounded<T>(p: Promise<T>, ms: number, timedOut: () => Error = () => new StoreUnavailableError('shared store did not answer in time', undefined, 'store_timeout')): Promise<T> {
  p.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timedOut()), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** True for errors that mean the store did not answer (unavailable or timed out). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof SessionError && (err.code === 'store_unavailable' || err.code === 'store_timeout');
}

