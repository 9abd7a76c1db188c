/**
 * The {@link DispatchGate} of the token service: one dispatch decision per room at a time, so
 * two requests for the same room (a page asking while a webhook replaces a crashed agent, two
 * service processes behind a load balancer) never send two agents. In this process's memory
 * ({@link MemoryDispatchGate}), or in Redis ({@link RedisDispatchGate}), shared by every service
 * process.
 *
 * Redis schema (`P` = the configurable prefix, `H` = the first 128 bits of the SHA-256 of the agent
 * name and the room name, base64url; the `{g.…}` hash tag matches none of the other stores' SCAN
 * patterns):
 *
 * | key        | type   | holds                                    | TTL                 |
 * |------------|--------|------------------------------------------|---------------------|
 * | `P{g.H}`   | string | a random token of the decision holding it | {@link GATE_HOLD_MS} |
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { hashedKey } from '../../lib/store/keys.js';
import type { DispatchGate } from './agent_dispatch.js';

/**
 * Longest hold of a room's gate, ms: a decision takes a few calls to livekit-server (well under
 * a second); a process that dies holding it blocks the room's dispatches no longer than this.
 */
export const GATE_HOLD_MS = 10_000;

/** {@link DispatchGate} in this process's memory (a single service process, or no Redis). */
export class MemoryDispatchGate implements DispatchGate {
  private readonly held = new Set<string>();

  tryEnter(room: string, agentName: string): Promise<(() => Promise<void>) | null> {
    const key = JSON.stringify([agentName, room]);
    if (this.held.has(key)) return Promise.resolve(null);
    this.held.add(key);
    return Promise.resolve(() => {
      this.held.delete(key);
      return Promise.resolve();
    });
  }
}

/** Deletes KEYS[1] only while it still holds ARGV[1] (a gate that expired and was taken since is not ours). */
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type GateClient = (Redis | Cluster) & { pvaGate_release(key: string, token: string): Promise<number> };

/** The gate key of `agentName` in `room` (see the module comment). */
export function gateKey(prefix: string, room: string, agentName: string): string {
  return hashedKey(prefix, 'g', JSON.stringify([agentName, room]));
}

/** {@link DispatchGate} in Redis, shared by every service process (see the module comment). */
export class RedisDispatchGate implements DispatchGate {
  private readonly client: GateClient;

  /** @param client a client of the service's Redis (not closed here) */
  constructor(
    client: Redis | Cluster,
    private readonly prefix: string,
  ) {
    gateKey(prefix, '', ''); // checks the prefix
    const c = client as GateClient;
    if (typeof c.pvaGate_release !== 'function') client.defineCommand('pvaGate_release', { numberOfKeys: 1, lua: RELEASE_LUA });
    this.client = c;
  }

  async tryEnter(room: string, agentName: string): Promise<(() => Promise<void>) | null> {
    const key = gateKey(this.prefix, room, agentName);
    const token = randomUUID();
    const set = await this.client.set(key, token, 'PX', GATE_HOLD_MS, 'NX');
    if (set !== 'OK') return null;
    return async () => {
      // A release that fails leaves the gate to expire on its own.
      await this.client.pvaGate_release(key, token).catch(() => undefined);
    };
  }
}
