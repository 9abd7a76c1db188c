import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { SessionError } from '../errors.js';

/**
 * How the Redis adapters reach Redis when they create their own client: a URL (one Redis) or a
 * Sentinel group (the sentinels tell the client which node is the master, and again after a
 * failover). Every client made here is bounded: no caller ever waits on a dead Redis.
 */

/** One sentinel's address. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** A master monitored by Redis Sentinel. */
export interface RedisSentinelTarget {
  /** Sentinels to ask for the master (any reachable one will do). */
  sentinels: SentinelAddress[];
  /** The master group name (`sentinel monitor <name> …` in the sentinels' configuration). */
  name: string;
  /** Password of the master and replicas (`requirepass`). @default none */
  password?: string;
  /** Password of the sentinels themselves (their `requirepass`). @default none */
  sentinelPassword?: string;
}

/** Where a created client connects: exactly one of `url` or `sentinel`. */
export type RedisTarget = { url: string; sentinel?: undefined } | { sentinel: RedisSentinelTarget; url?: undefined };

/** Bounds of a created client. */
export interface RedisBounds {
  /** Per-command bound, ms (also bounds commands parked while reconnecting). @default 250 */
  commandTimeoutMs?: number;
  /** Connect bound (to Redis and to each sentinel), ms. @default 1_000 */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts, ms. @default 1_000 */
  maxReconnectDelayMs?: number;
}

/** Reconnect backoff: 100 ms, 200 ms, 400 ms … capped at `maxDelayMs`. */
function backoffMs(maxDelayMs: number): (times: number) => number {
  return (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxDelayMs);
}

/**
 * ioredis options that never let a caller wait on a dead Redis: a short command timeout (it
 * also bounds commands parked in the offline queue while reconnecting), one retry per command
 * (the queue is flushed with an error after each failed reconnect), bounded reconnect backoff.
 */
export function boundedRedisOptions(opts: RedisBounds = {}): RedisOptions {
  return {
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: opts.connectTimeoutMs ?? 1_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: false,
    retryStrategy: backoffMs(opts.maxReconnectDelayMs ?? 1_000),
  };
}

/**
 * {@link boundedRedisOptions} for a Sentinel group. A sentinel that hangs is bounded like a
 * command; when no sentinel answers the client retries with the same backoff. A node that
 * answers `READONLY` was demoted by a failover: the client reconnects (asking the sentinels for
 * the new master) and resends that command, which the replica refused without running it.
 */
export function boundedSentinelOptions(target: RedisSentinelTarget, opts: RedisBounds = {}): RedisOptions {
  if (target.sentinels.length === 0) throw new SessionError('config_invalid', 'a Sentinel target needs at least one sentinel');
  if (target.name === '') throw new SessionError('config_invalid', 'a Sentinel target needs the master name');
  const base = boundedRedisOptions(opts);
  return {
    ...base,
    sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: target.name,
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
    sentinelCommandTimeout: base.commandTimeout,
    sentinelRetryStrategy: backoffMs(opts.maxReconnectDelayMs ?? 1_000),
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/**
 * A bounded client for `target` (`extra` overrides the bounded options, e.g. `lazyConnect`).
 * @throws SessionError `config_invalid` when the target names neither a URL nor a Sentinel group.
 */
export function createBoundedRedis(target: { url?: string; sentinel?: RedisSentinelTarget }, bounds: RedisBounds = {}, extra: RedisOptions = {}): Redis {
  if (target.url !== undefined && target.sentinel !== undefined) throw new SessionError('config_invalid', 'give a Redis url or a Sentinel target, not both');
  if (target.sentinel !== undefined) return new Redis({ ...boundedSentinelOptions(target.sentinel, bounds), ...extra });
  if (target.url !== undefined) return new Redis(target.url, { ...boundedRedisOptions(bounds), ...extra });
  throw new SessionError('config_invalid', 'a Redis client needs a url or a Sentinel target');
}
