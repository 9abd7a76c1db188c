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
import { addressOf, withOwnClient, type RedisTarget } from './redis_connection.js';

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
  return withOwnClient(target, timeoutMs, evictionRisks);
}

/** What the operator is told when a master may evict (static; the masters go in the fields). */
export const EVICTION_WARNING =
  'Redis may evict session data when it is full, without an error: conversations, unsaved turns, and the index forget needs to find them, could disappear. ' +
  'Set maxmemory-policy to noeviction: a full Redis then refuses writes, which the agent rides out from memory and replays later';
