import { Cluster, Redis } from 'ioredis';
import type { ClusterOptions, Command, RedisOptions } from 'ioredis';
import { SessionError } from '../errors.js';
import { bounded } from './bounded.js';

/**
 * How the Redis adapters reach Redis when they create their own client: a URL (one Redis), a
 * Sentinel group (the sentinels tell the client which node is the master, and again after a
 * failover) or a Redis Cluster (seed nodes; the client learns the slots and follows MOVED and
 * failovers). Every client made here is bounded: no caller ever waits on a dead Redis.
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
  /** Reach the sentinels, the master and the replicas over TLS (one CA for all). @default plaintext */
  tls?: RedisTls;
}

/** A Redis Cluster: seed nodes the client asks for the slot map (any reachable one will do). */
export interface RedisClusterTarget {
  nodes: SentinelAddress[];
  /** Password of the cluster's nodes (`requirepass`). @default none */
  password?: string;
  /** Connect to the nodes over TLS. @default plaintext */
  tls?: RedisTls;
}

/**
 * TLS to Redis. `ca`: PEM of the certificate authority that signed the servers' certificates,
 * for a private CA; without it the system's trusted CAs are used. Certificates and host names
 * are always verified.
 */
export interface RedisTls {
  ca?: string;
}

/**
 * Where a created client connects: exactly one of `url`, `sentinel` or `cluster`. A `rediss://`
 * URL connects over TLS, with `tls` for a private CA.
 */
export type RedisTarget =
  | { url: string; tls?: RedisTls; sentinel?: undefined; cluster?: undefined }
  | { sentinel: RedisSentinelTarget; url?: undefined; cluster?: undefined; tls?: undefined }
  | { cluster: RedisClusterTarget; url?: undefined; sentinel?: undefined; tls?: undefined };

/** Only the target of `value` (which may carry other fields, such as a key prefix). */
export function redisTarget(value: RedisTarget): RedisTarget {
  if (value.cluster !== undefined) return { cluster: value.cluster };
  if (value.sentinel !== undefined) return { sentinel: value.sentinel };
  return value.tls === undefined ? { url: value.url } : { url: value.url, tls: value.tls };
}

/** The ioredis `tls` option of `tls`. */
function tlsOptions(tls: RedisTls): { tls: { ca?: string } } {
  return { tls: tls.ca === undefined ? {} : { ca: tls.ca } };
}

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
    // Over TLS, both the sentinels and the nodes they name (`enableTLSForSentinelMode`).
    ...(target.tls === undefined ? {} : { ...tlsOptions(target.tls), sentinelTLS: tlsOptions(target.tls).tls, enableTLSForSentinelMode: true }),
    sentinelCommandTimeout: base.commandTimeout,
    sentinelRetryStrategy: backoffMs(opts.maxReconnectDelayMs ?? 1_000),
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/** The target fields of the options a store is created with (at most one kind set). */
export interface ClientTarget {
  url?: string;
  /** TLS settings for a `rediss://` `url` (a cluster's are in its target). */
  tls?: RedisTls;
  sentinel?: RedisSentinelTarget;
  cluster?: RedisClusterTarget;
}

/** The options a {@link Cluster} is constructed with (replies mapped the default way). */
export type BoundedClusterOptions = ClusterOptions & { redisOptions?: Omit<RedisOptions, 'replyMapping'> & { replyMapping?: 'legacy' } };

/**
 * A Cluster client whose every command is bounded as a single Redis client's are: ioredis times
 * only commands already handed to a node, so a command parked while the cluster is unreachable
 * (no slot map yet, every node down) would wait for as long as the outage lasts.
 */
class BoundedCluster extends Cluster {
  constructor(
    nodes: SentinelAddress[],
    options: BoundedClusterOptions,
    private readonly commandTimeoutMs: number | undefined,
  ) {
    super(nodes, options);
  }

  override sendCommand(command: Command, stream?: Parameters<Cluster['sendCommand']>[1], node?: Parameters<Cluster['sendCommand']>[2]): unknown {
    if (this.commandTimeoutMs !== undefined) command.setTimeout(this.commandTimeoutMs);
    return super.sendCommand(command, stream, node);
  }
}

