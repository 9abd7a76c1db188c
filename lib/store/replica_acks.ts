/**
 * Waiting for replicas after a write (Redis `WAIT` on the writing connection), shared by every
 * store that writes what a failover must not lose: the session store and the token service's
 * device store.
 */
import type { Redis } from 'ioredis';
import { ConfigError, StoreUnavailableError } from '../errors.js';
import { DEFAULT_REPLICA_ACK_TIMEOUT_MS, type ReplicaAcks } from './redis_env.js';
import { toStoreError } from './redis_scripts.js';

/**
 * The acknowledgements `opts` asks for, checked (`replicaAcks` 0 = off).
 * @throws ConfigError on a bad value, or acknowledgements asked of a Cluster client (`WAIT` has
 *   no key to be routed to the written slot by).
 */
export function resolveReplicaAcks(opts: Partial<ReplicaAcks>, onCluster: boolean): ReplicaAcks {
  const replicaAcks = opts.replicaAcks ?? 0;
  const replicaAckTimeoutMs = opts.replicaAckTimeoutMs ?? DEFAULT_REPLICA_ACK_TIMEOUT_MS;
  if (!Number.isSafeInteger(replicaAcks) || replicaAcks < 0) throw new ConfigError(`replicaAcks must be a non-negative integer, got ${String(opts.replicaAcks)}`);
  if (!Number.isSafeInteger(replicaAckTimeoutMs) || replicaAckTimeoutMs <= 0) throw new ConfigError(`replicaAckTimeoutMs must be a positive integer, got ${String(opts.replicaAckTimeoutMs)}`);
  if (replicaAcks > 0 && onCluster) throw new ConfigError('replicaAcks is not supported on a Cluster client (WAIT cannot be routed to the written slot)');
  return { replicaAcks, replicaAckTimeoutMs };
}

/**
 * Resolves once `acks.replicaAcks` replicas hold every write made so far on `client`'s
 * connection; at once when off.
 * @throws StoreUnavailableError (retryable) when fewer acknowledge within the timeout: the write
 *   is on the master but a failover could lose it. The message names no key or identity.
 */
export async function waitForReplicas(client: Pick<Redis, 'wait'>, acks: ReplicaAcks): Promise<void> {
  if (acks.replicaAcks === 0) return;
  let acked: number;
  try {
    acked = await client.wait(acks.replicaAcks, acks.replicaAckTimeoutMs);
  } catch (err) {
    throw toStoreError(err);
  }
  if (acked < acks.replicaAcks) {
    throw new StoreUnavailableError(`the write is on the master, but ${acked} of ${acks.replicaAcks} replicas acknowledged it within ${acks.replicaAckTimeoutMs} ms`);
  }
}
