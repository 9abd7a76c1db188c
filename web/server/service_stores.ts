/**
 * What the token service keeps, and where: the device store (the identities it issued and their
 * rooms), the session eraser ("Forget me": the worker's session store and its notices) and the
 * session exporter ("Download my data": the same store, with the worker's keyring). With
 * a Redis configured (`redisUrl`, or `redisSentinel` whose master is asked of the sentinels and
 * followed through failovers) both live there, shared by every service process and the workers;
 * without one, devices are kept in this process's memory and there is nothing to erase or export.
 */
import { ConfigError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { AgentLiveness } from '../../lib/store/agent_liveness.js';
import type { RedisTarget } from '../../lib/store/redis_connection.js';
import { PayloadCipher } from '../../lib/store/crypto.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import type { SessionSnapshot } from '../../lib/store/session_store.js';
import { SessionNotices, forgetIdentity } from '../../lib/store/session_notices.js';
import type { WebConfig } from './config.js';
import { MemoryDeviceStore, RedisDeviceStore, type DeviceStore } from './device_store.js';
import type { DispatchGate } from './agent_dispatch.js';
import { MemoryDispatchGate, RedisDispatchGate } from './dispatch_gate.js';
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from './rate_limiter.js';
import { MemorySeenEvents, RedisSeenEvents, type SeenEvents } from './seen_events.js';
import { MemoryRoomRechecks, RedisRoomRechecks, type RoomRechecks } from './room_rechecks.js';

/** Per-command bound of the session store used to forget an identity, ms (a forget scans every agent's keys). */
export const ERASER_COMMAND_TIMEOUT_MS = 2_000;

/** Erases an identity's conversations (the session store's `forget`). */
export interface SessionEraser {
  forget(identity: string): Promise<{ sessionKeysErased: number }>;
}

/** Reads everything stored for an identity (the session store's `exportIdentity`). */
export interface SessionExporter {
  exportIdentity(identity: string): Promise<SessionSnapshot[]>;
}

/** The stores a running service uses. */
export interface ServiceStores {
  devices: DeviceStore;
  /** `null`: nothing to erase (no shared session store). */
  eraser: SessionEraser | null;
  /** `null`: nothing to export (no shared session store). */
  exporter: SessionExporter | null;
  /**
   * A rate limit named `name` (`perWindow` events per `windowMs` per key): in the device store's
   * Redis when it has one, so every service process shares the count; else in this process.
   */
  limiter(name: string, perWindow: number, windowMs: number): RateLimiter;
  /** One agent dispatch decision per room at a time: in the device store's Redis when it has one, else in this process. */
  dispatchGate: DispatchGate;
  /** The jobs' liveness beats, in the device store's Redis (the workers' Redis); null without one. */
  liveness: AgentLiveness | null;
  /** LiveKit webhook events `agentName`'s service already acted on: in the device store's Redis when it has one, else in this process. */
  seenEvents(agentName: string): SeenEvents;
  /** The join checks of `agentName`'s rooms: in the device store's Redis when it has one (shared, kept across restarts), else in this process. */
  roomRechecks(agentName: string): RoomRechecks;
  /** True when devices are shared (Redis, or a store handed in), false when in this process's memory. */
  isShared: boolean;
  /** How the created Redis clients reach Redis; `null` without a Redis configured. */
  redis: 'url' | 'sentinel' | 'cluster' | null;
  /** Closes what was created here; parts handed in are left open. */
  close(): Promise<void>;
}

/**
 * The Redis the configuration names, if any.
 * @throws ConfigError when more than one of `redisUrl`, `redisSentinel` and `redisCluster` is given.
 */
export function serviceRedisTarget(config: Pick<WebConfig, 'redisUrl' | 'redisSentinel' | 'redisCluster'> & Partial<Pick<WebConfig, 'redisTls'>>): RedisTarget | undefined {
  const given = [config.redisUrl, config.redisSentinel, config.redisCluster].filter((v) => v !== undefined).length;
  if (given > 1) throw new ConfigError('redisUrl, redisSentinel and redisCluster are mutually exclusive (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)');
  if (config.redisUrl !== undefined) return config.redisTls === undefined ? { url: config.redisUrl } : { url: config.redisUrl, tls: config.redisTls };
  if (config.redisSentinel !== undefined) return { sentinel: config.redisSentinel };
  if (config.redisCluster !== undefined) return { cluster: config.redisCluster };
  return undefined;
}

/** Parts handed in instead of created (tests, embedding). */
export interface InjectedStores {
  deviceStore?: DeviceStore;
  /** `null`: no eraser even with a Redis. */
  sessionEraser?: SessionEraser | null;
  /** `null`: no exporter even with a Redis. */
  sessionExporter?: SessionExporter | null;
}

/** Creates the stores of {@link ServiceStores} (no I/O yet: clients connect in the background). */
export function createServiceStores(
  config: Pick<WebConfig, 'redisUrl' | 'redisSentinel' | 'redisCluster' | 'redisTls' | 'redisKeyPrefix' | 'replicaAcks'> & Partial<Pick<WebConfig, 'encryptionKeys' | 'sessionTtlMs'>>,
  injected: InjectedStores,
  log: Logger,
  nowMs: () => number,
): ServiceStores {
  const target = serviceRedisTarget(config);
  const prefix = config.redisKeyPrefix;
  const owned: Array<() => Promise<void>> = [];

  let devices: DeviceStore;
  if (injected.deviceStore) devices = injected.deviceStore;
  else if (target) {
    const d = new RedisDeviceStore({ ...target, prefix, ...config.replicaAcks });
    owned.push(() => d.close());
    devices = d;
  } else devices = new MemoryDeviceStore(nowMs);

  // The worker's session store, for the eraser and the exporter not handed in.
  let sessions: RedisSessionStore | undefined;
  if (target && (injected.sessionEraser === undefined || injected.sessionExporter === undefined)) {
    const cipher = config.encryptionKeys === undefined ? undefined : new PayloadCipher(config.encryptionKeys);
    const s = new RedisSessionStore({ ...target, prefix, commandTimeoutMs: ERASER_COMMAND_TIMEOUT_MS, logger: log, sessionTtlMs: config.sessionTtlMs, ...config.replicaAcks, ...(cipher === undefined ? {} : { cipher }) });
    owned.push(() => s.dispose());
    sessions = s;
  }

  let eraser: SessionEraser | null;
  if (injected.sessionEraser !== undefined) eraser = injected.sessionEraser;
  else if (target && sessions) {
    const s = sessions;
    const notices = new SessionNotices({ ...target, prefix, logger: log });
    owned.push(() => notices.close());
    eraser = { forget: (identity) => forgetIdentity(s, notices, identity) };
  } else eraser = null;

  const exporter: SessionExporter | null = injected.sessionExporter !== undefined ? injected.sessionExporter : (sessions ?? null);

  return {
    devices,
    eraser,
    exporter,
    limiter: (name, perWindow, windowMs) =>
      devices instanceof RedisDeviceStore ? new RedisRateLimiter(devices.client, devices.keys.prefix, name, perWindow, windowMs) : new MemoryRateLimiter(perWindow, windowMs),
    dispatchGate: devices instanceof RedisDeviceStore ? new RedisDispatchGate(devices.client, devices.keys.prefix) : new MemoryDispatchGate(),
    liveness: devices instanceof RedisDeviceStore ? new AgentLiveness({ client: devices.client, prefix: devices.keys.prefix, logger: log }) : null,
    seenEvents: (agentName) => (devices instanceof RedisDeviceStore ? new RedisSeenEvents(devices.client, devices.keys.prefix, agentName) : new MemorySeenEvents(nowMs)),
    roomRechecks: (agentName) => (devices instanceof RedisDeviceStore ? new RedisRoomRechecks(devices.client, devices.keys.prefix, agentName) : new MemoryRoomRechecks(nowMs)),
    isShared: target !== undefined || injected.deviceStore !== undefined,
    redis: target === undefined ? null : target.cluster !== undefined ? 'cluster' : target.sentinel !== undefined ? 'sentinel' : 'url',
    close: async () => {
      for (const c of owned) await c().catch(() => {});
    },
  };
}
