/**
 * The project's one small error hierarchy. Expected outcomes ("no record", "expired") are
 * values, not exceptions; these are for faults and refused input.
 */

/** Machine-readable error codes. */
export type SessionErrorCode =
  | 'config_invalid'
  | 'store_unavailable'
  | 'store_timeout'
  | 'version_conflict'
  | 'lease_lost'
  | 'record_invalid'
  | 'record_tampered'
  | 'input_invalid'
  | 'resume_failed'
  | 'internal';

/** Base error: a code, whether retrying may help, and the underlying cause. */
export class SessionError extends Error {
  readonly code: SessionErrorCode;
  readonly retryable: boolean;
  constructor(code: SessionErrorCode, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** Configuration (environment, options) is missing or invalid. Message names the variable. */
export class ConfigError extends SessionError {
  constructor(message: string, cause?: unknown) {
    super('config_invalid', message, { cause });
  }
}

/** The shared store could not be reached or did not answer in time. */
export class StoreUnavailableError extends SessionError {
  constructor(message: string, cause?: unknown, code: 'store_unavailable' | 'store_timeout' = 'store_unavailable') {
    super(code, message, { retryable: true, cause });
  }
}

/** A compare-and-set lost: someone wrote a newer version, or the lease moved. */
export class ConflictError extends SessionError {
  constructor(code: 'version_conflict' | 'lease_lost', message: string) {
    super(code, message, { retryable: false });
  }
}

/** Caller input was rejected; nothing changed. */
export class InvalidInputError extends SessionError {
  constructor(message: string, cause?: unknown) {
    super('input_invalid', message, { cause });
  }
}
