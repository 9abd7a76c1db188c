import { SessionError, StoreUnavailableError } from '../errors.js';

/** Rejects with `store_timeout` after `ms`; the late outcome of `p` is swallowed. */
export function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  p.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreUnavailableError('shared store did not answer in time', undefined, 'store_timeout')), ms);
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

