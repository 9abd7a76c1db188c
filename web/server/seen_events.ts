/**
 * LiveKit webhook events already acted on, by event id: a signed event sent again (livekit-server
 * retrying a delivery, or a captured request replayed while its signature is still valid) is
 * answered without being acted on twice. In this process's memory ({@link MemorySeenEvents}), or
 * in Redis ({@link RedisSeenEvents}), shared by every service process behind a load balancer.
 *
 * Per agent name: the services of two agents sharing one Redis and one LiveKit server are each
 * sent every event, and each acts on it for its own agent.
 *
 * Redis schema (`P` = the configurable prefix, `H` = the first 128 bits of the SHA-256 of the agent
 * name and the event id, base64url; the `{h.…}` hash tag matches none of the other stores' SCAN
 * patterns):
 *
 * | key      | type   | holds | TTL                  |
 * |----------|--------|-------|----------------------|
 * | `P{h.H}` | string | `1`   | {@link SEEN_EVENT_MS} |
 */
import type { Cluster, Redis } from 'ioredis';
import { hashedKey } from '../../lib/store/keys.js';

/**
 * How long an event id is remembered, ms: longer than a webhook's signature stays valid
 * (livekit-server signs each delivery with a token valid for a few minutes), so a replay of it
 * is refused by the signature check after that.
 */
export const SEEN_EVENT_MS = 15 * 60_000;

/** Event ids seen before. */
export interface SeenEvents {
  /**
   * True the first time `id` is offered within {@link SEEN_EVENT_MS}, false after. An event whose
   * id cannot be checked (the shared store does not answer) counts as new: acting twice is
   * bounded (the dispatch gate, the per-room limit), dropping a crash report is not.
   */
  firstTime(id: string): Promise<boolean>;
}

/** {@link SeenEvents} in this process's memory: at most `maxIds` ids, the oldest forgotten first. */
export class MemorySeenEvents implements SeenEvents {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly nowMs: () => number,
    private readonly maxIds = 10_000,
  ) {}

  firstTime(id: string): Promise<boolean> {
    const now = this.nowMs();
    const at = this.seen.get(id);
    if (at !== undefined && now - at < SEEN_EVENT_MS) return Promise.resolve(false);
    this.seen.delete(id);
    this.seen.set(id, now);
    // Insertion order is age order: drop the expired and, past the bound, the oldest.
    for (const [old, t] of this.seen) {
      if (this.seen.size <= this.maxIds && now - t < SEEN_EVENT_MS) break;
      this.seen.delete(old);
    }
    return Promise.resolve(true);
  }
}

/** The key of event `id` for `agentName`'s service (see the module comment). */
export function seenEventKey(prefix: string, agentName: string, id: string): string {
  return hashedKey(prefix, 'h', JSON.stringify([agentName, id]));
}

/** {@link SeenEvents} in Redis, shared by every service process (see the module comment). */
export class RedisSeenEvents implements SeenEvents {
  /** @param client a client of the service's Redis (not closed here) */
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix: string,
    private readonly agentName: string,
  ) {
    seenEventKey(prefix, agentName, ''); // checks the prefix
  }

  async firstTime(id: string): Promise<boolean> {
    try {
      return (await this.client.set(seenEventKey(this.prefix, this.agentName, id), '1', 'PX', SEEN_EVENT_MS, 'NX')) === 'OK';
    } catch {
      return true;
    }
  }
}
