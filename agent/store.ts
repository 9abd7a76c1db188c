/**
 * Builds a job's session store: the tiered store (this job's memory first, Redis as the shared
 * tier when `REDIS_URL` or `REDIS_SENTINELS` is set), with the configured windows and optional
 * encryption.
 */
import { randomUUID } from 'node:crypto';
import { systemClock } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import type { SessionPolicy } from '../lib/session/policy.js';
import { AgentLiveness } from '../lib/store/agent_liveness.js';
import { PayloadCipher } from '../lib/store/crypto.js';
import { MemorySessionStore } from '../lib/store/memory_session_store.js';
import { redisTarget, type RedisTarget } from '../lib/store/redis_connection.js';
import { RedisSessionStore } from '../lib/store/redis_session_store.js';
import { SessionNotices } from '../lib/store/session_notices.js';
import { TieredSessionStore } from '../lib/store/tiered_session_store.js';
import { historyToChatContext } from './chat_history.js';
import type { Config } from './config.js';
import { JobMetrics } from './metrics.js';
import { ParticipantSession } from './participant_session.js';

/** The stores of one job. */
export interface JobStores {
  store: TieredSessionStore;
  /** Takeover / forget notices; undefined in memory-only mode (no other job can hold the session). */
  notices: SessionNotices | undefined;
  /** The job's liveness beats (`lib/store/agent_liveness.ts`); undefined in memory-only mode or with beats off. */
  liveness: AgentLiveness | undefined;
}

/** Creates the job's stores (no I/O yet; see {@link warmUp}). */
export function createJobStores(config: Config, logger: Logger): JobStores {
  const windows = { sessionTtlMs: config.policy.sessionTtlMs, profileTtlMs: config.policy.profileTtlMs };
  const cipher = config.encryptionKeys ? new PayloadCipher(config.encryptionKeys) : undefined;
  const common = { ...windows, ...config.archive, ...(cipher ? { cipher } : {}) };
  const redis = config.redis;
  // One Redis (`url`), a Sentinel group (`sentinel`, followed through failovers) or a Cluster.
  const target: RedisTarget | undefined = redis === undefined ? undefined : redisTarget(redis);
  const prefix = redis?.keyPrefix ?? 'pva:';
  const shared = target ? new RedisSessionStore({ ...target, prefix, logger, ...config.replicaAcks, ...common }) : null;
  const store = new TieredSessionStore({
    shared,
    memory: new MemorySessionStore(common),
    greetingBoundMs: config.greetingBoundMs,
    logger,
  });
  const notices = target ? new SessionNotices({ ...target, prefix, logger }) : undefined;
  const liveness = target && config.livenessTtlMs > 0 ? new AgentLiveness({ target, prefix, logger }) : undefined;
  return { store, notices, liveness };
}

/**
 * Runs in `prewarm`, before any job: opens the Redis connections (the store's, the notices', the
 * liveness beats'; bounded; failure means degraded, not fatal) and runs a whole arrival twice
 * (first visit with turns, suspend, then a resume) through `ParticipantSession` on a scratch
 * memory-only tiered store, so the first arrival in this process does not pay for compiling that
 * code while its job connects, then reads that scratch key from the shared tier once. Nothing is
 * written to Redis and no metric is reported.
 */
export async function warmUp(stores: JobStores, policy: SessionPolicy): Promise<void> {
  await Promise.all([stores.store.ping(), stores.notices?.connect(), stores.liveness?.connect()].map((p) => p?.catch(() => undefined)));
  const scratch = new TieredSessionStore({ shared: null, memory: new MemorySessionStore() });
  const key = { agentName: '__warmup__', identity: '__warmup__' };
  const visit = () =>
    new ParticipantSession({ store: scratch, key, ownerId: `warmup-${randomUUID()}`, policy, clock: systemClock, logger: silentLogger, metrics: new JobMetrics('') });
  try {
    const first = visit();
    await first.arrive();
    for (let i = 0; i < 4; i++) first.persistTurn({ id: `w${i}`, role: i % 2 ? 'assistant' : 'user', text: 'warm-up turn', createdAtMs: Date.now() + i });
    await first.suspend('client_initiated');
    first.dispose();
    const again = visit();
    const arrival = await again.arrive();
    if (arrival.record) historyToChatContext(arrival.record.history);
    await again.drain();
    again.dispose();
  } finally {
    await scratch.dispose();
  }
  // The shared tier's read path (script call, reply parsing, decoding) once, read only.
  await stores.store.readRecord(key).catch(() => undefined);
}
