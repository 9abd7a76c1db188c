/**
 * Waiting for replicas after a write (Redis `WAIT` on the writing connection), shared by every
 * store that writes what a failover must not lose: the session store and the token service's
 * device store.
 */
import { Cluster } from 'ioredis';
import type { Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { ConfigError, StoreUnavailableError } from '../errors.js';
import { DEFAULT_REPLICA_ACK_TIMEOUT_MS, type ReplicaAcks } from './redis_env.js';
import { toStoreError } from './redis_scripts.js';

/**
 * The acknowledgements `opts` asks for, checked (`replicaAcks` 0 = off).
 * @throws ConfigError on a bad value.
 */
export function resolveReplicaAcks(opts: Partial<ReplicaAcks>): ReplicaAcks {
  const replicaAcks = opts.replicaAcks ?? 0;
  const replicaAckTimeoutMs = opts.replicaAckTimeoutMs ?? DEFAULT_REPLICA_ACK_TIMEOUT_MS;
  if (!Number.isSafeInteger(replicaAcks) || replicaAcks < 0) throw new ConfigError(`replicaAcks must be a non-negative integer, got ${String(opts.replicaAcks)}`);
  if (!Number.isSafeInteger(replicaAckTimeoutMs) || replicaAckTimeoutMs <= 0) throw new ConfigError(`replicaAckTimeoutMs must be a positive integer, got ${String(opts.replicaAckTimeoutMs)}`);
  return { replicaAcks, replicaAckTimeoutMs };
}

/**
 * The connections of `cluster` that wrote `keys`: the master serving each key's slot, once per
 * master. These are the connections the writes went through (ioredis keeps one per node and
 * follows a redirection by updating its slot map before the reply arrives), so `WAIT` on them
 * counts those writes.
 * @throws StoreUnavailableError when a slot has no known master (the slot map is not loaded, or
 *   the master just went away).
 */
function mastersOf(cluster: Cluster, keys: readonly string[]): Redis[] {
  const byNodeKey = new Map(cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]));
  const out = new Set<Redis>();
  for (const key of keys) {
    const owner = cluster.slots[calculateSlot(key)]?.[0];
    const node = owner === undefined ? undefined : byNodeKey.get(owner);
    if (node === undefined) throw new StoreUnavailableError('the write is done, but the master that took it is not known to this client, so no replica acknowledgement can be asked of it');
    out.add(node);
  }
  return [...out];
}

/**
 * Resolves once `acks.replicaAcks` replicas hold every write made so far on `client`'s
 * connection; at once when off. On a Cluster, `writtenKeys` names what was written: `WAIT` has
 * no key of its own to be routed by, so it is sent to the master of each of their slots, and
 * every one of them must be acknowledged. A single Redis or a Sentinel master ignores them.
 * @throws StoreUnavailableError (retryable) when fewer acknowledge within the timeout: the write
 *   is on the master but a failover could lose it. The message names no key or identity.
 */
export async function waitForReplicas(client: Redis | Cluster, acks: ReplicaAcks, writtenKeys: readonly string[]): Promise<void> {
  if (acks.replicaAcks === 0) return;
  const connections: Pick<Redis, 'wait'>[] = client instanceof Cluster ? mastersOf(client, writtenKeys) : [client];
  let acked: number[];
  try {
    acked = await Promise.all(connections.map((c) => c.wait(acks.replicaAcks, acks.replicaAckTimeoutMs)));
  } catch (err) {
    throw toStoreError(err);
  }
  const least = Math.min(...acked);
  if (least < acks.replicaAcks) {
    throw new StoreUnavailableError(`the write is on the master, but ${least} of ${acks.replicaAcks} replicas acknowledged it within ${acks.replicaAckTimeoutMs} ms`);
  }
}
