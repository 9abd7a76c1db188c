/**
 * Whether the shared Redis may evict session data. A Redis with a memory limit (`maxmemory`) and
 * any `maxmemory-policy` but `noeviction` drops keys when it is full, and tells nobody: a
 * conversation's record, its lease, its unsaved turns or a device credential vanish one key at
 * a time, and so can the identity index that `forget` erases by, leaving data that "Forget me"
 * can no longer find. Every key here has a TTL, so the `volatile-*` policies evict them as
 * readily as the `allkeys-*` ones. With `noeviction` a full Redis refuses writes (`OOM`), which
 * the agent treats as an outage: it works from memory and replays once Redis takes writes again.
 */
import { Cluster, type Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { bounded } from './bounded.js';
import { createBoundedClient, type RedisTarget } from './redis_connection.js';

/** A Redis master that evicts keys when full. */
export interface EvictionRisk {
  /** The master's address, `host:port`. */
  node: string;
  /** Its `maxmemory-policy` (anything but `noeviction`). */
  policy: string;
  /** Its `maxmemory`, bytes (above 0). */
  maxmemoryBytes: number;
}

/** The value of `field` in an `INFO` reply (its `field:value` lines), or undefined. */
export function infoField(info: string, field: string): string | undefined {
  for (const line of info.split(/\r?\n/)) {
    if (line.startsWith(`${field}:`)) return line.slice(field.length + 1).trim();
  }
  return undefined;
}

/**
 * The eviction risk an `INFO memory` reply shows, or null: no memory limit (`maxmemory` 0: the
 * policy never applies), `noeviction`, or a reply without those fields (a proxy that hides them).
 */
export function evictionRiskIn(info: string, node: string): EvictionRisk | null {
  const policy = infoField(info, 'maxmemory_policy');
  const maxmemoryBytes = Number(infoField(info, 'maxmemory') ?? Number.NaN);
  if (policy === undefined || policy === 'noeviction' || !Number.isFinite(maxmemoryBytes) || maxmemoryBytes <= 0) return null;
  return { node, policy, maxmemoryBytes };
}

/** `host:port` of the server `client` is connected to (after a Sentinel lookup, the master it found). */
function addressOf(client: Redis): string {
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  const host = stream?.remoteAddress ?? client.options.host ?? '?';
  const port = stream?.remotePort ?? client.options.port ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The masters behind `client` that may evict keys: the one Redis (or the Sentinel group's
 * master), or every master of a Cluster. `client` must be connected (a Cluster must know its
 * slot map: ping it first).
 */
export async function evictionRisks(client: Redis | Cluster): Promise<EvictionRisk[]> {
  const masters = client instanceof Cluster ? client.nodes('master') : [client];
  const found = await Promise.all(masters.map(async (node) => evictionRiskIn(String(await node.info('memory')), addressOf(node))));
  return found.filter((r): r is EvictionRisk => r !== null);
}

/**
 * Connects to `target` on a client of its own, reads {@link evictionRisks}, and disconnects.
 * @throws when Redis does not answer within `timeoutMs`, or refuses `INFO`.
 */
export async function checkEviction(target: RedisTarget, timeoutMs = 5_000): Promise<EvictionRisk[]> {
  const client = createBoundedClient(target, { commandTimeoutMs: Math.min(timeoutMs, 2_000) }, { lazyConnect: true });
  client.on('error', () => {});
  try {
    return await bounded(
      (async () => {
        await client.ping();
        return evictionRisks(client);
      })(),
      timeoutMs,
    );
  } finally {
    client.disconnect();
  }
}

/** What the operator is told when a master may evict (static; the masters go in the fields). */
export const EVICTION_WARNING =
  'Redis may evict session data when it is full, without an error: conversations, unsaved turns, and the index forget needs to find them, could disappear. ' +
  'Set maxmemory-policy to noeviction: a full Redis then refuses writes, which the agent rides out from memory and replays later';

/** Options of {@link watchEviction}. */
export interface WatchEvictionOptions {
  /** Bound of each attempt, ms. @default 5_000 */
  timeoutMs?: number;
  /** Pause before asking again when Redis did not answer, ms. @default 30_000 */
  retryMs?: number;
}

/** A running {@link watchEviction}. */
export interface EvictionWatch {
  /** The masters that may evict, once Redis has answered (never settles if stopped before, or if Redis refuses INFO). */
  readonly result: Promise<EvictionRisk[]>;
  /** Stops asking; nothing is logged after it. */
  stop(): void;
}

/**
 * {@link checkEviction} for a process that starts: logs {@link EVICTION_WARNING} with the masters
 * that may evict (a debug line when none does). A Redis that does not answer is not a reason to
 * stop (the stores report it themselves): it is asked again every `retryMs` until it answers
 * once, so a process started before its Redis is still told. One that refuses `INFO` (an ACL
 * without it) is logged once at info and not asked again. The retry timer never keeps the
 * process alive.
 */
export function watchEviction(target: RedisTarget, logger: Logger, opts: WatchEvictionOptions = {}): EvictionWatch {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let answered: (risks: EvictionRisk[]) => void = () => {};
  const result = new Promise<EvictionRisk[]>((resolve) => (answered = resolve));
  const attempt = async (): Promise<void> => {
    let risks: EvictionRisk[] | null = null;
    try {
      risks = await checkEviction(target, opts.timeoutMs);
    } catch (err) {
      if (stopped) return;
      // Redis answered but refused INFO (an ACL without it): asking again would get the same answer.
      if (err instanceof Error && err.name === 'ReplyError') {
        logger.info({ err: err.message }, 'Redis refused INFO: its memory policy is not checked (see README, Deploy)');
        return;
      }
      logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'could not read the Redis memory policy yet');
    }
    if (stopped) return;
    if (risks === null) {
      timer = setTimeout(() => void attempt(), opts.retryMs ?? 30_000);
      timer.unref();
      return;
    }
    if (risks.length > 0) logger.warn({ redisMasters: risks }, EVICTION_WARNING);
    else logger.debug({}, 'Redis memory policy checked: no master evicts');
    answered(risks);
  };
  void attempt();
  return {
    result,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
