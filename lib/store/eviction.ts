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
import { DEFAULT_POLICY_CHECK_MS } from './redis_env.js';

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
  /** Pause before asking again when Redis did not answer yet, ms. @default 30_000 */
  retryMs?: number;
  /**
   * Pause between two reads once Redis has answered, ms: a `CONFIG SET`, a restart with another
   * configuration or a Cluster failover onto a master configured differently is seen within it.
   * 0 = read once. @default {@link DEFAULT_POLICY_CHECK_MS}
   */
  recheckMs?: number;
  /** Called with the masters that may evict after the first answer, then whenever they change. */
  onRisks?: (risks: EvictionRisk[]) => void;
}

/** A running {@link watchEviction}. */
export interface EvictionWatch {
  /** The masters that may evict, at the first answer (never settles if stopped before, or if Redis refuses INFO). */
  readonly result: Promise<EvictionRisk[]>;
  /** Stops asking; nothing is logged after it. */
  stop(): void;
}

/** What identifies a set of risks: each master with its policy and limit, in a stable order. */
function risksKey(risks: EvictionRisk[]): string {
  return risks
    .map((r) => `${r.node} ${r.policy} ${r.maxmemoryBytes}`)
    .sort()
    .join('\n');
}

/**
 * {@link checkEviction} for a long-running process: logs {@link EVICTION_WARNING} with the
 * masters that may evict (a debug line when none does), then reads the policy again every
 * `recheckMs` and logs only what changed: the warning again when a master may evict that did not
 * before (or with another policy or limit), one info line when none may any more. A Redis that
 * does not answer is not a reason to stop (the stores report it themselves): it is asked again
 * every `retryMs` until it answers once, then every `recheckMs`; what was last read stands
 * meanwhile. One that refuses `INFO` (an ACL without it) is logged once at info, with only the
 * error's code (its text names the ACL user), and not asked again. No timer keeps the process
 * alive.
 */
export function watchEviction(target: RedisTarget, logger: Logger, opts: WatchEvictionOptions = {}): EvictionWatch {
  const recheckMs = opts.recheckMs ?? DEFAULT_POLICY_CHECK_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let answered: (risks: EvictionRisk[]) => void = () => {};
  const result = new Promise<EvictionRisk[]>((resolve) => (answered = resolve));
  const later = (ms: number): void => {
    timer = setTimeout(() => void attempt(), ms);
    timer.unref();
  };
  const attempt = async (): Promise<void> => {
    let risks: EvictionRisk[] | null = null;
    try {
      risks = await checkEviction(target, opts.timeoutMs);
    } catch (err) {
      if (stopped) return;
      // Redis answered but refused INFO (an ACL without it): asking again would get the same answer.
      if (err instanceof Error && err.name === 'ReplyError') {
        logger.info({ code: err.message.split(' ')[0] }, 'Redis refused INFO: its memory policy is not checked (see README, Deploy)');
        return;
      }
      logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'could not read the Redis memory policy');
    }
    if (stopped) return;
    if (risks === null) {
      later(last === undefined ? (opts.retryMs ?? 30_000) : recheckMs);
      return;
    }
    const key = risksKey(risks);
    if (key !== last) {
      if (risks.length > 0) logger.warn({ redisMasters: risks }, EVICTION_WARNING);
      else if (last === undefined) logger.debug({}, 'Redis memory policy checked: no master evicts');
      else logger.info({}, 'Redis memory policy checked again: no master evicts any more');
      const first = last === undefined;
      last = key;
      opts.onRisks?.(risks);
      if (first) answered(risks);
    }
    if (recheckMs > 0) later(recheckMs);
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
