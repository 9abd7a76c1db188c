/**
 * The audit archive's retention, from the environment: how long closed, suspended and expired
 * conversations are kept after they end (`ARCHIVE_TTL_MS`) and how many per session key
 * (`ARCHIVE_MAX_COUNT`, oldest dropped first). Read by every process that writes or reads the
 * archive (the worker, `npm run sessions`), so that they agree on what is still within retention.
 * A deployment's privacy policy decides both: shorter keeps less, never less than the live
 * conversation (the session TTL governs that).
 */
import { readInt } from '../session/policy.js';
import { DEFAULT_ARCHIVE_MAX_COUNT, DEFAULT_ARCHIVE_TTL_MS } from './session_store.js';

/** The archive options of a store. */
export interface ArchiveOptions {
  archiveTtlMs: number;
  archiveMaxCount: number;
}

/**
 * `ARCHIVE_TTL_MS` (default 7 days) and `ARCHIVE_MAX_COUNT` (default 20), each a whole number >= 1.
 * @throws ConfigError naming the variable when a value is malformed.
 */
export function archiveOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): ArchiveOptions {
  return {
    archiveTtlMs: readInt(env, 'ARCHIVE_TTL_MS', DEFAULT_ARCHIVE_TTL_MS, 1),
    archiveMaxCount: readInt(env, 'ARCHIVE_MAX_COUNT', DEFAULT_ARCHIVE_MAX_COUNT, 1),
  };
}