/**
 * {@link boundedRedisOptions} for a Redis Cluster: the same bounds on every node connection and
 * on the whole command (see {@link BoundedCluster}), the same backoff when the cluster cannot be
 * reached, and the slot map refreshed within the connect bound.
 */
export function boundedClusterOptions(target: RedisClusterTarget, opts: RedisBounds = {}): BoundedClusterOptions {
  if (target.nodes.length === 0) throw new SessionError('config_invalid', 'a Cluster target needs at least one node');
  const { retryStrategy: _perNode, enableOfflineQueue: _queue, replyMapping: _mapping, ...node } = boundedRedisOptions(opts);
  return {
    redisOptions: { ...node, ...(target.password === undefined ? {} : { password: target.password }), ...(target.tls === undefined ? {} : tlsOptions(target.tls)) },
    clusterRetryStrategy: backoffMs(opts.maxReconnectDelayMs ?? 1_000),
    enableOfflineQueue: true,
    slotsRefreshTimeout: opts.connectTimeoutMs ?? 1_000,
  };
}

/**
 * A bounded client for `target` (`extra` overrides the bounded options, e.g. `lazyConnect`), of
 * any kind; {@link createBoundedRedis} when the caller needs a single-node client.
 * @throws SessionError `config_invalid` when the target names none or more than one kind.
 */
export function createBoundedClient(target: ClientTarget, bounds: RedisBounds = {}, extra: RedisOptions = {}): Redis | Cluster {
  if (target.cluster === undefined) return createBoundedRedis(target, bounds, extra);
  if (target.url !== undefined || target.sentinel !== undefined) throw new SessionError('config_invalid', 'give a Redis url, a Sentinel target or a Cluster target, not several');
  const options = boundedClusterOptions(target.cluster, bounds);
  const { lazyConnect, replyMapping: _mapping, ...node } = extra;
  // `extra.commandTimeout` (even undefined: a subscriber waits) overrides the bound, per node and per command.
  const timeoutMs = 'commandTimeout' in extra ? extra.commandTimeout : (bounds.commandTimeoutMs ?? 250);
  return new BoundedCluster(target.cluster.nodes, { ...options, ...(lazyConnect === undefined ? {} : { lazyConnect }), redisOptions: { ...options.redisOptions, ...node } }, timeoutMs);
}

/**
 * A bounded single-node client for `target` (`extra` overrides the bounded options, e.g. `lazyConnect`).
 * @throws SessionError `config_invalid` when the target names neither a URL nor a Sentinel group.
 */
export function createBoundedRedis(target: ClientTarget, bounds: RedisBounds = {}, extra: RedisOptions = {}): Redis {
  if (target.cluster !== undefined) throw new SessionError('config_invalid', 'this client needs a single Redis or a Sentinel group, not a Cluster');
  if (target.url !== undefined && target.sentinel !== undefined) throw new SessionError('config_invalid', 'give a Redis url or a Sentinel target, not both');
  if (target.sentinel !== undefined) return new Redis({ ...boundedSentinelOptions(target.sentinel, bounds), ...extra });
  if (target.url !== undefined) return new Redis(target.url, { ...boundedRedisOptions(bounds), ...(target.tls === undefined ? {} : tlsOptions(target.tls)), ...extra });
  throw new SessionError('config_invalid', 'a Redis client needs a url or a Sentinel target');
}

/** `host:port` of the server `client` is connected to (after a Sentinel lookup, the master it found). */
export function addressOf(client: Redis): string {
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  const host = stream?.remoteAddress ?? client.options.host ?? '?';
  const port = stream?.remotePort ?? client.options.port ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Runs `fn` on a bounded client of its own to `target` (connected, and for a Cluster with its
 * slot map known), then disconnects it: for a one-off check that must not share, or wait on, the
 * stores' clients.
 * @throws when Redis does not answer within `timeoutMs`, or what `fn` throws.
 */
export async function withOwnClient<T>(target: RedisTarget, timeoutMs: number, fn: (client: Redis | Cluster) => Promise<T>): Promise<T> {
  const client = createBoundedClient(target, { commandTimeoutMs: Math.min(timeoutMs, 2_000) }, { lazyConnect: true });
  client.on('error', () => {});
  try {
    return await bounded(
      (async () => {
        await client.ping();
        return fn(client);
      })(),
      timeoutMs,
    );
  } finally {
    client.disconnect();
  }
}
