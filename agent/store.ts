/**
 * Builds a job's session store: the tiered store (this job's memory first, Redis as the shared
 * tier when `REDIS_URL` is set), with the configured windows and optional encryption.
 */
import type { Logger } from '../lib/logger.js';
import { PayloadCipher } from '../lib/store/crypto.js';
import { MemorySessionStore } from '../lib/store/memory_session_store.js';
import { RedisSessionStore } from '../lib/store/redis_session_store.js';
import { SessionNotices } from '../lib/store/session_notices.js';
import { TieredSessionStore } from '../lib/store/tiered_session_store.js';
import type { Config } from './config.js';

/** The stores of one job. */
export interface JobStores {
  store: TieredSessionStore;
  /** Takeover / forget notices; undefined in memory-only mode (no other job can hold the session). */
  notices: SessionNotices | undefined;
}

/** Creates the job's stores (no I/O yet; see {@link warmUp}). */
export function createJobStores(config: Config, logger: Logger): JobStores {
  const windows = { sessionTtlMs: config.policy.sessionTtlMs, profileTtlMs: config.policy.profileTtlMs };
  const cipher = config.encryptionKeys ? new PayloadCipher(config.encryptionKeys) : undefined;
  const common = { ...windows, ...(cipher ? { cipher } : {}) };
  const shared = config.redis
    ? new RedisSessionStore({ url: config.redis.url, prefix: config.redis.keyPrefix, logger, ...common })
    : null;
  const store = new TieredSessionStore({
    shared,
    memory: new MemorySessionStore(common),
    greetingBoundMs: config.greetingBoundMs,
    logger,
  });
  const notices = config.redis ? new SessionNotices({ url: config.redis.url, prefix: config.redis.keyPrefix, logger }) : undefined;
  return { store, notices };
}

/** Opens the Redis connection ahead of the first arrival (bounded; failure means degraded, not fatal). */
export async function warmUp(stores: JobStores): Promise<void> {
  await stores.store.ping().catch(() => undefined);
}
