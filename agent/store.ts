/**
 * Builds a job's session store: the tiered store (this job's memory first, Redis as the shared
 * tier when `REDIS_URL` is set), with the configured windows and optional encryption.
 */
import type { Logger } from '../lib/logger.js';
import { chooseGreeting, renderGreeting } from '../lib/session/greeting.js';
import { appendTurns, emptyHistory } from '../lib/session/history.js';
import type { SessionPolicy } from '../lib/session/policy.js';
import { newSessionRecord, type Turn } from '../lib/session/record.js';
import { decideResume } from '../lib/session/resume_policy.js';
import { decodeStoredRecord, encodeStoredRecord } from '../lib/store/record_wire.js';
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

/**
 * Runs in `prewarm`, before any job: opens the Redis connection (bounded; failure means
 * degraded, not fatal) and runs the claim → decode → decide → greet code once on a scratch
 * memory store, so the first arrival in this process does not pay for compiling it.
 */
export async function warmUp(stores: JobStores, policy: SessionPolicy): Promise<void> {
  await Promise.all([stores.store.ping().catch(() => undefined), stores.notices?.connect().catch(() => undefined)]);
  const scratch = new MemorySessionStore();
  try {
    const key = { agentName: '__warmup__', identity: '__warmup__' };
    const nowMs = Date.now();
    const first = await scratch.resumeAndClaim(key, 'warmup', nowMs, 1_000);
    if (first.status !== 'claimed') return;
    const turns: Turn[] = [0, 1, 2, 3].map((i) => ({ id: `w${i}`, role: i % 2 ? 'assistant' : 'user', text: 'warm-up turn', createdAtMs: nowMs + i }));
    const record = { ...newSessionRecord({ ...key, sessionId: 'warmup', nowMs, profile: null }), history: appendTurns(emptyHistory(), turns) };
    await scratch.save(record, first.version, first.lease);
    decodeStoredRecord(encodeStoredRecord(record));
    const again = await scratch.resumeAndClaim(key, 'warmup', nowMs, 1_000);
    if (again.status !== 'claimed' || again.record.status !== 'found') return;
    const decision = decideResume({ record: again.record.record, profile: again.profile, policy, reason: null, nowMs, storeAvailable: true });
    renderGreeting(chooseGreeting(decision, again.record.record, again.profile, nowMs));
  } finally {
    await scratch.dispose();
  }
}
